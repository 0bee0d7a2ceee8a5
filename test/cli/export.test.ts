// `virt-iscsi export | unexport | status` as a user runs them (src/cli/run.ts in a child
// process), against a private tgtd, the running libvirtd and a running QEMU domain: the
// output (progress lines, summary, --json, --dry-run plan), exit codes, one-line errors,
// a real failing command rolled back, and Ctrl-C (SIGINT) mid-way rolled back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliWith, type CliResult } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { MiB, startEnv, type Env } from '../workflows/env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function cliEnv(env: Env): NodeJS.ProcessEnv {
  return { ...process.env, XDG_STATE_HOME: join(env.dir, 'xdg') };
}

const cli = (env: Env, args: string[]): Promise<CliResult> => cliWith(args, cliEnv(env));

/** What every export of the env takes: the private tgtd and the temp dirs. */
const hostArgs = (env: Env): string[] => ['--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir, '--host-records', env.hostRecordDir];
const exportArgs = (env: Env, image: string, extra: string[] = []): string[] => ['export', image, '--vm', env.domain, '--portal', env.tgtd.portal, ...hostArgs(env), ...extra];

/** Exit 1, one line on stderr matching `pattern`. */
function failedWith(r: CliResult, pattern: RegExp): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(r.status, 1, `exit ${r.status}: ${r.stderr}${r.stdout}`);
  assert.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

test('the export, unexport and status commands', async (t) => {
  const env = await startEnv('xc');
  t.after(() => env.close());
  const name = (image: string): string => image.split('/').pop()!.replace(/\.[^.]*$/, '');

  await t.test('bad input: one line naming the value, exit 1 (2 for usage), nothing on stdout, nothing changed', async () => {
    const before = env.snapshot();
    const good = env.image(`${env.id}-bad.img`, MiB);
    const cases: Array<[string[], RegExp]> = [
      [exportArgs(env, join(env.dir, 'missing.img')), /^virt-iscsi: image ".*missing\.img" does not exist on local$/],
      [[...exportArgs(env, good), '--vm', `vit-${env.id}-none`], /^virt-iscsi: no domain "vit-.*-none" on qemu:\/\/\/system/],
      [[...exportArgs(env, good), '--name', 'UPPER'], /^virt-iscsi: export name "UPPER" is not allowed/],
      [[...exportArgs(env, good), '--storage', 'ftp://x'], /^virt-iscsi: host "ftp:\/\/x" is not a host URI/],
      [[...exportArgs(env, 'relative.img'), '--storage', 'ssh://root@127.0.0.1:1'], /^virt-iscsi: image "relative\.img" is a relative path; give its absolute path on ssh:/],
      [['unexport', 'Not_A_Name'], /^virt-iscsi: export name "Not_A_Name" is not allowed/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli(env, args);
      failedWith(r, pattern);
      assert.equal(r.stdout, '', `nothing on stdout for ${args.join(' ')}`);
    }
    const usage = await cli(env, [...exportArgs(env, good), '--mode', 'floppy']);
    assert.equal(usage.status, 2, usage.stderr);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('--dry-run --chap prints every command and XML document, secrets as ********, and changes nothing', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-dry.img`, 4 * MiB);
    const r = await cli(env, [...exportArgs(env, image), '--chap', '--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    assert.match(out, /^would export .*-dry\.img as .*-dry \(mode direct\)$/m);
    assert.match(out, /^# dry run: nothing was changed\. This would run:$/m);
    assert.match(out, /^# \[3\/11\] create target iqn\./m, 'each step as a comment before its commands');
    assert.match(out, /^tgtadm -C \d+ --lld iscsi --mode account --op new --user virt-iscsi-\S+ --password '?\*{8}'?$/m);
    assert.doesNotMatch(out, /--password (?!'?\*{8})/);
    assert.match(out, /<pool type="iscsi-direct">[\s\S]*<auth type="chap" username="virt-iscsi-[^"]+">/);
    assert.match(out, /secret-set-value --secret [0-9a-f-]+ --file \/dev\/stdin --plain <<'EOF'\n\*{8}\nEOF/, 'the secret goes on stdin, masked');
    assert.match(out, /<disk type="volume" device="disk">/);
    // The secret file's body, the tgt record (it holds the secret) are masked.
    for (const m of out.matchAll(/install -m 0600 \/dev\/stdin (\S+) <<'EOF'\n([\s\S]*?)\nEOF/g)) {
      if (!m[1]!.endsWith('.json') && !m[1]!.endsWith('.xml')) assert.equal(m[2], '********', `${m[1]} is masked`);
    }
    assert.deepEqual(env.snapshot(), before);
    assert.deepEqual(readdirSync(env.confDir), []);
    const json = await cli(env, [...exportArgs(env, image), '--dry-run', '--json']);
    const doc = JSON.parse(json.stdout) as {
      planVersion: number;
      dryRun: boolean;
      plan: unknown[];
      steps: Array<{ id: string; title: string; host: string; state: string; commands: Array<{ host: string; command: string }>; documents: Array<{ content: string }> }>;
      result: { name: string; changed: boolean };
    };
    assert.deepEqual([doc.planVersion, doc.dryRun, doc.result.name], [1, true, `${env.id}-dry`]);
    assert.ok(doc.plan.length > 5);
    assert.deepEqual(
      doc.steps.map((s) => s.id),
      ['daemon', 'storage-record', 'target', 'acl', 'pool-define', 'pool-start', 'pool-autostart', 'volume', 'attach', 'local-record'],
      'the plan document lists every step by id',
    );
    assert.equal(doc.steps[0]!.state, 'already-done', 'tgtd runs');
    const target = doc.steps.find((s) => s.id === 'target')!;
    assert.ok(target.commands.some((c) => /--mode target --op new/.test(c.command)), 'the target step holds its tgtadm commands');
    const define = doc.steps.find((s) => s.id === 'pool-define')!;
    assert.match(define.documents[0]!.content, /^<pool type="iscsi-direct">/, 'the pool XML is the step\'s document');
    assert.ok(doc.steps.every((s) => s.host === 'local'));
  });

  await t.test('export prints each step and a summary with the undo command; again: nothing changed; --json; status; unexport', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-cli.img`, 8 * MiB);
    const n = name(image);
    const r = await cli(env, exportArgs(env, image));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^\[1\/10\] start the tgt target daemon on local \.\.\. already done$/m);
    assert.match(r.stdout, /^\[3\/10\] create target iqn\.\S+ on local: LUN 1 .* \.\.\. done \(\d+\.\ds\)$/m);
    assert.match(r.stdout, /^\[9\/10\] give domain \S+ the LUN as a disk \.\.\. done \(\d+\.\ds\)$/m);
    assert.match(r.stdout, new RegExp(`^exported ${image.replace(/\./g, '\\.')} as ${n} \\(mode direct\\)$`, 'm'));
    assert.match(r.stdout, /^ {2}VM {6}\S+: sd[a-z] \(disk on scsi; live and persistent\)$/m);
    assert.match(r.stdout, new RegExp(`^undo with: virt-iscsi unexport ${n} --host-records \\S+$`, 'm'));

    const again = await cli(env, [...exportArgs(env, image), '--json']);
    assert.equal(again.status, 0, again.stderr);
    const doc = JSON.parse(again.stdout) as { name: string; changed: boolean; attachment: { dev: string } };
    assert.deepEqual([doc.name, doc.changed], [n, false], 'one JSON document: nothing changed');

    const st = await cli(env, ['status']);
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`^${n} {2}healthy$`, 'm'));
    assert.match(st.stdout, /\[target ok, lun ok, acl ok\]/);
    assert.match(st.stdout, new RegExp(`: ${doc.attachment.dev} \\(disk, live, persistent\\), mode direct`));
    const stj = JSON.parse((await cli(env, ['status', '--json'])).stdout) as { statusVersion: number; exports: Array<{ name: string; healthy: boolean; state: string }> };
    assert.equal(stj.statusVersion, 2, 'the status document carries its version');
    assert.deepEqual(stj.exports.map((s) => [s.name, s.healthy, s.state]), [[n, true, 'ok']]);

    const u = await cli(env, ['unexport', n, '--host-records', env.hostRecordDir]);
    assert.equal(u.status, 0, u.stderr);
    assert.match(u.stdout, /^\[1\/6\] take the export's disk away from domain \S+ \.\.\. done/m);
    assert.match(u.stdout, new RegExp(`^unexported ${n}: `, 'm'));
    assert.deepEqual(env.snapshot(), before);
    const u2 = await cli(env, ['unexport', n, '--host-records', env.hostRecordDir]);
    assert.equal(u2.status, 0, u2.stderr);
    assert.match(u2.stdout, /is not exported .*: nothing to do/);
  });

  await t.test('a command that fails for real (QEMU cannot reach the portal): rolled back, exit 1 naming the command and its stderr', async () => {
    const before = env.snapshot();
    const closed = await freePort();
    const image = env.image(`${env.id}-unreach.img`, 4 * MiB);
    const r = await cli(env, ['export', image, '--vm', env.domain, '--portal', `127.0.0.1:${closed}`, '--mode', 'network', ...hostArgs(env)]);
    failedWith(r, /^virt-iscsi: virsh -c qemu:\/\/\/system attach-device --domain \S+ --file \S+ --live --config failed on local \(exit 1\): error: .*iSCSI: Failed to connect/);
    assert.match(r.stdout, /^\[5\/6\] give domain \S+ the LUN as a disk \.\.\. failed/m);
    assert.match(r.stdout, /^\[3\/6\] undo: create target .* \.\.\. undone/m);
    assert.deepEqual(env.snapshot(), before);
    assert.deepEqual(readdirSync(env.confDir), []);
  });

  await t.test('SIGINT after the target step prints: everything done is undone, exit 1', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-sigint.img`, 4 * MiB);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...exportArgs(env, image)], { cwd: root, env: cliEnv(env) });
    let out = '';
    let err = '';
    let signalled = false;
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      if (!signalled && /create target .* \.\.\. done/.test(out)) {
        signalled = true;
        child.kill('SIGINT');
      }
    });
    const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    assert.ok(signalled, `the target step printed: ${out}`);
    assert.equal(status, 1, `${out}\n${err}`);
    assert.match(err, /SIGINT received, rolling back/);
    assert.match(err, /^virt-iscsi: interrupted \(SIGINT\); undid the steps already done$/m);
    assert.match(out, /undo: create target .* \.\.\. undone/);
    assert.deepEqual(env.snapshot(), before);
  });
});
