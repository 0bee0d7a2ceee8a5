// The multipath parsers on real output from the lab guest (test/fixtures/lab/multipath:
// multipath-tools 0.9.4, kernel 6.1, tgt 1.0.85; iproute2 6.1 for `ip -o addr`), the WWID
// each backend gives a LUN, and a multipath export record read back, every field checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseMultipathLl, sysfsWwid } from '../../src/hypervisor/multipath.js';
import { dropInText } from '../../src/hypervisor/multipath-dropins.js';
import { hasAddress, parseIpAddr } from '../../src/storage/addresses.js';
import { lunScsiId, lunWwid, tgtWwid } from '../../src/storage/wwid.js';
import { parseRecord, renderRecord, type ExportRecord } from '../../src/workflows/records.js';

const fixture = (path: string): string => readFileSync(new URL(`../fixtures/lab/multipath/${path}`, import.meta.url), 'utf8');
const WWID = '360000000f1c7a0e5b2d94c38a6e1d0b7';

test('multipath -ll: the map, its size and each path with its three states; nothing for no map', () => {
  const [m, ...more] = parseMultipathLl(fixture('mp-multipath-ll.txt'));
  assert.deepEqual(more, []);
  assert.deepEqual(m, {
    wwid: WWID,
    sysfs: 'dm-0',
    vendorProduct: 'IET,VIRTUAL-DISK',
    size: '64M',
    paths: [
      { hctl: '6:0:0:1', dev: 'sda', dmState: 'active', checkerState: 'ready', devState: 'running' },
      { hctl: '7:0:0:1', dev: 'sdb', dmState: 'active', checkerState: 'ready', devState: 'running' },
    ],
  });
  const failed = parseMultipathLl(fixture('mp-multipath-ll-one-failed.txt'))[0]!;
  assert.deepEqual(failed.paths.map((p) => `${p.dev} ${p.dmState} ${p.checkerState} ${p.devState}`), ['sda active ready running', 'sdb failed faulty running']);
  for (const f of ['mp-multipath-ll-missing-wwid.txt', 'mp-multipath-ll-after.txt', 'mp-multipath-ll-no-daemon.txt', 'mp-multipath-f-in-use.txt']) assert.deepEqual(parseMultipathLl(fixture(f)), [], f);
  // A friendly name puts the WWID in brackets.
  const named = parseMultipathLl(fixture('mp-multipath-ll.txt').replace(`${WWID} dm-0`, `mpatha (${WWID}) dm-0`));
  assert.deepEqual([named[0]!.wwid, named[0]!.paths.length], [WWID, 2]);
});

test("each path's WWID from sysfs is the one udev and multipath print", () => {
  for (const line of fixture('mp-path-wwids.txt').trim().split('\n')) {
    const [, sysfs, udev] = line.split(' ');
    assert.equal(sysfsWwid(`${sysfs}\n`), udev);
  }
});

test("tgt's WWID from scsi_id as the lab found it; every export's own; LIO's from the serial", () => {
  // The fixture LUN's scsi_id and the WWID the guest's kernel, udev and multipath showed for it.
  assert.equal(tgtWwid('f1c7a0e5b2d94c38a6e1d0b7'), WWID);
  // tgt's default scsi_id "IET     00010001": the same WWID for tid 1 LUN 1 on every tgtd.
  assert.equal(tgtWwid('IET     00010001'), '360000000000000000e00000000010001');
  const a = lunWwid('tgt', 'VI000000000001')!;
  const b = lunWwid('tgt', 'VI000000000002')!;
  assert.notEqual(a, b);
  assert.equal(a, lunWwid('tgt', 'VI000000000001'), 'stable');
  assert.match(lunScsiId('VI000000000001'), /^[0-9a-f]{24}$/);
  assert.equal(lunWwid('lio', 'VI3F2A9C01B7D4'), '360014053f2a9c01b7d40000000000000');
  assert.equal(lunWwid('iet', 'VI3F2A9C01B7D4'), undefined);
});

test('ip -o addr: the addresses; 127.0.0.2 is local through 127.0.0.1/8 on lo; this machine answers too', () => {
  const text = fixture('ip-o-addr.txt');
  const addrs = parseIpAddr(text);
  assert.deepEqual(addrs.map((a) => `${a.ifname} ${a.address}/${a.prefix} ${a.scope}`).slice(0, 2), ['lo 127.0.0.1/8 host', 'lo ::1/128 host']);
  assert.ok(hasAddress(addrs, '127.0.0.2'));
  assert.ok(hasAddress(addrs, '::1'));
  assert.ok(!hasAddress(addrs, '198.51.100.7'));
  assert.throws(() => hasAddress(addrs, 'stor1'), /"stor1" is not an IP address/);
  const here = spawnSync('ip', ['-o', 'addr'], { encoding: 'utf8' });
  assert.ok(parseIpAddr(here.stdout).some((a) => a.address === '127.0.0.1'), here.stdout);
});

test('a multipath record reads back; portals, min-paths and the WWID are checked like every other field', () => {
  const serial = 'VI3F2A9C01B7D4';
  const record: ExportRecord = {
    version: 2,
    name: 'db1',
    image: '/srv/db1.img',
    sizeBytes: 1 << 30,
    cdrom: false,
    readonly: false,
    storage: 'ssh://root@stor1.example.com',
    backend: 'tgt',
    backendOptions: {},
    target: 'iqn.2026-11.com.example.stor1:db1',
    lun: 1,
    serial,
    portal: '192.0.2.10:3260',
    session: { replacementTimeout: 5, noopOutInterval: 5, noopOutTimeout: 5 },
    mode: 'multipath',
    portals: ['192.0.2.10:3260', '198.51.100.10:3260'],
    minPaths: 1,
    wwid: lunWwid('tgt', serial)!,
    hypervisors: [{ uri: 'ssh://root@kvm1.example.com', connect: 'qemu:///system', initiator: 'iqn.1993-08.org.debian:01:kvm1' }],
    vm: 'db1',
    persist: true,
    createdAt: '2026-11-05T00:00:00.000Z',
  };
  assert.deepEqual(parseRecord('db1.json', renderRecord(record)), record);
  const bad = (change: Record<string, unknown>, why: RegExp): void =>
    assert.throws(() => parseRecord('/x/db1.json', JSON.stringify({ ...record, ...change })), (e: Error) => why.test(e.message) && !e.message.includes('\n'), JSON.stringify(change));
  bad({ portals: ['192.0.2.10:3260'] }, /has a bad multipath fields: portals is not a list of two or more HOST:PORT/);
  bad({ portals: ['192.0.2.10:3260', '192.0.2.10'] }, /portals lists a portal twice/);
  bad({ portals: ['198.51.100.10:3260', '192.0.2.10:3260'] }, /portals does not start with portal 192\.0\.2\.10:3260/);
  bad({ portals: ['192.0.2.10:3260', 'a b'] }, /has a bad multipath fields/);
  bad({ minPaths: 3 }, /minPaths 3 is not 1 to 2/);
  bad({ minPaths: 0 }, /minPaths 0 is not 1 to 2/);
  bad({ wwid: '/etc/passwd' }, /wwid "\/etc\/passwd" is not a SCSI WWID/);
  bad({ wwid: WWID }, new RegExp(`names WWID ${WWID}, not ${record.wwid} that tgt gives serial ${serial}`));
  bad({ backend: 'lio' }, /names WWID .* that lio gives serial/);
});

test('the drop-in: our header first (sweep tells our files by it), the WWID in a multipaths section', () => {
  const text = dropInText('db1', WWID, 'iqn.2026-11.com.example.stor1:db1');
  assert.match(text.split('\n')[0]!, /^# virt-iscsi\b/);
  assert.match(text, new RegExp(`^multipaths \\{\\n\\tmultipath \\{\\n\\t\\twwid ${WWID}\\n\\t\\tpath_grouping_policy multibus\\n`, 'm'));
});
