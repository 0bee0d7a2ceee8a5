// growLun on each backend: tgt against a private tgtd, checked with libiscsi's
// iscsi-readcapacity16 and tgtadm --op show; LIO's commands as data and against targetcli
// and configfs answers replayed from the lab guest (no LIO modules here; the lab runs it
// for real: test/lab/lifecycle.lab.ts); IET refuses in one line.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrerequisiteError, ValidationError } from '../../src/errors.js';
import { LocalRunner } from '../../src/runner/local.js';
import { createBackend } from '../../src/storage/backends.js';
import { IetBackend } from '../../src/storage/iet/backend.js';
import { LioBackend } from '../../src/storage/lio/backend.js';
import { backstoreName, fileioInfoSize, lioGrowPlan, storageObjectDir } from '../../src/storage/lio/plan.js';
import { TgtBackend } from '../../src/storage/tgt/backend.js';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { fixture, ReplayRunner } from './lio-replay-runner.js';
import { isoImage, sparseImage, uniqueIqn } from './tgt/files.js';
import { capacity } from './tgt/initiator.js';

const MiB = 1024 * 1024;
let tgtd: Tgtd;
let dir = '';
let backend: TgtBackend;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-grow-'));
  tgtd = await startTgtd();
  backend = new TgtBackend(new LocalRunner(), { controlPort: tgtd.controlPort, confDir: join(dir, 'conf.d') });
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const lunLines = (iqn: string, lun: number): string => {
  const shown = tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
  const block = shown.split(/^Target \d+: /m).find((b) => b.startsWith(`${iqn}\n`)) ?? '';
  return block.split(/^\s+LUN: /m).find((b) => b.startsWith(`${lun}\n`)) ?? '';
};

test('tgt: the image grown, growLun reopens it: an initiator reads the new capacity; serial, SCSI id, online kept', async () => {
  const disk = sparseImage(dir, 'grow.img', 64 * MiB);
  const iqn = uniqueIqn('grow');
  await backend.create({ iqn, luns: [{ lun: 1, path: disk, serial: 'VIGROW0001' }], allow: ['127.0.0.1'], persist: true });
  const login = { portal: tgtd.portal, iqn, lun: 1 };
  assert.equal(capacity(login), 64 * MiB);
  const ids = (s: string): string => [...s.matchAll(/^\s+(SCSI (?:ID|SN): .*)$/gm)].map((m) => m[1]).join(' / ');
  const before = ids(lunLines(iqn, 1));
  truncateSync(disk, 100 * MiB);
  assert.equal(capacity(login), 64 * MiB, 'tgtd read the size at open: the target still says 64 MiB');
  const r = await createBackend('tgt', new LocalRunner(), { controlPort: tgtd.controlPort, confDir: join(dir, 'conf.d') }).growLun(iqn, 1, { sizeBytes: 100 * MiB });
  assert.equal(r.how, `tgtd reopened ${disk}`);
  assert.equal(capacity(login), 100 * MiB, 'iscsi-readcapacity16');
  const after = lunLines(iqn, 1);
  assert.match(after, /Size: 105 MB, Block size: 512/, 'tgtd rounds to the nearest 10^6 bytes');
  assert.match(after, /Online: Yes/);
  assert.equal(ids(after), before);
  assert.match(before, /SCSI SN: VIGROW0001/);
  // Asked for a size tgtd does not see (the image was not grown that far): said in one line.
  await assert.rejects(backend.growLun(iqn, 1, { sizeBytes: 200 * MiB }), (e: unknown) => {
    assert.ok(e instanceof ValidationError);
    assert.match(e.message, /^tgtd on local shows LUN 1 of .* as 105 MB after reopening .*, not 210 MB \(209715200 bytes\)$/);
    return true;
  });
  await backend.delete(iqn, { force: true });
});

test('tgt: the drain brackets only the reopen; a reopen that fails resumes all the same, says the LUN is offline, and a later growLun with the path brings it back', async () => {
  const disk = sparseImage(dir, 'gone.img', 16 * MiB);
  const iqn = uniqueIqn('gone');
  await backend.create({ iqn, luns: [{ lun: 1, path: disk, serial: 'VIGONE0001' }], allow: ['127.0.0.1'], persist: false });
  const calls: string[] = [];
  const drain = { before: async () => void calls.push('before'), after: async () => void calls.push('after') };
  truncateSync(disk, 20 * MiB);
  await backend.growLun(iqn, 1, { sizeBytes: 20 * MiB, drain });
  assert.deepEqual(calls, ['before', 'after']);
  // The image moved away: tgtd closes the old file, cannot open the path, leaves the LUN offline and empty.
  renameSync(disk, `${disk}.moved`);
  calls.length = 0;
  await assert.rejects(backend.growLun(iqn, 1, { sizeBytes: 20 * MiB, drain }), (e: unknown) => {
    assert.ok(e instanceof ValidationError);
    assert.match(e.message, new RegExp(`^tgtd on local could not open ${disk} again for LUN 1 of ${iqn} \\(.*\\): the LUN is offline until it can; put the image back at that path and run the resize again$`));
    return true;
  });
  assert.deepEqual(calls, ['before', 'after'], 'the domains are resumed even so');
  assert.match(lunLines(iqn, 1), /Online: No[\s\S]*Backing store path: None/);
  renameSync(`${disk}.moved`, disk);
  await backend.growLun(iqn, 1, { sizeBytes: 20 * MiB, path: disk });
  assert.match(lunLines(iqn, 1), /Online: Yes[\s\S]*Backing store path: \//);
  assert.equal(capacity({ portal: tgtd.portal, iqn, lun: 1 }), 20 * MiB);
  assert.match(lunLines(iqn, 1), /SCSI SN: VIGONE0001/);
  await backend.delete(iqn, { force: true });
});

test('tgt: growLun refuses a CD-ROM LUN, a missing LUN, and a target that is not live (naming the command that restores it)', async () => {
  const iso = isoImage(dir, 'grow.iso');
  const iqn = uniqueIqn('growcd');
  await backend.create({ iqn, luns: [{ lun: 1, path: iso, cdrom: true }], allow: ['127.0.0.1'], persist: false });
  await assert.rejects(backend.growLun(iqn, 1, { sizeBytes: 4 * MiB }), /LUN 1 of .* is a cd\/dvd, not a disk: only disks grow/);
  await assert.rejects(backend.growLun(iqn, 7, { sizeBytes: 4 * MiB }), /has no LUN 7$/);
  await assert.rejects(
    backend.growLun(uniqueIqn('nosuch'), 1, { sizeBytes: 4 * MiB }),
    new RegExp(`is not live on local: run "virt-iscsi target sync --control-port ${tgtd.controlPort} --conf-dir ${join(dir, 'conf.d')}" first`),
  );
  await backend.delete(iqn, { force: true });
  assert.deepEqual([backend.capabilities.growLunInPlace, backend.capabilities.growClosesLun], [true, true]);
});

test('plan-only: [no LIO modules here] LIO grows a fileio LUN through configfs fd_dev_size, then saves; a block LUN needs nothing', () => {
  const dir1 = '/sys/kernel/config/target/core/fileio_3/vi-c6341120-lun1';
  assert.deepEqual(
    lioGrowPlan({ plugin: 'fileio', name: 'vi-c6341120-lun1', dir: dir1, fileBacked: true, sizeBytes: 96 * MiB, saved: true }).map((c) => c.argv),
    [
      ['sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', `fd_dev_size=${96 * MiB}`, `${dir1}/control`],
      ['targetcli', 'saveconfig'],
    ],
  );
  assert.deepEqual(lioGrowPlan({ plugin: 'fileio', name: 'x', dir: dir1, fileBacked: true, sizeBytes: MiB, saved: false, saveconfigPath: '/s.json' }).length, 1);
  assert.deepEqual(lioGrowPlan({ plugin: 'fileio', name: 'x', dir: dir1, fileBacked: true, sizeBytes: MiB, saved: true, saveconfigPath: '/s.json' })[1]!.argv, ['targetcli', 'saveconfig', 'savefile=/s.json']);
  assert.deepEqual(lioGrowPlan({ plugin: 'block', name: 'x', dir: '/d', fileBacked: false, sizeBytes: MiB, saved: true }), [], 'iblock reads the device size on every command');
  assert.deepEqual(lioGrowPlan({ plugin: 'fileio', name: 'x', dir: '/d', fileBacked: false, sizeBytes: MiB, saved: true }), [], 'fileio over a block device too');
  assert.throws(() => lioGrowPlan({ plugin: 'ramdisk', name: 'x', dir: '/d', fileBacked: true, sizeBytes: MiB, saved: true }), /neither fileio nor block/);
  assert.throws(() => lioGrowPlan({ plugin: 'fileio', name: 'x', dir: '/d', fileBacked: true, sizeBytes: 0, saved: true }), /not a positive whole number/);
  // find's answer: the storage object under its plugin's HBA, never another plugin's namesake.
  const found = ['/sys/kernel/config/target/core/iblock_0/vi-c6341120-lun1', dir1, ''].join('\n');
  assert.equal(storageObjectDir(found, 'fileio', 'vi-c6341120-lun1'), dir1);
  assert.equal(storageObjectDir(found, 'block', 'vi-c6341120-lun1'), '/sys/kernel/config/target/core/iblock_0/vi-c6341120-lun1');
  assert.equal(storageObjectDir(found, 'fileio', 'vi-other'), undefined);
  assert.equal(storageObjectDir('/sys/kernel/config/target/core/fileio_x/n', 'fileio', 'n'), undefined);
  const info = 'Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: /var/lib/r1.img  Size: 100663296  Mode: O_DSYNC Async: 1\n';
  assert.equal(fileioInfoSize(info), 100663296);
  assert.equal(fileioInfoSize('Status: ACTIVATED\n'), undefined);
});

test('plan-only: LioBackend.growLun finds the LUN in targetcli ls, writes configfs, saves, and reads the size back', async () => {
  const iqn = 'iqn.2024-01.test.lab:real1';
  const so = backstoreName(iqn, 1);
  const dir1 = `/sys/kernel/config/target/core/fileio_1/${so}`;
  const run = new ReplayRunner(
    [
      { match: 'targetcli ls /', replies: [{ stdout: fixture('lio/ls-created.txt') }] },
      { match: `find /sys/kernel/config/target/core -mindepth 2 -maxdepth 2 -type d -name ${so}`, replies: [{ stdout: `${dir1}\n` }] },
      { match: 'test -b /var/lib/r1.img', replies: [{ exitCode: 1 }] },
      {
        match: 'sh -c',
        replies: [{}],
        effect: (r) => void r.files.set(`${dir1}/info`, `Status: ACTIVATED  Max Queue Depth: 128\n        TCM FILEIO ID: 0        File: /var/lib/r1.img  Size: ${96 * MiB}  Mode: O_DSYNC Async: 1\n`),
      },
    ],
    new Map([['/etc/rtslib-fb-target/saveconfig.json', fixture('lio/saveconfig-created.json')]]),
  );
  const lio = new LioBackend(run);
  const r = await lio.growLun(iqn, 1, { sizeBytes: 96 * MiB });
  assert.equal(r.sizeBytes, 96 * MiB);
  const changes = run.calls.filter((c) => !c.options.query).map((c) => c.argv.join(' '));
  assert.deepEqual(changes, [`sh -c printf "%s\\n" "$1" > "$2" sh fd_dev_size=${96 * MiB} ${dir1}/control`, 'targetcli saveconfig']);
  assert.deepEqual([lio.capabilities.growLunInPlace, lio.capabilities.growClosesLun], [true, false], 'nothing closes: no pause needed');
  await assert.rejects(lio.growLun(iqn, 9, { sizeBytes: MiB }), /has no LUN 9$/);
});

test('IET refuses to grow a served LUN in one line, saying what works instead', async () => {
  const iet = new IetBackend(new ReplayRunner());
  assert.equal(iet.capabilities.growLunInPlace, false);
  await assert.rejects(iet.growLun('iqn.2024-01.test:a', 1), (e: unknown) => {
    assert.ok(e instanceof PrerequisiteError);
    assert.doesNotMatch(e.message, /\n/);
    assert.match(e.message, /^IET on ssh:\/\/root@storage\.test cannot grow LUN 1 of iqn\.2024-01\.test:a while it is served .*: unexport it, grow the image, and export it again$/);
    return true;
  });
});
