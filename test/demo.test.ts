// `make demo` (scripts/demo.sh, after make setup build) as a new user runs it, twice in a
// row: first with no tgtd on its control port (virt-iscsi export starts one, the demo stops
// it), then beside a tgtd that is already running (left running, with no target of the
// demo's). Each run must exit 0, show the VM's disk and cdrom, and leave nothing behind:
// no domain, pool, secret, target, record or file. A tgtd of its own and temporary dirs
// keep the test out of /etc (the demo's DEMO_* variables).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLibvirtd, LIBVIRT_URI } from './helpers/libvirt.js';
import { freePort } from './helpers/ports.js';
import { startTgtd } from './helpers/tgtd.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The newest modification time under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** The demo runs the built CLI (dist/), as `make demo` builds it first. */
function buildIfStale(): void {
  const main = join(root, 'dist', 'cli', 'main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newest(join(root, 'src'))) return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}

const virsh = (args: string[]): string => execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8' });
const answers = (controlPort: number): boolean => spawnSync('tgtadm', ['-C', String(controlPort), '--lld', 'iscsi', '--op', 'show', '--mode', 'sys'], { stdio: 'ignore' }).status === 0;

test('make demo: exit 0 twice in a row (tgtd started by it, then one already running); nothing left behind', async (t) => {
  buildIfStale();
  t.after(await ensureLibvirtd());
  const id = `dm${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vit-demo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = join(dir, 'tmp');
  const confDir = join(dir, 'tgt-conf');
  const hostRecords = join(dir, 'var', 'exports');
  mkdirSync(files);
  mkdirSync(confDir);
  const vm = `vit-${id}`;
  const mine = (text: string): string[] => text.split('\n').filter((l) => l.includes(id));

  const demo = (controlPort: number, portal: string): string => {
    const r = spawnSync('./scripts/demo.sh', [], {
      cwd: root,
      encoding: 'utf8',
      timeout: 300_000,
      env: {
        ...process.env,
        DEMO_VM: vm,
        DEMO_PREFIX: id,
        DEMO_TGT_CONTROL_PORT: String(controlPort),
        DEMO_PORTAL: portal,
        DEMO_TGT_CONF_DIR: confDir,
        DEMO_HOST_RECORDS: hostRecords,
        TMPDIR: files,
      },
    });
    const out = `${r.stdout}${r.stderr}`;
    assert.equal(r.status, 0, out);
    // What the user is shown: the exports healthy, and QEMU with both LUNs open.
    assert.match(out, new RegExp(`${id}-data  healthy`));
    assert.match(out, new RegExp(`${id}-cd  healthy`));
    assert.match(out, /volume +disk +sda +unit:0:0:1/);
    assert.match(out, /volume +cdrom +sdb +unit:0:0:1/);
    assert.match(out, /Capacity: +64\.000 MiB/);
    assert.match(out, /done: the host is as the demo found it/);
    // Nothing left: domain, pools, secrets, target records, export records, files.
    assert.doesNotMatch(virsh(['list', '--all', '--name']), new RegExp(`^${vm}$`, 'm'));
    assert.deepEqual(mine(virsh(['pool-list', '--all'])), []);
    assert.deepEqual(mine(virsh(['secret-list'])), []);
    assert.deepEqual(readdirSync(confDir), []);
    assert.equal(existsSync(hostRecords), false, 'the records dir the demo made is gone');
    assert.deepEqual(readdirSync(files), []);
    return out;
  };

  await t.test('no tgtd on its control port: the export starts one, the demo stops it', async () => {
    let controlPort = 20000 + Math.floor(Math.random() * 10000);
    while (existsSync(`/run/tgtd/socket.${controlPort}`)) controlPort++;
    assert.equal(answers(controlPort), false);
    const out = demo(controlPort, `127.0.0.1:${await freePort()}`);
    assert.match(out, /tgtd is not running: virt-iscsi export starts it/);
    assert.match(out, /stop tgtd \(pid \d+\)/);
    assert.equal(answers(controlPort), false, 'the tgtd it started is stopped');
    assert.equal(existsSync(`/run/tgtd-${controlPort}.pid`), false);
  });

  await t.test('a tgtd already running: shared, and left running without the demo targets', async () => {
    const tgtd = await startTgtd();
    t.after(() => tgtd.stop());
    const out = demo(tgtd.controlPort, tgtd.portal);
    assert.match(out, /tgtd is running: the demo's targets go beside/);
    assert.equal(answers(tgtd.controlPort), true, 'left running');
    assert.equal(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']).trim(), '');
  });
});
