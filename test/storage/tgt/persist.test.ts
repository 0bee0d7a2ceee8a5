// Records in conf.d and `sync`, against a private tgtd that is really restarted: what the
// tgt service does at start (tgt-admin -e on a targets.conf that includes our conf dir)
// brings persisted targets back; sync restores, repairs and reports drift.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTgtd, type Tgtd } from '../../helpers/tgtd.js';
import { LocalRunner } from '../../../src/runner/local.js';
import { TgtBackend } from '../../../src/storage/tgt/backend.js';
import { fingerprint, holdSession, inquiry } from './initiator.js';
import { isRoot, sparseImage, uniqueIqn } from './files.js';

const skip = isRoot ? false : 'tgtd needs root';
let tgtd: Tgtd;
let dir = '';
let confDir = '';
let backend: TgtBackend;

const show = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
const recordOf = (iqn: string, ext = 'conf'): string => join(confDir, `virt-iscsi-${iqn.replace(/:/g, '_')}.${ext}`);

/** One target's section of `tgtadm --op show`, without the tid line and session lines (they change on restart). */
function section(text: string, iqn: string): string {
  const start = text.indexOf(`: ${iqn}\n`);
  assert.ok(start >= 0, `${iqn} not live:\n${text}`);
  const next = text.indexOf('\nTarget ', start);
  return text.slice(start, next < 0 ? undefined : next).trimEnd();
}

/** What the Debian tgt service runs at start, on a targets.conf that includes our conf dir. */
function serviceStart(): void {
  const main = join(dir, 'targets.conf');
  writeFileSync(main, `# like /etc/tgt/targets.conf\ninclude ${confDir}/*.conf\n`);
  execFileSync('tgt-admin', ['-C', String(tgtd.controlPort), '-e', '-c', main], { encoding: 'utf8' });
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-persist-'));
  confDir = join(dir, 'conf.d');
  tgtd = await startTgtd();
  backend = new TgtBackend(new LocalRunner(), { controlPort: tgtd.controlPort, confDir });
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('restart tgtd: the persisted target comes back as it was (LUNs, serials, ACLs, CHAP), the --no-persist one does not; sync then drops its record', { skip }, async () => {
  const disk = sparseImage(dir, 'keep.img', 8 * 1024 * 1024);
  const ro = sparseImage(dir, 'keep-ro.img', 2 * 1024 * 1024);
  const gone = sparseImage(dir, 'gone.img', 1024 * 1024);
  const keep = uniqueIqn('keep');
  const temp = uniqueIqn('temp');
  const chap = { user: `k${keep.slice(-8)}`, secret: 'keep-secret-123' };
  await backend.create({ iqn: keep, luns: [{ lun: 1, path: disk }, { lun: 2, path: ro, readonly: true }], allow: ['127.0.0.0/8', 'iqn.2024-06.test.virt-iscsi:keeper'], chap, persist: true });
  await backend.create({ iqn: temp, luns: [{ lun: 1, path: gone }], allow: ['127.0.0.1'], persist: false });
  // Allowed by initiator name only: tgt-admin binds ALL to a block without an address, unless we prevent it.
  const named = uniqueIqn('named');
  const friend = 'iqn.2024-06.test.virt-iscsi:friend';
  await backend.create({ iqn: named, luns: [{ lun: 1, path: sparseImage(dir, 'named.img', 1024 * 1024) }], allow: [friend], persist: true });
  assert.ok(existsSync(recordOf(temp, 'live-only')));
  const before = section(show(), keep);
  const prints = [fingerprint(disk), fingerprint(ro)];

  await tgtd.restart();
  assert.equal(show(), '', 'a restarted tgtd has no targets');
  serviceStart();
  const after = show();
  assert.equal(section(after, keep), before);
  assert.ok(!after.includes(temp), 'a --no-persist target stays gone');
  const ok = inquiry({ portal: tgtd.portal, iqn: keep, lun: 1, chap: { user: chap.user, secret: chap.secret } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual([fingerprint(disk), fingerprint(ro)], prints);
  assert.equal(inquiry({ portal: tgtd.portal, iqn: named, lun: 1, initiator: friend }).status, 0);
  assert.notEqual(inquiry({ portal: tgtd.portal, iqn: named, lun: 1, initiator: 'iqn.2024-06.test.virt-iscsi:stranger' }).status, 0, 'still closed to other initiators after the restart');

  const status = Object.fromEntries((await backend.sync()).map((i) => [i.iqn, i.status]));
  assert.equal(status[keep], 'in-sync');
  assert.equal(status[temp], 'stale-record');
  assert.ok(!existsSync(recordOf(temp, 'live-only')));
  assert.equal(status[named], 'in-sync');
  await backend.delete(keep);
  await backend.delete(named);
  assert.ok(!existsSync(recordOf(keep)));
});

test('sync restores a persisted target that is not live, with a fresh tid and the same serials', { skip }, async () => {
  const disk = sparseImage(dir, 'restore.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('restore');
  const created = await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: ['127.0.0.1'], persist: true });
  // Gone from tgtd behind our back (as after a restart without the service).
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', String(created.tid)]);
  const report = await backend.sync();
  const item = report.find((i) => i.iqn === iqn);
  assert.equal(item?.status, 'restored', JSON.stringify(item));
  assert.match(item!.details[0]!, /created live as tid \d+ from .*virt-iscsi-.*\.conf/);
  const state = await backend.show(iqn);
  assert.equal(state?.luns[0]?.serial, created.luns[0]?.serial);
  assert.equal(inquiry({ portal: tgtd.portal, iqn, lun: 1 }).status, 0);
  assert.equal((await backend.sync()).find((i) => i.iqn === iqn)?.status, 'in-sync');
  await backend.delete(iqn);
});

test('sync repairs hand changes to the live target (the record wins), but not under a logged-in initiator unless forced', { skip }, async () => {
  const a = sparseImage(dir, 'drift-a.img', 2 * 1024 * 1024);
  const b = sparseImage(dir, 'drift-b.img', 2 * 1024 * 1024);
  const stray = sparseImage(dir, 'drift-stray.img', 1024 * 1024);
  const iqn = uniqueIqn('drift');
  const created = await backend.create({ iqn, luns: [{ lun: 1, path: a }, { lun: 2, path: b, readonly: true }], allow: ['127.0.0.1'], persist: true });
  const tid = String(created.tid);
  const clean = section(show(), iqn);
  const adm = (...args: string[]): string => tgtd.tgtadm(['--lld', 'iscsi', ...args]);
  adm('--op', 'delete', '--mode', 'logicalunit', '--tid', tid, '--lun', '2');
  adm('--op', 'new', '--mode', 'logicalunit', '--tid', tid, '--lun', '5', '-b', stray);
  adm('--op', 'unbind', '--mode', 'target', '--tid', tid, '-I', '127.0.0.1');
  adm('--op', 'bind', '--mode', 'target', '--tid', tid, '-I', 'ALL');

  // An initiator is logged in: report only.
  adm('--op', 'bind', '--mode', 'target', '--tid', tid, '-I', '127.0.0.1');
  const initiator = 'iqn.2024-06.test.virt-iscsi:drift-holder';
  const session = await holdSession({ portal: tgtd.portal, iqn, lun: 1, initiator }, () => show().includes(`Initiator: ${initiator}`));
  try {
    const item = (await backend.sync()).find((i) => i.iqn === iqn)!;
    assert.equal(item.status, 'drift');
    assert.deepEqual(item.details, [
      `LUN 2 (${b}) is in the record but not live`,
      `LUN 5 (${stray}) is live but not in the record`,
      'initiator ALL is allowed live but not in the record',
      'not repaired: 1 initiator session(s) logged in; pass --force to repair anyway',
    ]);
    assert.ok(show().includes(`Backing store path: ${stray}`), 'nothing was changed');
  } finally {
    await session.close();
  }
  adm('--op', 'unbind', '--mode', 'target', '--tid', tid, '-I', '127.0.0.1');
  const item = (await backend.sync()).find((i) => i.iqn === iqn)!;
  assert.equal(item.status, 'repaired', JSON.stringify(item));
  assert.equal(section(show(), iqn).replace(/I_T nexus information:\n(?:\s{8}.*\n)*/, 'I_T nexus information:\n'), clean);
  assert.equal((await backend.sync({ force: true })).find((i) => i.iqn === iqn)?.status, 'in-sync');
  await backend.delete(iqn);
});

test("sync and delete never touch what is not ours: other files in conf.d, live targets without a record; an unreadable record is reported", { skip }, async () => {
  const disk = sparseImage(dir, 'ours.img', 1024 * 1024);
  const iqn = uniqueIqn('ours');
  await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: ['127.0.0.1'], persist: true });
  const foreignFile = join(confDir, 'hand-written.conf');
  const foreignText = '<target iqn.2024-06.test.virt-iscsi:hand>\n    backing-store /nonexistent.img\n</target>\n';
  writeFileSync(foreignFile, foreignText);
  // Named like ours but without our header: not ours.
  const lookalike = join(confDir, 'virt-iscsi-iqn.2024-06.test.lookalike.conf');
  writeFileSync(lookalike, foreignText);
  const broken = uniqueIqn('broken');
  const brokenFile = recordOf(broken);
  writeFileSync(brokenFile, `# virt-iscsi: target ${broken} (persistent: tgt-admin loads this file when tgtd starts)\n<target ${broken}>\n    backing-store\n</target>\n`);
  const foreign = uniqueIqn('live-foreign');
  const tid = String(800 + Math.floor(Math.random() * 90));
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', tid, '-T', foreign]);
  try {
    const report = await backend.sync();
    assert.equal(report.find((i) => i.iqn === foreign)?.status, 'unmanaged');
    const bad = report.find((i) => i.iqn === broken);
    assert.equal(bad?.status, 'unreadable');
    assert.match(bad!.details[0]!, /has no value/);
    assert.ok(!report.some((i) => i.iqn.includes('lookalike') || i.iqn.endsWith(':hand')));
    await backend.delete(iqn);
    assert.equal(readFileSync(foreignFile, 'utf8'), foreignText);
    assert.equal(readFileSync(lookalike, 'utf8'), foreignText);
    assert.ok(show().includes(foreign));
    assert.deepEqual(readdirSync(confDir).sort(), [foreignFile, brokenFile, lookalike].map((f) => f.slice(confDir.length + 1)).sort());
  } finally {
    tgtd.tgtadm(['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', tid]);
    rmSync(foreignFile);
    rmSync(lookalike);
    rmSync(brokenFile);
  }
});
