// What a sysadmin's terminal and a hostile file can do to an export, for real, through the
// CLI: SIGHUP (a closed SSH session) rolls back; a second Ctrl-C during the rollback says
// what is left and exits 130, and `unexport` finishes; Ctrl-C to the whole process group
// (as a terminal sends it) is an interruption, not "command X failed"; stdout closed by
// `| head -1` neither kills the export nor prints a stack trace; another run holding the
// storage host's lock is named after a timeout; five exports at once to one storage host
// and two VMs all succeed; and a libvirt URI that names a program, in a stack file or in a
// record on the storage host, runs nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliEntry, cliWith, type CliResult } from '../helpers/cli.js';
import { LIBVIRT_URI, minimalDomainXml } from '../helpers/libvirt.js';
import { MiB, startEnv, virsh } from '../workflows/env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Started {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
  /** Resolves when stderr has shown `pattern` for the `n`th time. */
  seen(pattern: RegExp, n?: number): Promise<void>;
}

test('signals, closed pipes, locks, concurrency and hostile input around a real export', async (t) => {
  const env = await startEnv('sf');
  t.after(() => env.close());
  const xdg = join(env.dir, 'xdg');
  const hostArgs = ['--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir, '--host-records', env.hostRecordDir];
  const exportArgs = (image: string, extra: string[] = []): string[] => ['export', image, '--vm', env.domain, '--portal', env.tgtd.portal, '--mode', 'direct', ...hostArgs, ...extra];
  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> => cliWith(args, { XDG_STATE_HOME: xdg, ...extraEnv });

  /** The CLI in its own process group (as a terminal runs it), stopped at VIRT_ISCSI_TEST_PAUSE points until it gets a signal. */
  function start(args: string[], pause?: string): Started {
    const child = spawn(process.execPath, [...cliEntry(), ...args], {
      cwd: root,
      detached: true,
      env: { ...process.env, XDG_STATE_HOME: xdg, ...(pause ? { VIRT_ISCSI_TEST_PAUSE: pause } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const waiters: Array<() => void> = [];
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const w of waiters) w();
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      for (const w of waiters) w();
    });
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    env.cleanup(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    return {
      child,
      out: () => out,
      err: () => err,
      exit,
      seen: (pattern, n = 1) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`not seen within 120 s: ${pattern}\n${out}${err}`)), 120_000);
          const look = (): void => {
            if ((err.match(new RegExp(pattern.source, 'g')) ?? []).length >= n || (out.match(new RegExp(pattern.source, 'g')) ?? []).length >= n) {
              clearTimeout(timer);
              resolve();
            }
          };
          waiters.push(look);
          look();
          void exit.then(() => look());
        }),
    };
  }

  await t.test('SIGHUP (the SSH session to the admin box closed) in the middle rolls back: exit 1, every host as before', async () => {
    const before = env.snapshot();
    const p = start(exportArgs(env.image(`${env.id}-hup.img`, 4 * MiB)), 'pool-start:after');
    await p.seen(/test pause after pool-start/);
    p.child.kill('SIGHUP');
    assert.equal(await p.exit, 1, p.err());
    assert.match(p.err(), /^virt-iscsi: SIGHUP received, rolling back/m);
    assert.match(p.err(), /^virt-iscsi: interrupted \(SIGHUP\); undid the steps already done$/m);
    assert.deepEqual(env.snapshot(), before);
    assert.equal(existsSync(join(xdg, 'virt-iscsi', 'journal', `${env.id}-hup.jsonl`)), false, 'a complete rollback leaves no journal');
  });

  await t.test('a second Ctrl-C during the rollback: says what is left and how to finish, exit 130; unexport finishes', async () => {
    const before = env.snapshot();
    const name = `${env.id}-twice`;
    const p = start(exportArgs(env.image(`${name}.img`, 4 * MiB)), 'attach:after,undo-target:before');
    await p.seen(/test pause after attach/);
    p.child.kill('SIGINT');
    await p.seen(/test pause before undo-target/);
    p.child.kill('SIGINT');
    assert.equal(await p.exit, 130, p.err());
    assert.match(p.err(), new RegExp(`^virt-iscsi: SIGINT again: stopping now; what the export made so far may be left: "virt-iscsi unexport ${name} --host-records \\S+" removes it$`, 'm'));
    const st = JSON.parse((await cli(['status', '--json', name])).stdout) as { exports: Array<{ state: string }> };
    assert.equal(st.exports[0]!.state, 'interrupted');
    const u = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
    assert.equal(u.status, 0, u.stderr);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('Ctrl-C to the whole process group while commands run: an interruption, rolled back, not "command X failed"', async () => {
    const before = env.snapshot();
    const p = start(exportArgs(env.image(`${env.id}-pg.img`, 4 * MiB)));
    // Right as the target is made (its tgtadm commands run), the terminal's Ctrl-C reaches every process of the group.
    await p.seen(/create target .* \.\.\. done/);
    process.kill(-p.child.pid!, 'SIGINT');
    const code = await p.exit;
    if (code === 0) {
      // The signal came after the last step: then the export is complete, and taken back here.
      assert.match(p.out(), /^exported /m);
      assert.equal((await cli(['unexport', `${env.id}-pg`, '--host-records', env.hostRecordDir])).status, 0);
    } else {
      assert.equal(code, 1, p.err());
      assert.match(p.err(), /^virt-iscsi: interrupted \(SIGINT\); undid the steps already done$/m);
      assert.doesNotMatch(p.err(), / failed on local/);
    }
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('stdout closed by `| head -1`: the export completes, no EPIPE trace; unexport likewise', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-pipe.img`, 4 * MiB);
    const cmd = (args: string[]): string => `${[process.execPath, ...cliEntry(), ...args].map((a) => `'${a}'`).join(' ')} | head -1; exit "\${PIPESTATUS[0]}"`;
    const r = spawnSync('bash', ['-c', cmd(exportArgs(image))], { cwd: root, encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: xdg } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1, 'head printed one line');
    assert.doesNotMatch(r.stderr, /EPIPE|Error|at /);
    const st = JSON.parse((await cli(['status', '--json', `${env.id}-pipe`])).stdout) as { exports: Array<{ healthy: boolean }> };
    assert.equal(st.exports[0]!.healthy, true, 'the export went through');
    const u = spawnSync('bash', ['-c', cmd(['unexport', `${env.id}-pipe`, '--host-records', env.hostRecordDir])], { cwd: root, encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: xdg } });
    assert.equal(u.status, 0, u.stderr);
    assert.doesNotMatch(u.stderr, /EPIPE|Error|at /);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test("another run holds the storage host's lock: after --lock-timeout, one line naming it; nothing changed", async () => {
    const before = env.snapshot();
    const lock = `/run/lock/virt-iscsi-tgt-${env.tgtd.controlPort}.lock`;
    // In a process group of its own: flock's child (sleep) holds the lock too, and goes with the group.
    const holder = spawn('flock', [lock, 'sh', '-c', `printf '%s\\n' "export someone-else (pid $$ on admin2, since 2026-12-02T03:00:00Z)" > ${lock}.owner; exec sleep 120`], { stdio: 'ignore', detached: true });
    const release = (): void => {
      try {
        process.kill(-holder.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    };
    env.cleanup(release);
    for (let i = 0; i < 50 && !(existsSync(`${lock}.owner`) && readFileSync(`${lock}.owner`, 'utf8').includes('someone-else')); i++) await new Promise((r) => setTimeout(r, 100));
    const r = await cli(exportArgs(env.image(`${env.id}-locked.img`, 4 * MiB), ['--lock-timeout', '2']));
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr.trim(), new RegExp(`^virt-iscsi: waited 2 s on local for ${lock.replace(/\./g, '\\.')}, held by virt-iscsi export someone-else \\(pid \\d+ on admin2, since 2026-12-02T03:00:00Z\\); try again once that run is done$`, 'm'));
    release();
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('five exports at once, each its own CLI process, to one storage host and two VMs: all succeed, 0 collisions', async () => {
    const before = env.snapshot();
    const second = `vit-${env.id}-vm2`;
    const xml = join(env.dir, 'vm2.xml');
    writeFileSync(xml, minimalDomainXml(second));
    virsh(['define', xml]);
    env.cleanup(() => spawnSync('virsh', ['-c', LIBVIRT_URI, 'undefine', second], { stdio: 'ignore' }));
    virsh(['start', second]);
    env.cleanup(() => spawnSync('virsh', ['-c', LIBVIRT_URI, 'destroy', second], { stdio: 'ignore' }));
    const vm2Before = virsh(['dumpxml', '--inactive', second]);
    const names = [1, 2, 3, 4, 5].map((n) => `${env.id}-p${n}`);
    const runs = await Promise.all(
      names.map((n, i) => cli(['export', env.image(`${n}.img`, (i + 1) * MiB), '--vm', i % 2 ? second : env.domain, '--portal', env.tgtd.portal, '--mode', 'network', ...hostArgs, '--json'])),
    );
    for (const r of runs) assert.equal(r.status, 0, r.stderr);
    const iqns = runs.map((r) => (JSON.parse(r.stdout) as { target: string }).target);
    assert.equal(new Set(iqns).size, 5);
    const st = JSON.parse((await cli(['status', '--json'])).stdout) as { exports: Array<{ name: string; healthy: boolean; problems: string[] }> };
    for (const n of names) assert.equal(st.exports.find((e) => e.name === n)?.healthy, true, `${n}: ${st.exports.find((e) => e.name === n)?.problems.join('; ')}`);
    // tgtd's own view: five targets, each its own tid (the lock serialised the tid choice).
    const shown = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
    const tids = [...shown.matchAll(/^Target (\d+): (\S+)$/gm)].filter((m) => iqns.includes(m[2]!)).map((m) => m[1]);
    assert.equal(new Set(tids).size, 5, shown);
    const gone = await Promise.all(names.map((n) => cli(['unexport', n, '--host-records', env.hostRecordDir])));
    for (const r of gone) assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(env.snapshot(), before);
    assert.equal(virsh(['dumpxml', '--inactive', second]), vm2Before);
    t.diagnostic('5 concurrent exports and 5 concurrent unexports: 0 failures');
  });

  await t.test('a libvirt URI that names a program, in a stack file or a storage host record, runs nothing', async () => {
    const marker = join(env.dir, 'ran');
    const prog = join(env.dir, 'evil.sh');
    writeFileSync(prog, `#!/bin/sh\ntouch ${marker}\n`);
    chmodSync(prog, 0o755);
    const stack = join(env.dir, 'evil.yaml');
    writeFileSync(stack, `stack: evil\ndefaults:\n  connect: "qemu+ext:///system?command=${prog}"\nexports:\n  - image: ${env.image(`${env.id}-evil.img`, MiB)}\n    vm: ${env.domain}\n`);
    const a = await cli(['apply', '-f', stack, '--dry-run']);
    assert.equal(a.status, 1, a.stdout + a.stderr);
    assert.match(a.stderr, /qemu\+ext:\/\/\/system\?command=.* uses the ext transport, which runs a program/);
    // A record another host holds: reported as unreadable, never used.
    const records = join(env.dir, 'evil-records');
    mkdirSync(records);
    const record = {
      version: 2, name: 'evil', image: '/srv/x.img', sizeBytes: 1, cdrom: false, readonly: false, storage: 'local', backend: 'tgt', backendOptions: {},
      target: 'iqn.2026-12.localdomain.evil:evil', lun: 1, serial: 'VI0000', portal: '127.0.0.1:3260', vm: 'web1', persist: true, mode: 'network',
      hypervisors: [{ uri: 'local', connect: `qemu+ext:///system?command=${prog}`, initiator: 'iqn.2024-01.dev.virt-iscsi:x' }], createdAt: '2026-12-01T00:00:00Z',
    };
    writeFileSync(join(records, 'evil.json'), JSON.stringify(record));
    const s = await cli(['status', '--json', '--storage', 'local', '--host-records', records]);
    assert.equal(s.status, 0, s.stderr);
    const doc = JSON.parse(s.stdout) as { exports: unknown[]; unreadable: Array<{ file: string; error: string }> };
    assert.deepEqual(doc.exports, []);
    assert.match(doc.unreadable[0]!.error, /has a bad hypervisors\[0\]\.connect: .*uses the ext transport/);
    const u = await cli(['unexport', 'evil', '--storage', 'local', '--host-records', records]);
    assert.equal(u.status, 1);
    assert.match(u.stderr, /export record .*evil\.json has a bad hypervisors\[0\]\.connect/);
    assert.equal(existsSync(marker), false, 'the program was never run');
  });
});
