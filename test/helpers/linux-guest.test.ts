// The test guest for real: Debian's cloud kernel with a busybox initramfs under TCG,
// driven through its virtio-serial agent, with disks QEMU reads over iSCSI (libiscsi)
// from a private tgtd on 127.0.0.1. Proves the raw steps an online resize needs (tgt
// re-reading the image size, `virsh blockresize`, the guest seeing the new capacity) with
// a guest writing all along, and what a tgtd restart under a running guest does.
// Checks use tools we did not write: virt-xml-validate, tgtadm, iscsi-readcapacity16,
// virsh, and the guest kernel's own /sys/block.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDisk, type DiskDef } from '../../src/xml/disk.js';
import { cleanupStack } from './cleanups.js';
import { ensureLibvirtd } from './libvirt.js';
import { checkPattern, expectedGen, guestDomainXml, guestImage, startGuest, readHostBlocks, virshAsync, type Guest } from './linux-guest.js';
import { startTgtd, type Tgtd } from './tgtd.js';
import { virtXmlValidate } from './xml-validate.js';

const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


test('checkPattern finds a wrong generation, a wrong block number and a block never written', () => {
  const w = { firstBlock: 10, blocks: 4, blocksWritten: 6, errors: [] as string[] };
  // writes 0..5 went to blocks 10,11,12,13,10,11: the last ones are gens 4,5,2,3
  assert.deepEqual([10, 11, 12, 13].map((b) => expectedGen(b, 6, 10, 4)), [4, 5, 2, 3]);
  const good: Record<number, string> = { 10: 'VIW blk=10 gen=4', 11: 'VIW blk=11 gen=5', 12: 'VIW blk=12 gen=2', 13: 'VIW blk=13 gen=3' };
  assert.deepEqual(checkPattern((b) => good[b]!, w), []);
  const bad = checkPattern((b) => ({ ...good, 10: 'VIW blk=10 gen=0', 12: 'VIW blk=13 gen=2', 13: '\0\0' })[b]!, w);
  assert.equal(bad.length, 3, bad.join('\n'));
  // Only three writes: block 13 must still be zeros.
  assert.deepEqual(checkPattern((b) => ({ 10: 'VIW blk=10 gen=0', 11: 'VIW blk=11 gen=1', 12: 'VIW blk=12 gen=2', 13: '' })[b]!, { ...w, blocksWritten: 3 }), []);
  // A failed last write may have left the block's previous content.
  assert.deepEqual(checkPattern((b) => ({ ...good, 11: 'VIW blk=11 gen=1' })[b]!, { ...w, errors: ['gen=5 blk=11 dd exit 1: I/O error'] }), []);
});

describe('Linux guest under TCG with QEMU iSCSI disks from a private tgtd', { timeout: 170_000 }, () => {
  const { cleanup, close } = cleanupStack();
  const id = randomBytes(4).toString('hex');
  const iqn = `iqn.2024-01.dev.virt-iscsi:guest-${id}`;
  const lld = ['--lld', 'iscsi'];
  let tgtd: Tgtd;
  let guest: Guest;
  let dir: string;
  let image: string;
  let iso: string;
  const serial = `vit-g-${id}`;

  /** The target as it is after a (re)start of tgtd: LUN 1 the image, LUN 2 a CD-ROM. */
  const makeTarget = (): void => {
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'target', '--tid', '1', '--targetname', iqn]);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', image]);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '2', '-b', iso, '--device-type', 'cd']);
    tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'target', '--tid', '1', '--initiator-address', 'ALL']);
  };
  const capacity = (lun: number): number =>
    Number(/Total size:(\d+)/.exec(execFileSync('iscsi-readcapacity16', [`iscsi://${tgtd.portal}/${iqn}/${lun}`], { encoding: 'utf8' }))?.[1]);
  /** "SCSI ID: ... / SCSI SN: ..." of a LUN, as tgtadm shows it. */
  const lunIdentity = (lun: number): string => {
    const shown = tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']);
    const block = shown.split(/^\s+LUN: /m).find((b) => b.startsWith(`${lun}\n`)) ?? '';
    return [...block.matchAll(/^\s+(SCSI (?:ID|SN): .*)$/gm)].map((m) => m[1]!.trim()).join(' / ');
  };
  const sessions = (): string[] => [...tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']).matchAll(/Initiator: (\S+)/g)].map((m) => m[1]!);
  const iscsiDisk = (lun: number, dev: string, extra: Partial<DiskDef> = {}): DiskDef => ({
    device: 'disk',
    source: { type: 'network', protocol: 'iscsi', target: iqn, lun, hosts: [{ name: '127.0.0.1', port: tgtd.port }] },
    driver: { name: 'qemu', type: 'raw', cache: 'none' },
    target: { dev, bus: 'scsi' },
    ...extra,
  });
  const attach = async (d: DiskDef): Promise<void> => {
    const file = join(dir, `${d.target.dev}.xml`);
    writeFileSync(file, buildDisk(d));
    await virshAsync(['attach-device', guest.domain, file, '--live']);
  };
  /** tgt reads an image's size when it opens it: going offline and setting the same path reopens it. */
  const reopenLun = (lun: number, path: string): void =>
    void tgtd.tgtadm([...lld, '--op', 'update', '--mode', 'logicalunit', '--tid', '1', '--lun', String(lun), '--params', `online=0,path=${path}`]);

  before(async () => {
    cleanup(await ensureLibvirtd());
    dir = mkdtempSync(join(tmpdir(), 'vit-guest-'));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    image = join(dir, 'lun1.img');
    iso = join(dir, 'cd.iso');
    writeFileSync(image, '');
    truncateSync(image, 64 * MiB);
    writeFileSync(iso, Buffer.alloc(2 * MiB, 'CD'));
    tgtd = await startTgtd();
    cleanup(() => tgtd.stop());
    makeTarget();
    guest = await startGuest({ name: 'test' });
    cleanup(() => guest.destroy());
  });
  after(() => close());

  test('the domain XML passes virt-xml-validate; the guest boots and runs commands', async (t) => {
    const img = await guestImage();
    const xml = guestDomainXml({
      name: 'vit-guest-schema',
      kernel: img.kernel,
      initrd: img.initrd,
      consoleLog: '/var/tmp/c.log',
      agentSocket: '/var/tmp/a.sock',
      disks: [iscsiDisk(1, 'sda')],
      extraXml: "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    });
    virtXmlValidate(xml, 'domain');
    assert.match(xml, /<domain type="qemu">/);
    assert.match(xml, /<acpi\/>/);
    assert.doesNotMatch(xml, /<interface/);
    t.diagnostic(`guest build or reuse ${img.ms} ms, boot (virsh start to agent HELLO) ${guest.bootMs} ms, kernel ${img.kernelRelease}`);

    assert.equal((await guest.sh('uname -r')).trim(), img.kernelRelease);
    const r = await guest.run("printf 'a\\nb\\0c'; echo 'to stderr' >&2; exit 7");
    assert.deepEqual(r, { stdout: 'a\nb\0c', stderr: 'to stderr\n', exitCode: 7 });
    // The guest kills a command at its timeout, with what it started; the agent keeps serving.
    const slow = await guest.run('sleep 31 & sleep 31', { timeoutMs: 1000 });
    assert.equal(slow.exitCode, 137);
    assert.equal((await guest.sh('ps | grep -c "[s]leep 31" || true')).trim(), '0');
    assert.equal((await guest.sh('echo "$((6 * 7))"')).trim(), '42');
    // A new connection gets a new HELLO and works.
    await guest.reconnect();
    assert.equal((await guest.sh('echo again')).trim(), 'again');
    assert.match(guest.consoleLog(), /vi-init: agent on \/dev\/vport/);
  });

  test('hot-plugged iSCSI disk and CD-ROM appear in the guest with their sizes and serial', async () => {
    await attach(iscsiDisk(1, 'sda', { serial }));
    await attach({ ...iscsiDisk(2, 'sdb'), device: 'cdrom', readonly: true });
    const disk = await guest.waitForDisk('sda');
    assert.deepEqual(disk, { dev: 'sda', sizeBytes: 64 * MiB });
    assert.deepEqual(await guest.waitForDisk({ serial }), disk);
    const cd = await guest.waitForDisk('sdb');
    assert.match(cd.dev, /^sr\d$/);
    assert.equal(cd.sizeBytes, 2 * MiB);
    assert.equal((await guest.sh(`dd if=/dev/${cd.dev} bs=2048 count=1 status=none | head -c 4`)), 'CDCD');
    // QEMU logged in to tgtd itself, once per disk.
    assert.equal(sessions().length, 2, tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']));
  });

  test('online grow under a writing guest: tgt reopens the image, virsh blockresize, the guest sees it; no I/O error, data intact', async (t) => {
    // Data from before the resize, away from the writer's region.
    const marker = `before-resize-${id}`;
    await guest.sh(`printf '%s' ${marker} | dd of=/dev/sda bs=4096 seek=1000 conv=sync,fsync oflag=direct status=none`);
    await guest.startWriter('sda', { firstBlock: 0, blocks: 64 });
    await sleep(2000);

    // 1) In place, the guest running: grow the file, tgt reopens it (one tgtadm call).
    const identity = lunIdentity(1);
    assert.match(identity, /^SCSI ID: \S.* \/ SCSI SN: \S+$/);
    truncateSync(image, 96 * MiB);
    let t0 = Date.now();
    reopenLun(1, image);
    const reopenMs = Date.now() - t0;
    assert.equal(capacity(1), 96 * MiB);
    assert.deepEqual(lunIdentity(1), identity, 'the reopened LUN keeps its SCSI ID and serial');
    t0 = Date.now();
    await virshAsync(['blockresize', guest.domain, 'sda', `${96 * MiB}B`]);
    // QEMU tells the guest (virtio-scsi "capacity changed"): no rescan needed.
    let seenMs = -1;
    for (let i = 0; i < 40 && seenMs < 0; i++) {
      if ((await guest.diskSize('sda')) === 96 * MiB) seenMs = Date.now() - t0;
      else await sleep(250);
    }
    assert.ok(seenMs >= 0, `guest still sees ${await guest.diskSize('sda')} bytes 10 s after blockresize`);

    // 2) The same with the domain paused around the reopen (no request in flight at all).
    truncateSync(image, 128 * MiB);
    t0 = Date.now();
    await virshAsync(['suspend', guest.domain]);
    reopenLun(1, image);
    await virshAsync(['resume', guest.domain]);
    const pauseMs = Date.now() - t0;
    assert.equal(capacity(1), 128 * MiB);
    await virshAsync(['blockresize', guest.domain, 'sda', `${128 * MiB}B`]);
    await sleep(1000);
    if ((await guest.diskSize('sda')) !== 128 * MiB) await guest.rescan('sda');
    assert.equal(await guest.diskSize('sda'), 128 * MiB);
    assert.match(await guest.sh('dmesg'), /sda: detected capacity change from 196608 to 262144/);

    // The new space works end to end: the last block, written in the guest, read on the host.
    const last = 128 * MiB / 4096 - 1;
    await guest.sh(`printf 'tail-${id}' | dd of=/dev/sda bs=4096 seek=${last} conv=sync,fsync oflag=direct status=none`);
    const w = await guest.stopWriter();
    t.diagnostic(`reopen in place ${reopenMs} ms, guest saw 96 MiB ${seenMs} ms after blockresize; suspend+reopen+resume pause ${pauseMs} ms; writer ${w.blocksWritten} writes, max ${w.maxWriteMs} ms`);
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.kernelWarnings, []);
    assert.deepEqual(w.mismatches, []);
    assert.ok(w.blocksWritten > 64, `the writer wrote only ${w.blocksWritten} blocks`);
    assert.deepEqual(checkPattern(readHostBlocks(image, w), w), []);
    const host = execFileSync('dd', [`if=${image}`, 'bs=4096', 'skip=1000', 'count=1', 'status=none']).toString('latin1');
    assert.ok(host.startsWith(marker));
    assert.equal((await guest.sh('dd if=/dev/sda bs=4096 skip=1000 count=1 iflag=direct status=none | head -c 64 | tr -d "\\0"')), marker);
    const tail = execFileSync('dd', [`if=${image}`, 'bs=4096', `skip=${last}`, 'count=1', 'status=none']).toString('latin1');
    assert.ok(tail.startsWith(`tail-${id}`));
  });

  test('tgtd killed and started again under a writing guest: QEMU reconnects, the write stalls, no I/O error', async (t) => {
    const before = sessions();
    await guest.startWriter('sda', { firstBlock: 200, blocks: 32 });
    await sleep(2000);
    const downMs = 4000;
    const t0 = Date.now();
    await tgtd.stop();
    await sleep(downMs);
    await tgtd.restart();
    makeTarget();
    const backMs = Date.now() - t0;
    const p0 = await guest.writerProgress();
    let resumedMs = -1;
    for (let i = 0; i < 120 && resumedMs < 0; i++) {
      if ((await guest.writerProgress()).writes > p0.writes + 3) resumedMs = Date.now() - t0;
      else await sleep(500);
    }
    assert.ok(resumedMs >= 0, 'the writer made no progress 60 s after tgtd came back');
    const w = await guest.stopWriter();
    t.diagnostic(`tgtd down ${backMs} ms; writes resumed ${resumedMs} ms after the kill; longest write ${w.maxWriteMs} ms; stalls ${w.stalls.join(', ')}`);
    assert.deepEqual(w.errors, []);
    assert.deepEqual(w.mismatches, []);
    // The writer was really cut off: one write waited out the outage.
    assert.ok(w.maxWriteMs >= downMs - 1000, `longest write ${w.maxWriteMs} ms, tgtd was down ${backMs} ms`);
    assert.deepEqual(checkPattern(readHostBlocks(image, w), w), []);
    // Both of QEMU's sessions came back (the CD-ROM's logs in again on its next command or NOP).
    assert.ok(sessions().length >= 1 && sessions().every((s) => before.includes(s)), `sessions after restart: ${sessions().join(', ')}`);
    assert.equal(await guest.diskSize('sda'), 128 * MiB);
  });
});
