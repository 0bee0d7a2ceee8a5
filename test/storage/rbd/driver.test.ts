// The rbd driver against a real one-node Ceph cluster (scripts/ceph-dev.sh): create,
// info, grow, watchers, keys, and each bad input refused in one line, within a bounded time.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../../../src/errors.js';
import { LocalRunner } from '../../../src/runner/local.js';
import { RecordingRunner } from '../../../src/runner/recording.js';
import { CephError, Rbd } from '../../../src/storage/rbd/rbd.js';
import { waitFor } from '../../helpers/daemon.js';
import { startCeph, type CephCluster } from '../../helpers/ceph.js';
import { freePort } from '../../helpers/ports.js';

const runner = new LocalRunner();
let ceph: CephCluster;
let dir = '';
const id = randomBytes(3).toString('hex');

before(async () => {
  ceph = await startCeph();
  dir = mkdtempSync(join(tmpdir(), 'vit-rbd-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await ceph?.stop();
});

const isCeph = (reason: string, re: RegExp) => (e: unknown) => e instanceof CephError && e.reason === reason && re.test(e.message) && !e.message.includes('\n');

test('create makes the image rbd info shows; a second create is refused and the image is untouched', async () => {
  const rbd = new Rbd(runner, ceph.client());
  const ref = { pool: ceph.pool, image: `vit-create-${id}` };
  assert.equal(await rbd.info(ref), undefined);
  assert.equal(await rbd.exists(ref), false);
  await rbd.create(ref, 64 * 2 ** 20);
  const shown = JSON.parse(await ceph.tool('rbd', ['info', '--format', 'json', `${ref.pool}/${ref.image}`])) as { size: number; name: string };
  assert.deepEqual([shown.name, shown.size], [ref.image, 64 * 2 ** 20]);
  const info = await rbd.require(ref);
  assert.equal(info.sizeBytes, 64 * 2 ** 20);
  assert.equal(info.format, 2);
  assert.ok(await rbd.exists(ref));
  assert.ok((await rbd.list(ceph.pool)).includes(ref.image));
  // Data written before the second create must survive it.
  const marker = join(dir, 'marker');
  writeFileSync(marker, Buffer.alloc(4096, 0x5a));
  await ceph.tool('rbd', ['import', '--no-progress', marker, `${ref.pool}/${ref.image}-m`]);
  await assert.rejects(rbd.create({ ...ref, image: `${ref.image}-m` }, 2 ** 20), isCeph('exists', /^RBD image rbd:rbd\/vit-create-\w+-m already exists in the Ceph cluster of .*; refusing to overwrite it$/));
  await ceph.tool('rbd', ['export', '--no-progress', `${ref.pool}/${ref.image}-m`, join(dir, 'back')]);
  assert.deepEqual(readFileSync(join(dir, 'back')), readFileSync(marker));
});

test('resize grows, keeps the same size as is, and refuses to shrink', async () => {
  const rbd = new Rbd(runner, ceph.client());
  const ref = { pool: ceph.pool, image: `vit-resize-${id}` };
  await rbd.create(ref, 32 * 2 ** 20);
  await rbd.resize(ref, 48 * 2 ** 20);
  await rbd.resize(ref, 48 * 2 ** 20);
  assert.equal(JSON.parse(await ceph.tool('rbd', ['info', '--format', 'json', `${ref.pool}/${ref.image}`])).size, 48 * 2 ** 20);
  await assert.rejects(
    rbd.resize(ref, 16 * 2 ** 20),
    (e: unknown) => e instanceof ValidationError && /^RBD image rbd:rbd\/vit-resize-\w+ is 48 MiB; refusing to shrink it to 16 MiB/.test(e.message),
  );
  assert.equal((await rbd.require(ref)).sizeBytes, 48 * 2 ** 20);
  await assert.rejects(rbd.resize({ pool: ceph.pool, image: `vit-none-${id}` }, 2 ** 20), isCeph('no-image', /^RBD image rbd:rbd\/vit-none-\w+ does not exist/));
});

test('watchers lists a client holding the image open (rbd watch), and none after it stops', async (t) => {
  const rbd = new Rbd(runner, ceph.client());
  const ref = { pool: ceph.pool, image: `vit-watch-${id}` };
  await rbd.create(ref, 2 ** 20);
  assert.deepEqual(await rbd.watchers(ref), []);
  // rbd watch holds the image until its stdin ends ("press enter to exit").
  const watch = spawn('rbd', ['--conf', ceph.conf, '--id', 'admin', '--keyring', ceph.adminKeyring, 'watch', `${ref.pool}/${ref.image}`], { stdio: ['pipe', 'ignore', 'ignore'] });
  const exited = new Promise((r) => watch.once('exit', r));
  t.after(async () => {
    if (watch.exitCode === null) watch.kill('SIGKILL');
    await exited;
  });
  await waitFor('rbd watch to register', async () => (await rbd.watchers(ref)).length === 1, 30_000);
  const [w] = await rbd.watchers(ref);
  assert.match(w!.address, /^127\.0\.0\.1:/);
  await assert.rejects(rbd.removeCreated(ref), isCeph('has-watchers', /^RBD image rbd:rbd\/vit-watch-\w+ is open by a client/));
  watch.stdin!.end('\n');
  await exited;
  await waitFor('the watch to go', async () => (await rbd.watchers(ref)).length === 0, 60_000);
  await rbd.removeCreated(ref);
  assert.equal(await rbd.exists(ref), false);
});

test('authKey reads a client key for libvirt as admin; a user without caps and an unknown user are refused', async () => {
  const admin = new Rbd(runner, ceph.admin());
  assert.equal(await admin.authKey(`client.${ceph.id}`), ceph.key);
  await assert.rejects(admin.authKey('client.nobody'), isCeph('no-user', /^Ceph user client.nobody does not exist in the Ceph cluster of/));
  await assert.rejects(new Rbd(runner, ceph.client()).authKey('client.admin'), isCeph('denied', /^client.virt-iscsi may not do this/));
  await assert.rejects(admin.authKey('admin'), (e: unknown) => e instanceof ValidationError && /expected client.ID/.test(e.message));
});

test('bad input: missing pool or image, wrong key, no keyring, no conf, and a dead monitor within the timeout', async () => {
  const rbd = new Rbd(runner, ceph.client());
  await assert.rejects(rbd.create({ pool: 'nopool', image: 'x' }, 2 ** 20), isCeph('no-pool', /^pool "nopool" does not exist in the Ceph cluster of /));
  await assert.rejects(rbd.info({ pool: 'nopool', image: 'x' }), isCeph('no-pool', /nopool/));
  await assert.rejects(rbd.list('nopool'), isCeph('no-pool', /nopool/));
  assert.throws(() => new Rbd(runner, { conf: 'relative.conf' }), ValidationError);

  const wrong = join(dir, 'wrong.keyring');
  // A well-formed key that is not the user's.
  const otherKey = execFileSync('ceph-authtool', ['--gen-print-key'], { encoding: 'utf8' }).trim();
  writeFileSync(wrong, `[client.${ceph.id}]\n\tkey = ${otherKey}\n`);
  await assert.rejects(new Rbd(runner, { ...ceph.client(), keyring: wrong }).exists({ pool: ceph.pool, image: 'x' }), isCeph('auth', /^Ceph refused the key of client.virt-iscsi in .*wrong.keyring \(on local\)/));
  await assert.rejects(new Rbd(runner, { conf: ceph.conf, id: 'nobody' }).exists({ pool: ceph.pool, image: 'x' }), isCeph('no-keyring', /^no keyring for client.nobody on local/));
  await assert.rejects(new Rbd(runner, { conf: join(dir, 'none.conf') }).exists({ pool: ceph.pool, image: 'x' }), isCeph('no-conf', /none.conf cannot be read on local/));

  // A conf whose monitor is a port nothing listens on: bounded by the timeout, not 300 s.
  const dead = join(dir, 'dead.conf');
  writeFileSync(dead, readFileSync(ceph.conf, 'utf8').replace(/^mon_host = .*$/m, `mon_host = 127.0.0.1:${await freePort()}`));
  const t0 = Date.now();
  await assert.rejects(new Rbd(runner, { conf: dead, id: ceph.id, keyring: ceph.keyring, timeoutSec: 3 }).exists({ pool: ceph.pool, image: 'x' }), isCeph('timeout', /^no Ceph monitor of .*dead.conf answered local within 3 s/));
  const took = (Date.now() - t0) / 1000;
  assert.ok(took >= 2.5 && took < 20, `gave up after ${took} s`);
  await assert.rejects(new Rbd(runner, { conf: dead, keyring: ceph.adminKeyring, timeoutSec: 3 }).authKey('client.admin'), isCeph('timeout', /within 3 s/));
});

test('a dry run still reads (info) but only records what would change', async () => {
  const rec = new RecordingRunner(runner);
  const rbd = new Rbd(rec, ceph.client());
  const ref = { pool: ceph.pool, image: `vit-dry-${id}` };
  assert.equal(await rbd.exists(ref), false);
  await rbd.create(ref, 2 ** 20);
  assert.equal(rec.steps.length, 1);
  assert.match(rec.steps[0]!.shell, new RegExp(`^rbd --conf \\S+ --id virt-iscsi --keyring \\S+ --client_mount_timeout 20 --rados_mon_op_timeout 20 create --size 1048576B rbd/vit-dry-${id}$`));
  assert.equal(await new Rbd(runner, ceph.client()).exists(ref), false);
});
