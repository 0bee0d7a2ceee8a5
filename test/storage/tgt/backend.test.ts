// TgtBackend against a private tgtd (its own control port and portal on 127.0.0.1),
// checked with initiators we did not write: libiscsi's tools and QEMU's qemu-io.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTgtd, type Tgtd } from '../../helpers/tgtd.js';
import { LocalRunner } from '../../../src/runner/local.js';
import { ValidationError } from '../../../src/errors.js';
import { TgtBackend } from '../../../src/storage/tgt/backend.js';
import { Tgtadm, TgtadmError } from '../../../src/storage/tgt/tgtadm.js';
import { RollbackError } from '../../../src/plan/plan.js';
import { capacity, fingerprint, holdSession, inquiry, listTargets, qemuIo } from './initiator.js';
import { isRoot, isoImage, qcow2Image, sparseImage, uniqueIqn } from './files.js';

const skip = isRoot ? false : 'tgtd needs root';
let tgtd: Tgtd;
let dir = '';
let confDir = '';
const runner = new LocalRunner();
let backend: TgtBackend;

const show = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
const accounts = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'account']);
const login = (iqn: string, lun: number, extra: object = {}) => ({ portal: tgtd.portal, iqn, lun, ...extra });

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-tgt-'));
  confDir = join(dir, 'conf.d');
  tgtd = await startTgtd();
  backend = new TgtBackend(runner, { controlPort: tgtd.controlPort, confDir });
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a disk, a read-only disk and an ISO: libiscsi sees the target, sizes, inquiry data, serials and an MMC CD', { skip }, async () => {
  const disk = sparseImage(dir, 'disk.img', 64 * 1024 * 1024);
  const ro = sparseImage(dir, 'ro.img', 8 * 1024 * 1024);
  const iso = isoImage(dir, 'install.iso');
  const iqn = uniqueIqn('three');
  const state = await backend.create({
    iqn,
    luns: [
      { lun: 1, path: disk, serial: 'VIDISK0001', vendorId: 'VIRTISCS', productId: 'test disk' },
      { lun: 2, path: ro, readonly: true },
      { lun: 3, path: iso, cdrom: true },
    ],
    allow: ['127.0.0.1'],
    persist: true,
  });
  assert.equal(state.iqn, iqn);
  assert.ok(state.tid && state.tid > 0);
  assert.equal(state.persisted, true);
  assert.equal(state.managed, true);
  assert.deepEqual(state.acls, ['127.0.0.1']);
  assert.deepEqual(
    state.luns.map((l) => [l.lun, l.path, l.type, l.readonly, l.sizeBytes]),
    [
      [1, disk, 'disk', false, 64 * 1024 * 1024],
      [2, ro, 'disk', true, 8 * 1024 * 1024],
      [3, iso, 'cd/dvd', true, statSync(iso).size],
    ],
  );
  // A serial on every LUN (generated when not given) tells an initiator it got this LUN (pitfall 7).
  assert.equal(state.luns[0]!.serial, 'VIDISK0001');
  assert.match(state.luns[1]!.serial ?? '', /^VI[0-9A-F]{12}$/);

  const ls = listTargets(tgtd.portal);
  assert.match(ls, new RegExp(`Target:${iqn.replace(/\./g, '\\.')} Portal:127\\.0\\.0\\.1:${tgtd.port}`));
  assert.match(ls, /Lun:1\s+Type:DIRECT_ACCESS/);
  assert.match(ls, /Lun:3\s+Type:MMC/);

  const inq = inquiry(login(iqn, 1));
  assert.equal(inq.status, 0, inq.stderr);
  assert.match(inq.stdout, /^Peripheral Device Type:DIRECT_ACCESS$/m);
  assert.match(inq.stdout, /^Vendor:VIRTISCS\s*$/m);
  assert.match(inq.stdout, /^Product:test disk\s*$/m);
  const sn = spawnSync('iscsi-inq', ['-e', '1', '-c', '128', `iscsi://${tgtd.portal}/${iqn}/1`], { encoding: 'utf8' });
  assert.match(sn.stdout, /Unit Serial Number:\[\s*VIDISK0001\]/);
  const cd = inquiry(login(iqn, 3));
  assert.equal(cd.status, 0, cd.stderr);
  assert.match(cd.stdout, /^Peripheral Device Type:MMC$/m); // peripheral device type 5
  assert.match(cd.stdout, /^Removable:1$/m);

  assert.equal(capacity(login(iqn, 1)), 64 * 1024 * 1024);
  assert.equal(capacity(login(iqn, 2)), 8 * 1024 * 1024);

  // The writable LUN takes a write that lands in the image file...
  const w = qemuIo(login(iqn, 1), 'write -P 0xab 4096 512');
  assert.equal(w.status, 0, w.stdout + w.stderr);
  assert.deepEqual([...readFileSync(disk).subarray(4096, 4096 + 512)], new Array(512).fill(0xab));
  // ...the read-only one is write-protected: QEMU will not open it for writing, and
  // libiscsi's conformance test sees every WRITE refused with DATA PROTECTION.
  const before = fingerprint(ro);
  const q = qemuIo(login(iqn, 2), 'write -P 0xcd 0 512');
  assert.notEqual(q.status, 0);
  assert.match(q.stdout + q.stderr, /write protected/);
  const cu = spawnSync('iscsi-test-cu', ['--dataloss', '-V', '-t', 'ALL.ReadOnly.ReadOnlySBC', `iscsi://${tgtd.portal}/${iqn}/2`], { encoding: 'utf8', timeout: 60_000 });
  for (const op of ['WRITE10', 'WRITE12', 'WRITE16']) {
    assert.match(cu.stdout, new RegExp(`\\[OK\\] ${op} returned CHECK_CONDITION DATA PROTECTION\\(0x07\\) WRITE_PROTECTED`), cu.stdout);
  }
  assert.deepEqual(fingerprint(ro), before);

  // The record: its own file in conf.d, marked as ours, 0644 without secrets.
  const file = join(confDir, `virt-iscsi-${iqn.replace(/:/g, '_')}.conf`);
  assert.equal(statSync(file).mode & 0o777, 0o644);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^# virt-iscsi: target /);
  assert.ok(text.includes(`backing-store ${iso}`) && /device-type cd/.test(text));

  await backend.delete(iqn);
  assert.ok(!show().includes(iqn));
  assert.ok(!existsSync(file));
});

test('CHAP with mutual authentication: no secret or a wrong one is refused, the right ones log in; delete removes the accounts', { skip }, async () => {
  const disk = sparseImage(dir, 'chap.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('chap');
  const user = `u${iqn.slice(-8)}`;
  const chap = { user, secret: 'Initiator-Sec1', mutualUser: `t${iqn.slice(-8)}`, mutualSecret: 'Target-Secret22' };
  await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: ['ALL'], chap, persist: true });
  assert.match(show(), new RegExp(`${user}\\n\\s+t${iqn.slice(-8)} \\(outgoing\\)`));

  assert.notEqual(inquiry(login(iqn, 1)).status, 0, 'no CHAP');
  assert.notEqual(inquiry(login(iqn, 1, { chap: { user, secret: 'Initiator-Sec2' } })).status, 0, 'wrong secret');
  const ok = inquiry(login(iqn, 1, { chap: { user, secret: chap.secret } }));
  assert.equal(ok.status, 0, ok.stderr);
  const mutual = inquiry(login(iqn, 1, { chap: { user, secret: chap.secret, targetUser: chap.mutualUser, targetSecret: chap.mutualSecret } }));
  assert.equal(mutual.status, 0, mutual.stderr);
  const badTarget = inquiry(login(iqn, 1, { chap: { user, secret: chap.secret, targetUser: chap.mutualUser, targetSecret: 'Not-The-Target1' } }));
  assert.notEqual(badTarget.status, 0, 'the initiator must refuse a target that answers with another secret');
  // libiscsi's URL form carries the secret too.
  const url = spawnSync('iscsi-inq', [`iscsi://${user}%${chap.secret}@${tgtd.portal}/${iqn}/1`], { encoding: 'utf8' });
  assert.equal(url.status, 0, url.stderr);

  const file = join(confDir, `virt-iscsi-${iqn.replace(/:/g, '_')}.conf`);
  assert.equal(statSync(file).mode & 0o777, 0o600, 'a record holding CHAP secrets is 0600');
  await backend.delete(iqn);
  assert.ok(!accounts().includes(user), accounts());
  assert.ok(!accounts().includes(chap.mutualUser));
});

test('an ACL by initiator name lets that initiator in and refuses another IQN', { skip }, async () => {
  const disk = sparseImage(dir, 'acl.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('acl');
  const good = 'iqn.2024-06.test.virt-iscsi:initiator-good';
  await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: [good.toUpperCase()], persist: true });
  const allowed = inquiry(login(iqn, 1, { initiator: good }));
  assert.equal(allowed.status, 0, allowed.stderr);
  const refused = inquiry(login(iqn, 1, { initiator: 'iqn.2024-06.test.virt-iscsi:initiator-other' }));
  assert.notEqual(refused.status, 0);
  // No address ACL opens it to everyone (tgt-admin would bind ALL to a block without one).
  assert.ok(!/\n\s+ALL\n/.test(show()));
  await backend.delete(iqn);
});

test('a block device (loop device) as a LUN', { skip }, async (t) => {
  const file = sparseImage(dir, 'loop-backing.img', 6 * 1024 * 1024);
  const loop = spawnSync('losetup', ['-f', '--show', file], { encoding: 'utf8' });
  if (loop.status !== 0) return t.skip(`no loop device here: ${loop.stderr.trim()}`);
  const dev = loop.stdout.trim();
  try {
    const iqn = uniqueIqn('block');
    const state = await backend.create({ iqn, luns: [{ lun: 1, path: dev }], allow: ['127.0.0.1'], persist: false });
    assert.equal(state.luns[0]!.path, dev);
    assert.equal(state.persisted, false);
    assert.equal(capacity(login(iqn, 1)), 6 * 1024 * 1024);
    await backend.delete(iqn);
  } finally {
    execFileSync('losetup', ['-d', dev]);
  }
});

test('racing creates on one host all succeed, each with its own tid', { skip }, async () => {
  const n = 4;
  const specs = Array.from({ length: n }, (_, i) => ({
    iqn: uniqueIqn(`race${i}`),
    luns: [{ lun: 1, path: sparseImage(dir, `race${i}.img`, 1024 * 1024) }],
    allow: ['127.0.0.1'],
    persist: true,
  }));
  // Separate backends: as separate `virt-iscsi target create` processes would be.
  const states = await Promise.all(specs.map((s) => new TgtBackend(new LocalRunner(), { controlPort: tgtd.controlPort, confDir }).create(s)));
  const tids = states.map((s) => s.tid);
  assert.equal(new Set(tids).size, n, `tids ${tids.join(',')}`);
  const live = show();
  for (const s of states) assert.ok(live.includes(`Target ${s.tid}: ${s.iqn}\n`));
  for (const s of states) await backend.delete(s.iqn);
});

test('a LUN tgtd refuses rolls back the whole create: tgtadm --op show is as before, no record is left', { skip }, async () => {
  const good = sparseImage(dir, 'rollback-good.img', 1024 * 1024);
  const bad = sparseImage(dir, 'rollback-bad.img', 1024 * 1024);
  const iqn = uniqueIqn('rollback');
  const showBefore = show();
  const accountsBefore = accounts();
  const confBefore = existsSync(confDir) ? readdirSync(confDir).sort() : [];
  const goodPrint = fingerprint(good);
  // bs-type sg is one tgtd has, but it only drives SCSI generic devices: tgtd refuses a file.
  await assert.rejects(
    backend.create({ iqn, luns: [{ lun: 1, path: good }, { lun: 2, path: bad, bsType: 'sg' }], allow: ['127.0.0.1'], chap: { user: `rb${iqn.slice(-8)}`, secret: 'rollback-secret1' }, persist: true }),
    (e: unknown) => !(e instanceof RollbackError) && e instanceof Error && /--bstype sg/.test(e.message) && /invalid request/.test(e.message),
  );
  assert.equal(show(), showBefore);
  assert.equal(accounts(), accountsBefore);
  assert.deepEqual(existsSync(confDir) ? readdirSync(confDir).sort() : [], confBefore);
  assert.deepEqual(fingerprint(good), goodPrint);
});

test('delete refuses while an initiator is logged in, --force cuts it off; the image is never touched', { skip }, async () => {
  const disk = sparseImage(dir, 'busy.img', 4 * 1024 * 1024);
  writeFileSync(disk, Buffer.alloc(4096, 0x5a), { flag: 'r+' });
  const iqn = uniqueIqn('busy');
  await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: ['127.0.0.1'], persist: true });
  const print = fingerprint(disk);
  const initiator = 'iqn.2024-06.test.virt-iscsi:holder';
  const session = await holdSession(login(iqn, 1, { initiator }), () => show().includes(`Initiator: ${initiator}`));
  try {
    const state = await backend.show(iqn);
    assert.deepEqual(state?.sessions, [{ initiator, address: '127.0.0.1' }]);
    await assert.rejects(backend.delete(iqn), (e: unknown) => e instanceof ValidationError && /1 logged-in session\(s\) \(iqn\.2024-06\.test\.virt-iscsi:holder from 127\.0\.0\.1\)/.test(e.message));
    assert.ok(show().includes(iqn), 'still there');
    await backend.delete(iqn, { force: true });
    assert.ok(!show().includes(iqn));
  } finally {
    await session.close();
  }
  assert.deepEqual(fingerprint(disk), print);
  // Already gone is success.
  await backend.delete(iqn);
});

test('refusals change nothing: served image (also through a symlink), qcow2, missing image, directory, tid clash, taken CHAP user, unknown bs-type', { skip }, async () => {
  const disk = sparseImage(dir, 'served.img', 1024 * 1024);
  const iqn = uniqueIqn('served');
  const first = await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: ['127.0.0.1'], chap: { user: `sv${iqn.slice(-8)}`, secret: 'served-secret12' }, persist: true });
  const link = join(dir, 'served-link.img');
  symlinkSync(disk, link);
  const fresh = sparseImage(dir, 'fresh.img', 1024 * 1024);
  const state = show();
  const conf = readdirSync(confDir).sort();
  const other = uniqueIqn('other');
  const cases: Array<[string, Parameters<TgtBackend['create']>[0], RegExp]> = [
    ['served', { iqn: other, luns: [{ lun: 1, path: disk }], allow: ['127.0.0.1'], persist: true }, /is already served by target .* as LUN 1/],
    ['symlink', { iqn: other, luns: [{ lun: 1, path: link }], allow: ['127.0.0.1'], persist: true }, /served-link\.img" is already served by target/],
    ['qcow2', { iqn: other, luns: [{ lun: 1, path: qcow2Image(dir, 'vm.qcow2') }], allow: ['127.0.0.1'], persist: true }, /is qcow2, but tgt serves raw images only: convert it first with "virt-iscsi image convert .*vm\.qcow2 .*vm\.img"/],
    ['missing', { iqn: other, luns: [{ lun: 1, path: join(dir, 'nope.img') }], allow: ['127.0.0.1'], persist: true }, /nope\.img" does not exist on local/],
    ['directory', { iqn: other, luns: [{ lun: 1, path: dir }], allow: ['127.0.0.1'], persist: true }, /is a directory, not an image file or block device/],
    ['tid', { iqn: other, tid: first.tid, luns: [{ lun: 1, path: fresh }], allow: ['127.0.0.1'], persist: true }, new RegExp(`target id ${first.tid} is already used on local by ${iqn}`)],
    ['same iqn', { iqn: iqn.toUpperCase().replace('IQN.', 'iqn.'), luns: [{ lun: 1, path: fresh }], allow: ['127.0.0.1'], persist: true }, /already exists on local/],
    ['chap user', { iqn: other, luns: [{ lun: 1, path: fresh }], allow: ['127.0.0.1'], chap: { user: `sv${iqn.slice(-8)}`, secret: 'another-secret1' }, persist: true }, /CHAP user .* already exists/],
    ['bs-type', { iqn: other, luns: [{ lun: 1, path: fresh, bsType: 'floppy' }], allow: ['127.0.0.1'], persist: true }, /bs-type "floppy" is not one tgtd on local has: .*rdwr/],
  ];
  for (const [name, spec, message] of cases) {
    await assert.rejects(backend.create(spec), (e: unknown) => e instanceof ValidationError && message.test(e.message) && !e.message.includes('\n'), name);
    assert.equal(show(), state, `${name}: tgtd changed`);
    assert.deepEqual(readdirSync(confDir).sort(), conf, `${name}: conf.d changed`);
  }
  await backend.delete(iqn);
});

test('targets not made by virt-iscsi: listed as unmanaged, never deleted without --force', { skip }, async () => {
  const disk = sparseImage(dir, 'foreign.img', 1024 * 1024);
  const iqn = uniqueIqn('foreign');
  const tid = 900 + Math.floor(Math.random() * 90);
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', String(tid), '-T', iqn]);
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'new', '--mode', 'logicalunit', '--tid', String(tid), '--lun', '1', '-b', disk]);
  try {
    const listed = (await backend.list()).find((t) => t.iqn === iqn);
    assert.equal(listed?.managed, false);
    assert.equal(listed?.persisted, false);
    await assert.rejects(backend.delete(iqn), /was not made by virt-iscsi .*pass --force/);
    assert.ok(show().includes(iqn));
    await backend.delete(iqn, { force: true });
    assert.ok(!show().includes(iqn));
  } finally {
    spawnSync('tgtadm', ['-C', String(tgtd.controlPort), '--lld', 'iscsi', '--op', 'delete', '--force', '--mode', 'target', '--tid', String(tid)]);
  }
});

test('tgtadm refusals are typed; one carrying a CHAP secret never shows it; teardown calls are idempotent', { skip }, async () => {
  const tgtadm = new Tgtadm(runner, tgtd.controlPort);
  const user = `dup${Math.random().toString(36).slice(2, 10)}`;
  await tgtadm.newAccount(user, 'First-secret-01');
  try {
    await assert.rejects(tgtadm.newAccount(user, 'Second-secret-2'), (e: unknown) => {
      assert.ok(e instanceof TgtadmError);
      assert.equal(e.reason, 'account-exists');
      assert.match(e.message, /--password \*{8} failed on local \(exit 22\): tgtadm: this account already exists$/);
      assert.ok(!JSON.stringify({ m: e.message, a: e.argv, d: e.display, s: e.stderr }).includes('Second-secret-2'));
      return true;
    });
  } finally {
    await tgtadm.deleteAccount(user);
  }
  await tgtadm.deleteAccount(user);
  await tgtadm.deleteTarget(65000);
  await assert.rejects(tgtadm.bindAccount(65000, user), (e: unknown) => e instanceof TgtadmError && e.reason === 'no-target');
});
