// Making sure tgtd runs: starting a private instance for real (and bringing our
// persisted targets back into it), a host without tgt, and the service-manager and
// package-install paths as plans.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../helpers/ports.js';
import { waitFor } from '../../helpers/daemon.js';
import { PrerequisiteError } from '../../../src/errors.js';
import { LocalRunner } from '../../../src/runner/local.js';
import { RecordingRunner } from '../../../src/runner/recording.js';
import { TgtBackend } from '../../../src/storage/tgt/backend.js';
import { startCommand, tgtStatus } from '../../../src/storage/tgt/daemon.js';
import { Tgtadm } from '../../../src/storage/tgt/tgtadm.js';
import { inquiry } from './initiator.js';
import { isRoot, sparseImage, uniqueIqn } from './files.js';
import { PathRunner } from './path-runner.js';

const skip = isRoot ? false : 'tgtd needs root';
let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-daemon-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function unusedControlPort(): number {
  for (;;) {
    const n = 30000 + Math.floor(Math.random() * 2767); // tgtd takes at most 32767
    if (!existsSync(`/run/tgtd/socket.${n}`)) return n;
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Stops a tgtd that our code started, by the PID in its pid file (and its worker child). */
async function stopStarted(controlPort: number, pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  // tgtd ignores SIGTERM; this is how the tgt service stops it once it has no targets.
  spawnSync('tgtadm', ['-C', String(controlPort), '--op', 'delete', '--mode', 'system']);
  await waitFor(`tgtd ${pid} to exit`, () => !alive(pid), 5000).catch(() => {
    for (const p of [pid, ...children]) if (alive(p)) process.kill(p, 'SIGKILL');
  });
}

test('ensureRunning starts a stopped private tgtd on its control port and portal, and brings our persisted targets back into it', { skip }, async () => {
  const controlPort = unusedControlPort();
  const port = await freePort();
  const pidFile = join(dir, 'tgtd.pid');
  const confDir = join(dir, 'conf.d');
  const options = { controlPort, portal: `127.0.0.1:${port}`, pidFile, confDir };
  const tgtadm = new Tgtadm(new LocalRunner(), controlPort);
  assert.equal(await tgtStatus(tgtadm), 'stopped');
  const iqn = uniqueIqn('started');
  try {
    const first = new TgtBackend(new LocalRunner(), options);
    await first.ensureRunning();
    assert.equal(await tgtStatus(tgtadm), 'running');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(alive(pid));
    await first.create({ iqn, luns: [{ lun: 1, path: sparseImage(dir, 'started.img', 2 * 1024 * 1024) }], allow: ['127.0.0.1'], persist: true });
    // Gone (the host rebooted): tgtd is started again with nothing loaded.
    spawnSync('tgtadm', ['-C', String(controlPort), '--lld', 'iscsi', '--op', 'delete', '--force', '--mode', 'target', '--tid', '1']);
    await stopStarted(controlPort, pidFile);
    assert.equal(await tgtStatus(tgtadm), 'stopped');

    const second = new TgtBackend(new LocalRunner(), options);
    await second.ensureRunning();
    assert.equal((await second.show(iqn))?.luns.length, 1);
    const inq = inquiry({ portal: `127.0.0.1:${port}`, iqn, lun: 1 });
    assert.equal(inq.status, 0, inq.stderr);
    await second.delete(iqn);
  } finally {
    await stopStarted(controlPort, pidFile);
  }
});

test('a host without tgt: one clear line saying what to install, for create, list and delete', async () => {
  const runner = new PathRunner(['/usr/bin/test', '/usr/bin/find', '/usr/bin/stat']);
  try {
    const backend = new TgtBackend(runner, { confDir: join(dir, 'none') });
    const expected = (e: unknown): boolean =>
      e instanceof PrerequisiteError && /^tgt is not installed on local \(no tgtadm\): install it with "apt-get install tgt" \(Debian\/Ubuntu\) or "dnf install scsi-target-utils", or pass --install$/.test(e.message);
    await assert.rejects(backend.ensureRunning(), expected);
    await assert.rejects(backend.list(), expected);
    await assert.rejects(backend.delete('iqn.2024-06.test.virt-iscsi:x'), expected);
  } finally {
    await runner.close();
  }
});

test('a stopped tgtd: list and show say it is not running and how to start it', async () => {
  const backend = new TgtBackend(new LocalRunner(), { controlPort: unusedControlPort(), confDir: join(dir, 'none') });
  await assert.rejects(backend.list(), (e: unknown) => e instanceof PrerequisiteError && /^tgtd is not running on local \(control port \d+\): start it/.test(e.message));
});

test('plan-only: the system tgtd is started by its service (starting it for real would listen on every address, port 3260)', async (t) => {
  const real = new LocalRunner();
  if ((await tgtStatus(new Tgtadm(real))) !== 'stopped') return t.skip('a system tgtd is installed and running here, or tgt is missing');
  const plan = new RecordingRunner(real);
  await new TgtBackend(plan, { confDir: join(dir, 'none') }).ensureRunning();
  const systemd = existsSync('/run/systemd/system');
  const expected = systemd ? /^systemctl start tgtd?$/m : existsSync('/etc/init.d/tgt') ? /^service tgt start$/m : /^tgtd --pid-file \/run\/tgtd\.pid$/m;
  assert.match(plan.render(), expected);
});

test('plan-only: --install on a host without tgt installs the package, then starts tgtd (installing would change this machine)', async () => {
  const runner = new PathRunner(['/usr/bin/test', '/usr/bin/find', '/usr/bin/stat']);
  try {
    const plan = new RecordingRunner(runner);
    const controlPort = unusedControlPort();
    await new TgtBackend(plan, { install: true, controlPort, portal: '127.0.0.1:3999', pidFile: '/run/x.pid', confDir: join(dir, 'none') }).ensureRunning();
    const apt = existsSync('/usr/bin/apt-get');
    assert.equal(
      plan.render(),
      [apt ? 'env DEBIAN_FRONTEND=noninteractive apt-get install -y tgt' : 'dnf install -y scsi-target-utils', `tgtd --control-port ${controlPort} --iscsi portal=127.0.0.1:3999 --pid-file /run/x.pid`].join('\n'),
    );
  } finally {
    await runner.close();
  }
});

test('a private instance is always started as tgtd itself, with its control port, portal and pid file', async () => {
  const plan = new RecordingRunner();
  assert.deepEqual(await startCommand(plan, { controlPort: 3333, portal: '127.0.0.1:3261' }), {
    method: 'daemon',
    argv: ['tgtd', '--control-port', '3333', '--iscsi', 'portal=127.0.0.1:3261', '--pid-file', '/run/tgtd-3333.pid'],
  });
  assert.equal(plan.steps.length, 0, 'choosing asked the host nothing');
});
