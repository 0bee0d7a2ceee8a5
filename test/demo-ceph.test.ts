// `make demo-ceph` (scripts/demo-ceph.sh, after make setup build) as a new user runs it: a
// one-node Ceph cluster of its own, an RBD image exported natively to a small VM, status,
// the disk grown while the VM runs, unexported; then the cluster is stopped. It must exit
// 0, show what QEMU sees before and after the resize, and leave nothing behind: no domain,
// secret, record, Ceph daemon or file. Temporary dirs keep the test out of /var (the
// demo's DEMO_* variables).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLibvirtd, LIBVIRT_URI } from './helpers/libvirt.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const virsh = (args: string[]): string => execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8' });
/** The newest modification time under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Ceph daemons whose command line names `dir` (the demo's cluster lives under it). */
const cephDaemonsUnder = (dir: string): string[] =>
  execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /ceph-(mon|osd)/.test(l) && l.includes(dir));

test('make demo-ceph: exit 0; native rbd export, status, resize, unexport; nothing left behind', { timeout: 600_000 }, async (t) => {
  if (spawnSync('which', ['ceph-mon', 'ceph-osd'], { stdio: 'ignore' }).status !== 0) {
    t.skip('ceph-mon or ceph-osd is not installed (make setup installs them)');
    return;
  }
  // The demo runs the built CLI (bin/virt-iscsi.js: the bundle in dist/), as `make demo-ceph` builds it first.
  const bundle = join(root, 'dist', 'bundle', 'main.js');
  if (!existsSync(bundle) || statSync(bundle).mtimeMs < newest(join(root, 'src'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  t.after(await ensureLibvirtd());
  const id = `dc${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'vit-democeph-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = join(dir, 'tmp');
  const hostRecords = join(dir, 'var', 'exports');
  mkdirSync(files);
  const vm = `vit-${id}`;

  const r = spawnSync('./scripts/demo-ceph.sh', [], {
    cwd: root,
    encoding: 'utf8',
    timeout: 540_000,
    env: { ...process.env, DEMO_VM: vm, DEMO_PREFIX: id, DEMO_HOST_RECORDS: hostRecords, TMPDIR: files },
  });
  const out = `${r.stdout}${r.stderr}`;
  assert.equal(r.status, 0, out);
  const start = /up in (\d+) s/.exec(out);
  t.diagnostic(`cluster up in ${start?.[1] ?? '?'} s`);
  assert.match(out, new RegExp(`${id}-rbd  healthy`));
  assert.match(out, new RegExp(`rbd +rbd:rbd/${id}-rbd is 64\\.0 MiB in its cluster, open by 127\\.0\\.0\\.1:`), 'status shows the image and QEMU as its watcher');
  assert.match(out, new RegExp(`network +disk +sda +rbd/${id}-rbd`), 'QEMU opens the image itself');
  assert.match(out, new RegExp(`resized ${id}-rbd from 64 MiB to 96 MiB`));
  assert.match(out, /Capacity: +96\.000 MiB/, 'QEMU sees the new size');
  assert.match(out, /size 96 MiB in 24 objects/, 'the image stays after unexport, grown');
  assert.match(out, /done: the host is as the demo found it/);
  // Nothing left: domain, secret, export records, the cluster's daemons and files.
  assert.doesNotMatch(virsh(['list', '--all', '--name']), new RegExp(`^${vm}$`, 'm'));
  assert.deepEqual(virsh(['secret-list']).split('\n').filter((l) => l.includes(id)), []);
  assert.equal(existsSync(hostRecords), false, 'the records dir the demo made is gone');
  assert.deepEqual(cephDaemonsUnder(files), [], 'the cluster is stopped');
  assert.deepEqual(readdirSync(files), []);
});
