// `sweep`, for real: orphans made the ways they are made in life (an export killed with
// SIGKILL half-way whose journal and records are then lost; a finished export whose records
// are deleted, its target removed by hand with tgtadm), beside an export whose records are
// intact and things with similar names that virt-iscsi did not make (a target of `target
// create`, a raw tgtadm target, a dir pool and a libvirt secret named virt-iscsi-*). The
// listing must name exactly the orphans, --dry-run must change nothing, --yes must remove
// them and leave every host as it was before the orphans were made, checked with tgtadm
// and virsh. Libvirt is shared with other test runs here, so every sweep names the exports
// it may touch (their pools and disks would be orphans to this sweep too).
// Sessions and node records of a deleted target are swept in the lab (test/lab/sweep.lab.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliWith, type CliResult } from '../helpers/cli.js';
import { LIBVIRT_URI } from '../helpers/libvirt.js';
import { asIscsi } from '../../src/workflows/records.js';
import { MiB, startEnv, virsh } from './env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface SweepDoc {
  sweepVersion: number;
  dryRun: boolean;
  removing: boolean;
  orphans: Array<{ kind: string; host: string; name: string; export: string; detail: string; removed?: boolean; error?: string }>;
  notes: string[];
  owned: string[];
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((f) => `${f} ${statSync(join(dir, f)).size}`);
}

test('sweep: orphans from killed runs and lost records are listed exactly, removed with --yes; nothing else is touched', async (t) => {
  const env = await startEnv('sw');
  t.after(() => env.close());
  const xdg = join(env.dir, 'xdg');
  const stateDir = join(xdg, 'virt-iscsi', 'exports');
  const hostArgs = ['--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir, '--host-records', env.hostRecordDir];
  const sweepArgs = ['--storage', 'local', ...hostArgs, '--hypervisor', 'local'];
  const cli = (args: string[]): Promise<CliResult> => cliWith(args, { XDG_STATE_HOME: xdg });
  const tgt = (...args: string[]): string => env.tgtd.tgtadm(['--lld', 'iscsi', ...args]);
  const tidOf = (iqn: string): number => Number(new RegExp(`^Target (\\d+): ${iqn.replace(/\./g, '\\.')}$`, 'm').exec(tgt('--op', 'show', '--mode', 'target'))![1]);
  const snapshot = (): Record<string, unknown> => {
    const s = env.snapshot();
    return { ...s, pools: s.pools.replace(/ +/g, ' '), live: env.blk(), conf: files(env.confDir), hostRecords: files(env.hostRecordDir), state: files(stateDir) };
  };

  /** Starts an export with the CLI, waits until it pauses at `point`, kills it with SIGKILL. */
  async function killAt(point: string, args: string[]): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
      cwd: root,
      env: { ...process.env, XDG_STATE_HOME: xdg, VIRT_ISCSI_TEST_PAUSE: point },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/test pause/.test(err)) resolve();
      });
      void exited.then((code) => reject(new Error(`export ended (exit ${code}) before pausing at ${point}: ${err}`)));
      setTimeout(() => reject(new Error(`export did not pause at ${point} within 120 s: ${err}`)), 120_000).unref();
    });
    child.kill('SIGKILL');
    assert.equal(await exited, null);
  }

  const before = snapshot();
  // What stays: an export whose records are intact, and look-alikes virt-iscsi did not make.
  const kept = asIscsi((await env.exportIt(env.image(`${env.id}-kept.img`, 4 * MiB), { mode: 'network', stateDir })).record);
  const fakeIqn = `iqn.2024-01.test.virt-iscsi:${env.id}-fake`;
  const made = await cli(['target', 'create', fakeIqn, '--lun', `1=${env.image(`${env.id}-fake.img`, MiB)}`, '--allow', 'ALL', '--host', 'local', '--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir]);
  assert.equal(made.status, 0, made.stderr);
  const rawIqn = `iqn.2024-01.test.virt-iscsi:${env.id}-raw`;
  tgt('--op', 'new', '--mode', 'target', '--tid', '900', '-T', rawIqn);
  const dirPool = `virt-iscsi-${env.id}-fake`;
  mkdirSync(join(env.dir, 'pooldir'));
  virsh(['pool-define-as', dirPool, 'dir', '--target', join(env.dir, 'pooldir')]);
  env.cleanup(() => spawnSync('virsh', ['-c', LIBVIRT_URI, 'pool-undefine', dirPool], { stdio: 'ignore' }));
  const secretXml = join(env.dir, 'secret.xml');
  writeFileSync(secretXml, `<secret ephemeral='no' private='yes'><description>someone else's</description><usage type='iscsi'><target>virt-iscsi-${env.id}-fake</target></usage></secret>`);
  virsh(['secret-define', secretXml]);
  const mid = snapshot();

  // Orphan 1: a direct export with CHAP killed right after it attached the disk; its journal and records then lost.
  const a = `${env.id}-killed`;
  await killAt('attach:after', ['export', env.image(`${a}.img`, 4 * MiB), '--vm', env.domain, '--mode', 'direct', '--chap', '--portal', env.tgtd.portal, ...hostArgs]);
  const aIqn = JSON.parse(readFileSync(join(env.hostRecordDir, `${a}.json`), 'utf8')).target as string;
  rmSync(join(xdg, 'virt-iscsi', 'journal', `${a}.jsonl`));
  rmSync(join(env.hostRecordDir, `${a}.json`));
  // Orphan 2: a finished network export with CHAP whose records were deleted, and its target by hand with tgtadm (its conf.d file stays).
  const c = asIscsi((await env.exportIt(env.image(`${env.id}-lost.img`, 4 * MiB), { mode: 'network', chap: true, stateDir })).record);
  tgt('--op', 'delete', '--mode', 'target', '--tid', String(tidOf(c.target)), '--force');
  rmSync(join(stateDir, `${c.name}.json`));
  rmSync(join(env.hostRecordDir, `${c.name}.json`));
  const names = [a, c.name, kept.name, `${env.id}-fake`, `${env.id}-raw`];
  const expected = [
    ['disk', a],
    ['disk', c.name],
    ['pool', a],
    ['secret', a],
    ['secret', c.name],
    ['target', a],
    ['target', c.name],
    ['account', c.name],
  ];
  const made2 = snapshot();

  await t.test('the listing names exactly the orphans, and changes nothing', async () => {
    const r = await cli(['sweep', ...names, ...sweepArgs, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as SweepDoc;
    assert.deepEqual([doc.sweepVersion, doc.removing, doc.dryRun], [1, false, false]);
    assert.deepEqual(doc.orphans.map((o) => [o.kind, o.export]).sort(), [...expected].sort(), JSON.stringify(doc.orphans, null, 1));
    assert.ok(doc.orphans.some((o) => o.kind === 'target' && o.name === aIqn && /LUN 1 /.test(o.detail)));
    assert.ok(doc.orphans.some((o) => o.kind === 'target' && o.name === c.target && /not live/.test(o.detail)), 'the conf.d record of the target deleted by hand');
    assert.ok(doc.owned.includes(kept.name));
    assert.ok(doc.notes.some((n) => n.includes(fakeIqn) && /does not say by which export: left alone/.test(n)), doc.notes.join('\n'));
    const text = await cli(['sweep', ...names, ...sweepArgs]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^orphans \(made by virt-iscsi, owned by no record or journal\):$/m);
    assert.match(text.stdout, new RegExp(`^  pool +pool virt-iscsi-${a} \\(iscsi-direct, running, target ${aIqn.replace(/\./g, '\\.')}\\) on local, made for export ${a}$`, 'm'));
    assert.match(text.stdout, /run again with --yes to remove them/);
    assert.deepEqual(snapshot(), made2);
  });

  await t.test('--dry-run --yes prints the commands in order and changes nothing', async () => {
    const r = await cli(['sweep', ...names, ...sweepArgs, '--dry-run', '--yes']);
    assert.equal(r.status, 0, r.stderr);
    const order = ['detach-device', 'pool-destroy', 'secret-undefine', '--mode target --op delete', '--mode account --op delete'].map((w) => r.stdout.indexOf(w));
    assert.ok(order.every((i) => i >= 0), r.stdout);
    assert.deepEqual([...order].sort((x, y) => x - y), order, `disks, pools, secrets, targets, accounts in that order:\n${r.stdout}`);
    assert.deepEqual(snapshot(), made2);
  });

  await t.test('--yes removes them: every host as before the orphans were made; the look-alikes and the owned export stay', async () => {
    const r = await cli(['sweep', ...names, ...sweepArgs, '--yes', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as SweepDoc;
    assert.deepEqual(doc.orphans.filter((o) => !o.removed), [], 'every orphan removed');
    assert.deepEqual(snapshot(), mid);
    assert.match(tgt('--op', 'show', '--mode', 'target'), new RegExp(`${fakeIqn}[\\s\\S]*${rawIqn}`), 'the targets virt-iscsi did not make for an export stay');
    assert.match(virsh(['secret-list']), new RegExp(`virt-iscsi-${env.id}-fake`));
    assert.match(virsh(['pool-list', '--all']), new RegExp(dirPool));
    const again = JSON.parse((await cli(['sweep', ...names, ...sweepArgs, '--json'])).stdout) as SweepDoc;
    assert.deepEqual(again.orphans, [], 'a second sweep finds nothing');
  });

  await t.test('bad input: a host that cannot be reached stops the sweep before anything; a bad name', async () => {
    const down = await cli(['sweep', '--storage', 'ssh://root@127.0.0.1:1', '--yes']);
    assert.equal(down.status, 1);
    assert.equal(down.stderr.split('\n').filter(Boolean).length, 1, down.stderr);
    assert.match(down.stderr, /127\.0\.0\.1:1.*sweep removes nothing while a host it must look at is out of reach/);
    assert.equal(down.stdout, '');
    const bad = await cli(['sweep', 'Bad_Name']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^virt-iscsi: export name "Bad_Name" is not allowed/);
  });

  await env.unexportIt(kept.name, { stateDir });
  tgt('--op', 'delete', '--mode', 'target', '--tid', '900');
  const del = await cli(['target', 'delete', fakeIqn, '--host', 'local', '--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir]);
  assert.equal(del.status, 0, del.stderr);
  for (const line of virsh(['secret-list']).split('\n')) if (line.includes(`virt-iscsi-${env.id}-fake`)) virsh(['secret-undefine', line.trim().split(/\s+/)[0]!]);
  virsh(['pool-undefine', dirPool]);
  const end = snapshot();
  assert.deepEqual({ ...end, conf: [], state: [] }, { ...before, conf: [], state: [] }, 'the test leaves the hosts as it found them');
});
