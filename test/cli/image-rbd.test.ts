// `virt-iscsi image create|convert` with rbd:POOL/IMAGE, run as a user would, against a
// real one-node Ceph cluster; checked with rbd info / rbd export and qemu-img compare.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCeph, type CephCluster } from '../helpers/ceph.js';
import { qcow2Image } from '../storage/tgt/files.js';
import { cli, oneLineFailure } from './target-cli.js';

let ceph: CephCluster;
let dir = '';
const id = randomBytes(3).toString('hex');
const flags = (): string[] => ['--ceph-conf', ceph.conf, '--ceph-id', ceph.id, '--ceph-keyring', ceph.keyring];
const rbdInfo = async (spec: string): Promise<{ size: number; name: string }> => JSON.parse(await ceph.tool('rbd', ['info', '--format', 'json', spec]));

before(async () => {
  ceph = await startCeph();
  dir = mkdtempSync(join(tmpdir(), 'vit-cli-rbd-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await ceph?.stop();
});

test('image create rbd:POOL/IMAGE: rbd info shows the image; a second create is refused and leaves its data alone', async () => {
  const name = `vit-cli-${id}`;
  const r = await cli(['image', 'create', `rbd:${ceph.pool}/${name}`, '--size', '10G', ...flags()]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `created rbd:${ceph.pool}/${name} (10 GiB, thin RBD image) from local\n`);
  assert.deepEqual(await rbdInfo(`${ceph.pool}/${name}`), { ...(await rbdInfo(`${ceph.pool}/${name}`)), name, size: 10 * 2 ** 30 });

  const marker = join(dir, 'marker');
  writeFileSync(marker, randomBytes(65536));
  await ceph.tool('rbd', ['import', '--no-progress', marker, `${ceph.pool}/${name}-kept`]);
  const again = await cli(['image', 'create', `rbd:${ceph.pool}/${name}-kept`, '--size', '1G', ...flags()]);
  assert.equal(oneLineFailure(again), `virt-iscsi: RBD image rbd:${ceph.pool}/${name}-kept already exists in the Ceph cluster of ${ceph.conf} (on local); refusing to overwrite it`);
  await ceph.tool('rbd', ['export', '--no-progress', `${ceph.pool}/${name}-kept`, join(dir, 'kept')]);
  assert.deepEqual(readFileSync(join(dir, 'kept')), readFileSync(marker));
});

test('image create: bad references, a missing pool, a wrong key and Ceph flags on a file are refused in one line', async () => {
  const wrongKeyring = join(dir, 'wrong.keyring');
  writeFileSync(wrongKeyring, `[client.${ceph.id}]\n\tkey = ${execFileSync('ceph-authtool', ['--gen-print-key'], { encoding: 'utf8' }).trim()}\n`);
  const [noSlash, snap, nested, noPool, wrongKey, badConf, onFile] = await Promise.all([
    cli(['image', 'create', 'rbd:onlypool', '--size', '1G', ...flags()]),
    cli(['image', 'create', `rbd:${ceph.pool}/img@snap1`, '--size', '1G', ...flags()]),
    cli(['image', 'create', `rbd:${ceph.pool}/ns/img`, '--size', '1G', ...flags()]),
    cli(['image', 'create', `rbd:nopool-${id}/img`, '--size', '1G', ...flags()]),
    cli(['image', 'create', `rbd:${ceph.pool}/never-${id}`, '--size', '1G', '--ceph-conf', ceph.conf, '--ceph-id', ceph.id, '--ceph-keyring', wrongKeyring]),
    cli(['image', 'create', `rbd:${ceph.pool}/never-${id}`, '--size', '1G', '--ceph-conf', 'ceph.conf']),
    cli(['image', 'create', join(dir, 'f.img'), '--size', '1G', '--ceph-id', 'admin']),
  ]);
  assert.equal(oneLineFailure(noSlash), `virt-iscsi: RBD image "rbd:onlypool" has no '/': expected rbd:POOL/IMAGE`);
  assert.equal(oneLineFailure(snap), `virt-iscsi: RBD image "rbd:${ceph.pool}/img@snap1" names a snapshot ('@'): expected rbd:POOL/IMAGE, an image and not a snapshot`);
  assert.match(oneLineFailure(nested), /has 2 '\/': expected rbd:POOL\/IMAGE/);
  assert.equal(oneLineFailure(noPool), `virt-iscsi: pool "nopool-${id}" does not exist in the Ceph cluster of ${ceph.conf} (on local)`);
  assert.equal(oneLineFailure(wrongKey), `virt-iscsi: Ceph refused the key of client.${ceph.id} in ${wrongKeyring} (on local): wrong key, or no such user`);
  assert.match(oneLineFailure(badConf), /^virt-iscsi: --ceph-conf "ceph.conf" is not allowed: expected an absolute path/);
  assert.match(oneLineFailure(onFile), /^virt-iscsi: --ceph-id is for rbd:POOL\/IMAGE images; ".*f.img" is a file$/);
  assert.doesNotMatch(await ceph.tool('rbd', ['ls', ceph.pool]), new RegExp(`never-${id}`));
});

test('image convert disk.qcow2 rbd:POOL/IMAGE: progress lines, and rbd export reads back the same bytes', async () => {
  const src = qcow2Image(dir, 'in.qcow2', '96M');
  execFileSync('qemu-io', ['-c', 'write -P 0x42 0 4M', '-c', 'write -P 0x24 50M 3M', '-c', 'write -P 0x99 100662784 512', src], { stdio: 'ignore' });
  const name = `vit-conv-${id}`;
  const r = await cli(['image', 'convert', src, `rbd:${ceph.pool}/${name}`, ...flags()]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `converted ${src} (qcow2) to rbd:${ceph.pool}/${name} (raw) on local\n`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.ok(lines.length >= 2 && lines.every((l) => /^converting: \d+%$/.test(l)), r.stderr);
  assert.equal(lines[lines.length - 1], 'converting: 100%');
  assert.equal((await rbdInfo(`${ceph.pool}/${name}`)).size, 96 * 2 ** 20);

  const exported = join(dir, 'exported.raw');
  await ceph.tool('rbd', ['export', '--no-progress', `${ceph.pool}/${name}`, exported]);
  const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', src, exported], { encoding: 'utf8' });
  assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  const bytes = readFileSync(exported);
  assert.equal(bytes.length, 96 * 2 ** 20);
  assert.ok(bytes.subarray(0, 4 * 2 ** 20).every((b) => b === 0x42));
  assert.ok(bytes.subarray(50 * 2 ** 20, 53 * 2 ** 20).every((b) => b === 0x24));
  assert.ok(bytes.subarray(96 * 2 ** 20 - 512).every((b) => b === 0x99));
  assert.ok(bytes.subarray(4 * 2 ** 20, 50 * 2 ** 20).every((b) => b === 0));

  // Into an existing image: refused before anything is written to it.
  const before = readFileSync(exported);
  const again = await cli(['image', 'convert', qcow2Image(dir, 'other.qcow2', '8M'), `rbd:${ceph.pool}/${name}`, ...flags()]);
  assert.match(oneLineFailure(again), new RegExp(`RBD image rbd:${ceph.pool}/${name} already exists .*; refusing to overwrite it$`));
  await ceph.tool('rbd', ['export', '--no-progress', `${ceph.pool}/${name}`, join(dir, 'again.raw')]);
  assert.deepEqual(readFileSync(join(dir, 'again.raw')), before);
  assert.match(oneLineFailure(await cli(['image', 'convert', src, `rbd:${ceph.pool}/x`, '--format', 'qcow2', ...flags()])), /RBD images are written raw/);
});

test('image convert that fails after creating the image removes it: nothing half-written is left', async () => {
  // A qcow2 whose backing file is gone: qemu-img info reads it, qemu-img convert cannot.
  const backing = join(dir, 'gone.raw');
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', backing, '8M']);
  const top = join(dir, 'orphan.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'raw', top]);
  rmSync(backing);
  const name = `vit-fail-${id}`;
  const r = await cli(['image', 'convert', top, `rbd:${ceph.pool}/${name}`, ...flags()]);
  // qemu-img reports 0% before it fails: progress lines, then the one error line.
  const errors = r.stderr.split('\n').filter((l) => l && !/^converting: \d+%$/.test(l));
  assert.match(oneLineFailure({ ...r, stderr: `${errors.join('\n')}\n` }), new RegExp(`^virt-iscsi: converting ".*orphan.qcow2" into rbd:${ceph.pool}/${name} failed, and the new image was removed: .*Could not open backing file`));
  assert.doesNotMatch(await ceph.tool('rbd', ['ls', ceph.pool]), new RegExp(name));
});
