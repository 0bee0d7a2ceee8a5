// `virt-iscsi target create --lun N=rbd:POOL/IMAGE` run as a user would: an RBD image of a
// real one-node Ceph cluster served by a private tgtd through tgt-rbd, with ACL and CHAP
// as for files, read by libiscsi with the CHAP secret the command printed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRunner } from '../../src/runner/local.js';
import { Rbd } from '../../src/storage/rbd/rbd.js';
import { startCeph, type CephCluster } from '../helpers/ceph.js';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { isRoot, uniqueIqn } from '../storage/tgt/files.js';
import { capacity, inquiry } from '../storage/tgt/initiator.js';
import { cli, oneLineFailure } from './target-cli.js';

const skip = isRoot ? false : 'tgtd needs root';
let ceph: CephCluster;
let tgtd: Tgtd;
let dir = '';
let common: string[] = [];
const id = randomBytes(3).toString('hex');

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'vit-cli-target-rbd-'));
  [ceph, tgtd] = await Promise.all([startCeph(), startTgtd()]);
  common = ['--control-port', String(tgtd.controlPort), '--conf-dir', join(dir, 'conf.d')];
});
after(async () => {
  await tgtd?.stop();
  await ceph?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('target create --lun 1=rbd:POOL/IMAGE with CHAP: libiscsi logs in with the printed secret and reads the image size', { skip }, async () => {
  const ref = { pool: ceph.pool, image: `vit-cli-gw-${id}` };
  await new Rbd(new LocalRunner(), ceph.client()).create(ref, 48 * 2 ** 20);
  const iqn = uniqueIqn('clirbd');
  const r = await cli(['target', 'create', iqn, '--lun', `1=rbd:${ref.pool}/${ref.image}`, '--ceph-conf', ceph.conf, '--ceph-id', ceph.id, '--allow', '127.0.0.1', '--chap', `u${id}`, '--generate-secret', ...common]);
  assert.equal(r.status, 0, r.stderr);
  const secret = /generated CHAP secret for u\w+: (\S+)/.exec(r.stdout)?.[1];
  assert.ok(secret, r.stdout);
  assert.match(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']), new RegExp(`Backing store type: rbd\\s+Backing store path: ${ref.pool}/${ref.image}\\b`));
  const login = { portal: tgtd.portal, iqn, lun: 1 };
  assert.notEqual(inquiry(login).status, 0, 'no CHAP: refused');
  assert.equal(capacity({ ...login, chap: { user: `u${id}`, secret } }), 48 * 2 ** 20);

  const del = await cli(['target', 'delete', iqn, ...common]);
  assert.equal(del.status, 0, del.stderr);
  assert.deepEqual(readdirSync(join(dir, 'conf.d')).filter((f) => f.startsWith('virt-iscsi-')), []);
  assert.ok(await new Rbd(new LocalRunner(), ceph.client()).exists(ref), 'the image stays');
});

test('target create refuses a missing RBD image, a keyring flag (tgt-rbd has none) and Ceph flags without an RBD LUN, in one line', { skip }, async () => {
  const iqn = uniqueIqn('clirbdbad');
  const [missing, keyring, noRbd] = await Promise.all([
    cli(['target', 'create', iqn, '--lun', `1=rbd:${ceph.pool}/none-${id}`, '--ceph-conf', ceph.conf, '--ceph-id', ceph.id, '--allow', 'ALL', ...common]),
    cli(['target', 'create', iqn, '--lun', `1=rbd:${ceph.pool}/x`, '--ceph-conf', ceph.conf, '--ceph-keyring', ceph.keyring, '--allow', 'ALL', ...common]),
    cli(['target', 'create', iqn, '--lun', `1=${join(dir, 'f.img')}`, '--ceph-id', 'admin', '--allow', 'ALL', ...common]),
  ]);
  assert.equal(oneLineFailure(missing), `virt-iscsi: RBD image rbd:${ceph.pool}/none-${id} does not exist in the Ceph cluster of ${ceph.conf} (on local)`);
  assert.match(oneLineFailure(keyring), /^virt-iscsi: tgt's rbd backing store has no keyring option/);
  assert.match(oneLineFailure(noRbd), /^virt-iscsi: --ceph-conf, --ceph-id and --ceph-keyring are for LUNs that are RBD images/);
  assert.doesNotMatch(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']), new RegExp(iqn));
});
