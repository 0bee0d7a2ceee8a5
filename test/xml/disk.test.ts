import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { buildDisk, cdromDisk, parseDisk, validateDisk, type DiskDef } from '../../src/xml/disk.js';
import { rng } from '../config/random.js';
import { randomDisk } from './gen.js';
import { validateDisks } from './schema.js';

// ../shared/docs/seed-workflow.md §3 and §4, exactly.
const SEED_BLOCK_DISK = `<disk type='block' device='disk'>
  <driver name='qemu' type='raw'/>
  <source dev='/dev/disk/by-path/ip-192.168.122.1:3260-iscsi-iqn.2001-04.org.ultimana:storage.disk1-lun-0'/>
  <target dev='hda' bus='ide'/>
</disk>`;
const SEED_CDROM = `<disk type='file' device='cdrom'>
  <source file='/dev/disk/by-path/ip-10.68.99.75:3260-iscsi-iqn.test:test-lun-0'/>
  <target dev='hdc' bus='ide'/>
  <readonly/>
</disk>`;

test("the seed page's block disk parses, builds back equal and passes the libvirt schema", async () => {
  const def: DiskDef = {
    device: 'disk',
    source: { type: 'block', dev: '/dev/disk/by-path/ip-192.168.122.1:3260-iscsi-iqn.2001-04.org.ultimana:storage.disk1-lun-0' },
    driver: { name: 'qemu', type: 'raw' },
    target: { dev: 'hda', bus: 'ide' },
  };
  assert.deepEqual(parseDisk(SEED_BLOCK_DISK), def);
  assert.deepEqual(parseDisk(buildDisk(def)), def);
  await validateDisks([SEED_BLOCK_DISK, buildDisk(def)]);
});

test("the seed page's cdrom, its slips fixed: a by-path device is type='block', and a hot-pluggable cdrom sits on scsi", async () => {
  const dev = '/dev/disk/by-path/ip-10.68.99.75:3260-iscsi-iqn.test:test-lun-0';
  // as written it is a file source (libvirt would treat the device node as an image file)
  assert.deepEqual(parseDisk(SEED_CDROM).source, { type: 'file', file: dev });
  const fixed = cdromDisk({ source: { type: 'block', dev }, target: { dev: 'hdc', bus: 'ide' } });
  assert.equal(
    buildDisk(fixed),
    `<disk type="block" device="cdrom">\n  <driver name="qemu" type="raw"/>\n  <source dev="${dev}"/>\n  <target dev="hdc" bus="ide"/>\n  <readonly/>\n</disk>\n`,
  );
  const hotplug = cdromDisk({ source: { type: 'block', dev }, target: { dev: 'sdc', bus: 'scsi' } });
  assert.deepEqual(parseDisk(buildDisk(hotplug)), hotplug);
  await validateDisks([SEED_CDROM, buildDisk(fixed), buildDisk(hotplug)]);
});

test('cdromDisk always makes the drive read-only, and an empty cdrom drive (no source) parses and builds', () => {
  const empty = cdromDisk({ source: { type: 'file' }, target: { dev: 'hdc', bus: 'ide' } });
  assert.equal(empty.readonly, true);
  assert.equal(buildDisk(empty), '<disk type="file" device="cdrom">\n  <driver name="qemu" type="raw"/>\n  <target dev="hdc" bus="ide"/>\n  <readonly/>\n</disk>\n');
  assert.deepEqual(parseDisk("<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>"), {
    device: 'cdrom',
    source: { type: 'file' },
    target: { dev: 'hdc', bus: 'ide' },
    readonly: true,
  });
  assert.deepEqual(parseDisk("<disk type='block' device='cdrom'><target dev='sdc' bus='scsi'/></disk>").source, { type: 'block' });
});

test("network disks: name='IQN/LUN', hosts, initiator and CHAP auth inside <source> (or beside it, as older libvirt wrote)", () => {
  const def: DiskDef = {
    device: 'disk',
    source: {
      type: 'network',
      protocol: 'iscsi',
      target: 'iqn.2001-04.com.example:storage.disk1',
      lun: 1,
      hosts: [{ name: 'fe80::1', port: 3260 }],
      initiator: 'iqn.2024-01.com.example:host1',
      auth: { username: 'chapuser', secret: { usage: 'lun1-chap' } },
    },
    target: { dev: 'sdb', bus: 'scsi' },
  };
  const xml = buildDisk(def);
  assert.match(xml, /<source protocol="iscsi" name="iqn.2001-04.com.example:storage.disk1\/1">/);
  assert.match(xml, /<auth username="chapuser">\s*<secret type="iscsi" usage="lun1-chap"\/>\s*<\/auth>/);
  assert.deepEqual(parseDisk(xml), def);
  const outside = `<disk type='network' device='disk'>
    <auth username='chapuser'><secret type='iscsi' usage='lun1-chap'/></auth>
    <source protocol='iscsi' name='iqn.2001-04.com.example:storage.disk1/1'><host name='fe80::1' port='3260'/>
      <initiator><iqn name='iqn.2024-01.com.example:host1'/></initiator></source>
    <target dev='sdb' bus='scsi'/></disk>`;
  assert.deepEqual(parseDisk(outside), def);
  // libvirt reads a name without /LUN as LUN 0
  const noLun = parseDisk("<disk type='network'><source protocol='iscsi' name='iqn.2001-04.com.example:t'><host name='h'/></source><target dev='sda'/></disk>");
  assert.equal(noLun.source.type === 'network' && noLun.source.protocol === 'iscsi' && noLun.source.lun, 0);
  // device defaults to disk
  assert.equal(noLun.device, 'disk');
});

test('volume disks from a pool, with an optional mode', () => {
  const def: DiskDef = { device: 'lun', source: { type: 'volume', pool: 'lun1', volume: 'unit:0:0:1', mode: 'direct' }, target: { dev: 'sdb', bus: 'scsi' } };
  assert.match(buildDisk(def), /<disk type="volume" device="lun">\s*<source pool="lun1" volume="unit:0:0:1" mode="direct"\/>/);
  assert.deepEqual(parseDisk(buildDisk(def)), def);
});

test('the per-device table: sources, buses and empty drives', () => {
  const base: DiskDef = { device: 'disk', source: { type: 'block', dev: '/dev/sdb' }, target: { dev: 'sdb', bus: 'scsi' } };
  const refuses = (d: DiskDef, field: string, words: string) =>
    assert.throws(() => buildDisk(d), (e: unknown) => e instanceof ValidationError && e.field === field && e.message.includes(words), words);
  refuses({ ...base, device: 'lun', source: { type: 'file', file: '/srv/x.img' } }, 'source', 'a lun cannot have a file source; it takes block, network, volume');
  refuses({ ...base, device: 'floppy', source: { type: 'network', protocol: 'iscsi', target: 'iqn.2001-04.com.example:t', lun: 0, hosts: [{ name: 'h' }] }, target: { dev: 'fda', bus: 'fdc' } }, 'source', 'a floppy cannot have a network source');
  refuses({ ...base, device: 'cdrom', target: { dev: 'vdb', bus: 'virtio' } }, 'bus', 'a cdrom cannot be on bus virtio');
  refuses({ ...base, device: 'lun', target: { dev: 'sdb', bus: 'sata' } }, 'bus', 'a lun cannot be on bus sata');
  refuses({ ...base, device: 'floppy', target: { dev: 'fda', bus: 'scsi' } }, 'bus', 'a floppy cannot be on bus scsi');
  refuses({ ...base, source: { type: 'block' } }, 'disk source dev', 'disk source dev is missing; only a cdrom or floppy drive may be empty');
  refuses({ ...base, source: { type: 'file' } }, 'disk source file', 'only a cdrom or floppy drive may be empty');
  refuses({ ...base, source: { type: 'network', protocol: 'iscsi', target: 'iqn.2001-04.com.example:t', lun: 0, hosts: [] } }, 'host', 'takes exactly one source host; got 0');
  refuses({ ...base, source: { type: 'network', protocol: 'iscsi', target: 'iqn.2001-04.com.example:t', lun: 0, hosts: [{ name: 'a' }, { name: 'b' }] } }, 'host', 'got 2');
  // and what the table allows builds
  for (const ok of [
    { ...base, device: 'lun' as const },
    { ...base, device: 'cdrom' as const, source: { type: 'file' as const }, target: { dev: 'hdc', bus: 'ide' as const } },
    { ...base, device: 'floppy' as const, source: { type: 'file' as const, file: '/srv/f.img' }, target: { dev: 'fda', bus: 'fdc' as const } },
  ]) {
    assert.deepEqual(parseDisk(buildDisk(ok)), ok);
  }
});

test('aliases: a user alias must start with ua-; the alias libvirt gives a running disk is read but never written', () => {
  const base: DiskDef = { device: 'disk', source: { type: 'file', file: '/srv/a.img' }, target: { dev: 'vda', bus: 'virtio' } };
  assert.deepEqual(parseDisk(buildDisk({ ...base, alias: 'ua-export.lun1' })), { ...base, alias: 'ua-export.lun1' });
  assert.throws(() => buildDisk({ ...base, alias: 'virtio-disk0' }), (e: unknown) => e instanceof ValidationError && e.field === 'alias' && e.message.includes('"virtio-disk0" is not a user alias'));
  assert.throws(() => buildDisk({ ...base, alias: 'ua-a b' }), (e: unknown) => e instanceof ValidationError && e.field === 'alias');
  const live = parseDisk("<disk type='file' device='disk'><source file='/srv/a.img'/><target dev='vda' bus='virtio'/><alias name='virtio-disk0'/></disk>");
  assert.deepEqual(live, { ...base, liveAlias: 'virtio-disk0' });
  assert.ok(!buildDisk(live).includes('alias'));
});

test("addresses: drive numbers in decimal, PCI numbers in libvirt's hex", () => {
  const base: DiskDef = { device: 'disk', source: { type: 'file', file: '/srv/a.img' }, target: { dev: 'vda', bus: 'virtio' } };
  const pci: DiskDef = { ...base, address: { type: 'pci', domain: 0, bus: 0, slot: 10, function: 1 } };
  assert.match(buildDisk(pci), /<address type="pci" domain="0x0000" bus="0x00" slot="0x0a" function="0x1"\/>/);
  assert.deepEqual(parseDisk(buildDisk(pci)), pci);
  assert.deepEqual(parseDisk("<disk type='file'><source file='/srv/a.img'/><target dev='vda' bus='virtio'/><address type='pci' domain='0' bus='0' slot='10' function='1'/></disk>"), pci);
  const drive: DiskDef = { ...base, target: { dev: 'sda', bus: 'scsi' }, address: { type: 'drive', controller: 1, bus: 0, target: 3, unit: 0 } };
  assert.match(buildDisk(drive), /<address type="drive" controller="1" bus="0" target="3" unit="0"\/>/);
  assert.deepEqual(parseDisk(buildDisk(drive)), drive);
  assert.throws(() => buildDisk({ ...base, address: { type: 'pci', domain: 0, bus: 0, slot: 32, function: 0 } }), /disk address slot 32 is not an integer from 0 to 31/);
  assert.throws(() => parseDisk("<disk type='file'><source file='/a'/><target dev='vda'/><address type='ccw' cssid='0xfe'/></disk>"), /address type "ccw" is not drive or pci/);
});

test('serials keep their leading zeros (the codec does not turn them into numbers)', () => {
  const d: DiskDef = { device: 'disk', source: { type: 'block', dev: '/dev/sdb' }, target: { dev: 'sdb', bus: 'scsi' }, serial: '0012' };
  assert.match(buildDisk(d), /<serial>0012<\/serial>/);
  assert.equal(parseDisk(buildDisk(d)).serial, '0012');
});

test('bad disks are refused with one line naming the value', () => {
  const base: DiskDef = { device: 'disk', source: { type: 'block', dev: '/dev/sdb' }, target: { dev: 'sdb', bus: 'scsi' } };
  const net = (over: object): DiskDef => ({ ...base, source: { type: 'network', protocol: 'iscsi', target: 'iqn.2001-04.com.example:t', lun: 1, hosts: [{ name: '192.0.2.1' }], ...over } });
  const cases: Array<[DiskDef, string]> = [
    [{ ...base, source: { type: 'block', dev: 'dev/sdb' } }, 'disk source dev "dev/sdb" is not allowed; expected an absolute path'],
    [{ ...base, source: { type: 'block', dev: '/dev/sd\u0000b' } }, 'contains a control character'],
    [{ ...base, target: { dev: 'xyz' } }, 'disk target dev "xyz"'],
    [{ ...base, target: { dev: 'sdb', bus: 'nvme' as never } }, 'disk target bus "nvme" is not one of'],
    [{ ...base, device: 'tape' as never }, 'disk device "tape" is not one of'],
    [{ ...base, serial: 'a/b' }, 'disk serial "a/b"'],
    [{ ...base, driver: { cache: 'sometimes' as never } }, 'disk driver cache "sometimes"'],
    [{ ...base, driver: { type: 'Raw!' } }, 'disk driver type "Raw!"'],
    [net({ target: 'iqn.2001-04.com.example:t/1' }), 'disk source target "iqn.2001-04.com.example:t/1" is not a valid iSCSI name'],
    [net({ lun: 65536 }), 'disk source LUN 65536'],
    [net({ lun: -1 }), 'disk source LUN -1'],
    [net({ hosts: [{ name: '192.0.2.1', port: 70000 }] }), 'disk source host port 70000'],
    [net({ hosts: [{ name: 'a_b' }] }), 'disk source host "a_b"'],
    [net({ initiator: 'iqn' }), 'disk source initiator "iqn"'],
    [net({ auth: { username: 'u@x', secret: { usage: 'u' } } }), 'disk CHAP user "u@x"'],
    [{ ...base, source: { type: 'volume', pool: 'p/q', volume: 'v' } }, 'disk source pool "p/q"'],
    [{ ...base, source: { type: 'volume', pool: 'p', volume: '..' } }, 'disk source volume ".."'],
    [{ ...base, source: { type: 'volume', pool: 'p', volume: 'v', mode: 'guest' as never } }, 'disk source mode "guest"'],
  ];
  for (const [d, words] of cases) {
    assert.throws(() => buildDisk(d), (e: unknown) => e instanceof ValidationError && e.message.includes(words) && !e.message.includes('\n'), words);
  }
  assert.throws(() => parseDisk("<disk type='network'><source protocol='nbd' name='export'/><target dev='vda'/></disk>"), /protocol "nbd" is not iscsi or rbd/);
  assert.throws(() => parseDisk("<disk type='nvme'><target dev='vda'/></disk>"), /disk type "nvme" is not block, file, network or volume/);
  assert.throws(() => parseDisk("<disk type='network'><source protocol='iscsi' name='iqn.2001-04.com.example:t/x'><host name='h'/></source><target dev='sda'/></disk>"), /disk source LUN "x" is not a decimal number/);
  assert.throws(() => parseDisk('<domain/>'), /no <disk> element/);
});

test('hostile paths, pool and volume names survive escaping', () => {
  const hostile = `/srv/it's "a" <b> & c/ü😀.iso`;
  const d = cdromDisk({ source: { type: 'file', file: hostile }, target: { dev: 'sdc', bus: 'scsi' } });
  const xml = buildDisk(d);
  assert.ok(xml.includes('&lt;b&gt;') && xml.includes('&amp;') && xml.includes('&quot;a&quot;'), xml);
  assert.deepEqual(parseDisk(xml), d);
  const v: DiskDef = { device: 'disk', source: { type: 'volume', pool: `p"&<>'`, volume: `v ü'"` }, target: { dev: 'sdb', bus: 'scsi' } };
  assert.deepEqual(parseDisk(buildDisk(v)), v);
});

test('round trip: parse(build(x)) deep-equals x for 400 seeded disks, and all pass the libvirt schema inside a domain', async () => {
  const r = rng(4242);
  const built: string[] = [];
  for (let i = 0; i < 400; i++) {
    const d = randomDisk(r);
    const xml = buildDisk(d);
    assert.deepEqual(parseDisk(xml), d, `case ${i}:\n${xml}`);
    assert.deepEqual(validateDisk(d), d);
    built.push(xml);
  }
  for (let i = 0; i < built.length; i += 100) await validateDisks(built.slice(i, i + 100));
});
