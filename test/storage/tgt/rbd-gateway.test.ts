// tgt as an iSCSI gateway to Ceph: an RBD image served as a LUN through tgt's rbd backing
// store, by TgtBackend against a private tgtd and a real one-node cluster. Checked with
// tools we did not write: tgtadm, libiscsi's iscsi-inq / iscsi-readcapacity16, qemu-io
// over iSCSI, rbd export, and tgt-admin loading our persisted record.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrerequisiteError, ValidationError } from '../../../src/errors.js';
import { parseTgtTarget, targetSpecToTgtConf } from '../../../src/config/tgt-conf.js';
import { LocalRunner } from '../../../src/runner/local.js';
import { checkBackingsServedBy } from '../../../src/storage/backing.js';
import { rbdLun } from '../../../src/storage/rbd/lun.js';
import { CephError, Rbd } from '../../../src/storage/rbd/rbd.js';
import { TgtBackend } from '../../../src/storage/tgt/backend.js';
import { startCeph, type CephCluster } from '../../helpers/ceph.js';
import { startDaemon, waitFor, portOpen } from '../../helpers/daemon.js';
import { freePort } from '../../helpers/ports.js';
import { startTgtd, type Tgtd } from '../../helpers/tgtd.js';
import { isRoot, sparseImage, uniqueIqn } from './files.js';
import { capacity, inquiry, qemuIo } from './initiator.js';

const skip = isRoot ? false : 'tgtd needs root';
const runner = new LocalRunner();
let ceph: CephCluster;
let tgtd: Tgtd;
let dir = '';
let confDir = '';
let backend: TgtBackend;
const id = randomBytes(3).toString('hex');

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'vit-tgt-rbd-'));
  confDir = join(dir, 'conf.d');
  [ceph, tgtd] = await Promise.all([startCeph(), startTgtd()]);
  backend = new TgtBackend(runner, { controlPort: tgtd.controlPort, confDir });
});
after(async () => {
  await tgtd?.stop();
  await ceph?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const gatewayClient = () => ({ conf: ceph.conf, id: ceph.id });
const exportImage = async (spec: string): Promise<Buffer> => {
  const file = join(dir, `export-${randomBytes(3).toString('hex')}`);
  await ceph.tool('rbd', ['export', '--no-progress', spec, file]);
  return readFileSync(file);
};

test('an RBD image as a LUN: tgtadm shows the rbd store, libiscsi reads its size and inquiry, a block written over iSCSI is in the image', { skip }, async () => {
  const ref = { pool: ceph.pool, image: `vit-gw-${id}` };
  await new Rbd(runner, ceph.client()).create(ref, 64 * 2 ** 20);
  const iqn = uniqueIqn('rbd');
  const state = await backend.create({ iqn, luns: [rbdLun(1, ref, gatewayClient(), { serial: 'VIRBD0001' })], allow: ['127.0.0.1'], persist: true });
  assert.deepEqual(
    state.luns.map((l) => [l.lun, l.path, l.backingType, l.serial]),
    [[1, `${ceph.pool}/${ref.image}`, 'rbd', 'VIRBD0001']],
  );
  const shown = tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
  assert.match(shown, new RegExp(`Backing store type: rbd\\s+Backing store path: ${ceph.pool}/${ref.image}\\b`));

  const login = { portal: tgtd.portal, iqn, lun: 1 };
  assert.equal(capacity(login), 64 * 2 ** 20);
  const inq = inquiry(login);
  assert.equal(inq.status, 0, inq.stderr);
  assert.match(inq.stdout, /Peripheral Device Type:DIRECT_ACCESS/);
  const w = qemuIo(login, 'write -P 0x5a 1M 64k');
  assert.equal(w.status, 0, w.stderr + w.stdout);
  const bytes = await exportImage(`${ceph.pool}/${ref.image}`);
  assert.equal(bytes.length, 64 * 2 ** 20);
  assert.ok(bytes.subarray(2 ** 20, 2 ** 20 + 65536).every((b) => b === 0x5a));
  assert.ok(bytes.subarray(0, 2 ** 20).every((b) => b === 0));
  // tgtd holds the image open: Ceph lists it as a watcher.
  assert.equal((await new Rbd(runner, ceph.client()).watchers(ref)).length, 1);

  // The record tgt-admin loads at tgtd's start: target-level bs-type rbd, quoted bsopts.
  const [file] = readdirSync(confDir).filter((f) => f.endsWith('.conf'));
  const text = readFileSync(join(confDir, file!), 'utf8');
  assert.match(text, new RegExp(`^\\s+bsopts 'conf=${ceph.conf.replace(/[.]/g, '\\.')};id=${ceph.id}'$`, 'm'));
  assert.match(text, /^ {4}bs-type rbd$/m);

  // tgtd restarted: the record brings the LUN back (sync), with the data still there.
  await tgtd.restart();
  const items = await backend.sync();
  assert.deepEqual(items.map((i) => [i.iqn, i.status]), [[iqn, 'restored']]);
  const r = qemuIo(login, 'read -P 0x5a 1M 64k', true);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.doesNotMatch(r.stdout, /Pattern verification failed/);
  assert.deepEqual((await backend.sync()).map((i) => i.status), ['in-sync']);

  // And tgt's own loader reads the same record: tgt-admin -e on an empty tgtd makes the LUN.
  await tgtd.restart();
  execFileSync('tgt-admin', ['-C', String(tgtd.controlPort), '-c', join(confDir, file!), '-e'], { stdio: 'pipe' });
  assert.match(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']), new RegExp(`Backing store type: rbd\\s+Backing store path: ${ceph.pool}/${ref.image}\\b`));
  assert.equal(capacity(login), 64 * 2 ** 20);

  await backend.delete(iqn, { force: true });
  assert.deepEqual(readdirSync(confDir).filter((f) => f.startsWith('virt-iscsi-')), []);
  assert.equal(await new Rbd(runner, ceph.client()).exists(ref), true, 'the image stays');
});

test('bad RBD LUNs are refused before anything is made on tgtd', { skip }, async () => {
  const before = tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
  const iqn = uniqueIqn('rbdbad');
  await assert.rejects(
    backend.create({ iqn, luns: [rbdLun(1, { pool: ceph.pool, image: `none-${id}` }, gatewayClient())], allow: ['ALL'], persist: false }),
    (e: unknown) => e instanceof CephError && e.reason === 'no-image' && e.message === `RBD image rbd:${ceph.pool}/none-${id} does not exist in the Ceph cluster of ${ceph.conf} (on local)`,
  );
  await assert.rejects(
    backend.create({ iqn, luns: [rbdLun(1, { pool: `nopool${id}`, image: 'x' }, gatewayClient())], allow: ['ALL'], persist: false }),
    (e: unknown) => e instanceof CephError && e.reason === 'no-pool',
  );
  const ref = { pool: ceph.pool, image: `vit-mix-${id}` };
  await new Rbd(runner, ceph.client()).create(ref, 2 ** 20);
  await assert.rejects(
    backend.create({ iqn, luns: [rbdLun(1, ref, gatewayClient()), { lun: 2, path: sparseImage(dir, `f-${id}.img`, 2 ** 20) }], allow: ['ALL'], persist: true }),
    (e: unknown) => e instanceof ValidationError && /mixes RBD images and files: tgt-admin reads bs-type rbd per target/.test(e.message),
  );
  await assert.rejects(
    backend.create({ iqn, luns: [{ lun: 1, path: 'rbd/../x', bsType: 'rbd' }], allow: ['ALL'], persist: false }),
    (e: unknown) => e instanceof ValidationError && /^RBD image "rbd:rbd\/..\/x" has 2 '\/': expected rbd:POOL\/IMAGE/.test(e.message),
  );
  await assert.rejects(
    backend.create({ iqn, luns: [{ lun: 1, path: join(dir, 'x.img'), bsOpts: 'conf=/etc/ceph/ceph.conf' }], allow: ['ALL'], persist: false }),
    (e: unknown) => e instanceof ValidationError && /bs-opts "conf=\/etc\/ceph\/ceph.conf" are only taken with bs-type rbd/.test(e.message),
  );
  assert.throws(() => rbdLun(1, ref, ceph.client()), /tgt's rbd backing store has no keyring option/);
  assert.throws(() => checkBackingsServedBy('lio', [rbdLun(1, ref, gatewayClient())]), /^ValidationError: LUN 1 is RBD image rbd:rbd\/vit-mix-\w+, which the lio backend cannot serve: use tgt$/);
  assert.equal(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']), before);
  assert.deepEqual(existsSync(confDir) ? readdirSync(confDir).filter((f) => f.includes(iqn.split(':')[1]!)) : [], []);
});

test('targets.conf model: an rbd target block round-trips with its bsopts', () => {
  const block = targetSpecToTgtConf({ iqn: 'iqn.2024-01.dev.test:rbd', luns: [rbdLun(1, { pool: 'rbd', image: 'vm1' }, { conf: '/etc/ceph/ceph.conf', id: 'gw' })], allow: ['192.0.2.1'], persist: true });
  assert.equal(block.bsType, 'rbd');
  assert.deepEqual(block.luns.map((l) => [l.path, l.bsType, l.bsOpts]), [['rbd/vm1', undefined, 'conf=/etc/ceph/ceph.conf;id=gw']]);
  assert.throws(() => targetSpecToTgtConf({ iqn: 'iqn.2024-01.dev.test:x', luns: [{ lun: 1, path: 'rbd/vm1', bsType: 'rbd', bsOpts: 'conf=/a,b' }], allow: [], persist: true }), /bsopts "conf=\/a,b" is not allowed/);
  const parsed = parseTgtTarget(`<target iqn.2024-01.dev.test:rbd>\n    <backing-store rbd/vm1>\n        lun 1\n        bsopts 'conf=/etc/ceph/ceph.conf;id=gw'\n    </backing-store>\n    bs-type rbd\n    initiator-address 192.0.2.1\n</target>\n`);
  assert.deepEqual(parsed, block);
});

test('a tgtd started before tgt-rbd was installed (no rbd module) is named in one line, and nothing is made', { skip }, async () => {
  // tgtd in a mount namespace where its module directory is empty: what a tgtd that
  // started before tgt-rbd was installed sees. The host still has bs_rbd.so.
  const controlPort = 20000 + Math.floor(Math.random() * 10000);
  const port = await freePort();
  const daemon = startDaemon(
    ['unshare', '-m', 'sh', '-c', `mount -t tmpfs none /usr/lib/tgt/backing-store && exec tgtd -f --control-port ${controlPort} --iscsi portal=127.0.0.1:${port}`],
    undefined,
    'SIGKILL',
  );
  try {
    await waitFor('the module-less tgtd', async () => spawnSync('tgtadm', ['-C', String(controlPort), '--op', 'show', '--mode', 'sys']).status === 0 && (await portOpen(port)), 15_000);
    const sys = execFileSync('tgtadm', ['-C', String(controlPort), '--op', 'show', '--mode', 'sys'], { encoding: 'utf8' });
    assert.doesNotMatch(sys, /^\s+rbd\b/m);
    const ref = { pool: ceph.pool, image: `vit-nomod-${id}` };
    await new Rbd(runner, ceph.client()).create(ref, 2 ** 20);
    const bare = new TgtBackend(runner, { controlPort, confDir: join(dir, 'nomod.d') });
    await assert.rejects(
      bare.create({ iqn: uniqueIqn('nomod'), luns: [rbdLun(1, ref, gatewayClient())], allow: ['ALL'], persist: true }),
      (e: unknown) =>
        e instanceof PrerequisiteError &&
        e.message === 'tgtd on local has no rbd backing store although /usr/lib/tgt/backing-store/bs_rbd.so is installed: tgtd loads its modules only when it starts, so restart tgtd (this ends its iSCSI sessions)',
    );
    assert.doesNotMatch(execFileSync('tgtadm', ['-C', String(controlPort), '--op', 'show', '--mode', 'target'], { encoding: 'utf8' }), /Target/);
  } finally {
    await daemon.stop();
  }
});
