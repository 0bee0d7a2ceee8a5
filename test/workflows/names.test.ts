// The pure parts of the export workflow: names, records, mode choice, parsers (on real
// captured output), and the placement of an export's disk (from real dumpxml output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { parseDomain } from '../../src/xml/domain.js';
import { findOurs, isOurs } from '../../src/hypervisor/disk-steps.js';
import { chapUser, checkExportName, defaultExportName, exportTargetIqn, generatedInitiator, hostAuthority, looksLikeIso, newChapSecret, newSerial } from '../../src/workflows/names.js';
import { parsePoolCapabilities, type HypervisorFacts } from '../../src/workflows/probe.js';
import { AUTO_MODES } from '../../src/workflows/modes.js';
import { localStateDir, parseRecord, renderRecord, sameRecord, type ExportRecord } from '../../src/workflows/records.js';
import { volumeLun } from '../../src/hypervisor/pools.js';

const fixture = (path: string): string => readFileSync(new URL(`../fixtures/${path}`, import.meta.url), 'utf8');

test('export names: the image base name by default; anything an IQN, a libvirt name and a file name cannot all take is refused', () => {
  assert.equal(defaultExportName('/srv/images/disk1.img'), 'disk1');
  assert.equal(defaultExportName('/iso/Debian 12 (netinst).iso'), 'debian-12-netinst');
  assert.equal(defaultExportName('/x/my.data.disk.raw'), 'my.data.disk');
  for (const ok of ['a', 'disk1', 'web-1.data', 'x'.repeat(48)]) assert.equal(checkExportName(ok), ok);
  for (const bad of ['', '-x', '.x', 'Disk', 'a_b', 'a:b', 'a/b', 'x'.repeat(49), 'a b']) {
    assert.throws(() => checkExportName(bad), (e: unknown) => e instanceof ValidationError && e.message.includes(JSON.stringify(bad)), bad);
  }
  assert.ok(looksLikeIso('/x/A.ISO') && !looksLikeIso('/x/a.img'));
  assert.equal(chapUser('web.1-data'), 'virt-iscsi-web_1-data', "CHAP user names take no '.'");
});

test('target IQN from the storage host name: a name without a dot is HOST.localdomain; the date is the current month', () => {
  assert.equal(hostAuthority('stor1.example.com\n'), 'stor1.example.com');
  assert.equal(hostAuthority('vm'), 'vm.localdomain');
  assert.equal(hostAuthority('Stor_1.Example.COM.'), 'stor-1.example.com');
  const now = new Date(Date.UTC(2026, 10, 25));
  assert.equal(exportTargetIqn(hostAuthority('stor1.example.com'), 'disk1', now), 'iqn.2026-11.com.example.stor1:disk1');
  assert.equal(exportTargetIqn(hostAuthority('vm'), 'disk1', now), 'iqn.2026-11.localdomain.vm:disk1');
});

test('the generated initiator name is stable for a host and differs between hosts', () => {
  const a = generatedInitiator('kvm1.example.com', '3d1219c7c4c5404aaa1f6d2a48adfda4');
  assert.equal(a, generatedInitiator('kvm1.example.com', '3d1219c7c4c5404aaa1f6d2a48adfda4\n'));
  assert.match(a, /^iqn\.2024-01\.dev\.virt-iscsi:initiator\.kvm1\.[0-9a-f]{8}$/);
  assert.notEqual(a, generatedInitiator('kvm1.example.com', '00000000000000000000000000000000'));
  assert.match(generatedInitiator('odd_host', undefined), /^iqn\.2024-01\.dev\.virt-iscsi:initiator\.odd-host\.[0-9a-f]{8}$/);
});

test('serials and CHAP secrets: what tgt and initiators take', () => {
  assert.match(newSerial(), /^VI[0-9A-F]{12}$/);
  assert.notEqual(newSerial(), newSerial());
  const s = newChapSecret();
  assert.equal(s.length, 16);
  assert.match(s, /^[A-Za-z2-9]+$/);
});

const base: HypervisorFacts = {
  view: { name: 'd', inactive: parseDomain(fixture('virsh/dumpxml-inactive.xml')) },
  pools: [],
  iscsiadm: false,
  iscsiTcp: 'missing',
  multipathTools: false,
  qemuRbd: false,
  iscsiDirect: false,
  hostname: 'kvm1',
};

/** The mode export picks without --mode: the first automatic one the hypervisor can do. */
const chooseMode = (f: HypervisorFacts): string => AUTO_MODES.find((m) => m.unavailable(f, 'kvm1') === undefined)!.name;

test('mode: an iscsi pool when open-iscsi can log in, else iscsi-direct, else a network disk', () => {
  assert.equal(chooseMode({ ...base, iscsiadm: true, iscsiTcp: 'loaded', iscsiDirect: true }), 'pool');
  assert.equal(chooseMode({ ...base, iscsiadm: true, iscsiTcp: 'loadable' }), 'pool');
  assert.equal(chooseMode({ ...base, iscsiadm: true, iscsiTcp: 'missing', iscsiDirect: true }), 'direct', 'no iscsi_tcp (this machine)');
  assert.equal(chooseMode({ ...base, iscsiadm: false, iscsiTcp: 'loaded', iscsiDirect: true }), 'direct');
  assert.equal(chooseMode(base), 'network');
});

test('virsh pool-capabilities (libvirt 9.0, captured here): the pool types it can run', () => {
  const types = parsePoolCapabilities(fixture('workflows/pool-capabilities.xml'));
  assert.ok(types.includes('iscsi') && types.includes('iscsi-direct'));
  assert.ok(!types.includes('rbd'), 'rbd is listed as supported="no"');
  assert.equal(volumeLun('unit:0:0:1'), 1);
  assert.equal(volumeLun('unit:0:0:12'), 12);
  assert.equal(volumeLun('weird'), undefined);
});

const record: ExportRecord = {
  version: 2,
  name: 'disk1',
  image: '/srv/disk1.img',
  sizeBytes: 1048576,
  cdrom: false,
  readonly: false,
  storage: 'ssh://root@stor1',
  backend: 'tgt',
  backendOptions: { controlPort: 3261 },
  target: 'iqn.2026-11.com.example.stor1:disk1',
  lun: 1,
  serial: 'VI0123456789AB',
  portal: '192.0.2.10:3260',
  mode: 'direct',
  hypervisors: [{ uri: 'local', connect: 'qemu:///system', initiator: 'iqn.2024-01.dev.virt-iscsi:initiator.kvm1.0035969e' }],
  pool: 'virt-iscsi-disk1',
  vm: 'web1',
  persist: true,
  createdAt: '2026-11-25T00:00:00.000Z',
};

test('records: read back what is written; the same export whatever the key order or the time it was written', () => {
  assert.deepEqual(parseRecord('x.json', renderRecord(record)), record);
  const shuffled = Object.fromEntries(Object.entries(record).reverse()) as unknown as ExportRecord;
  assert.ok(sameRecord(shuffled, record));
  assert.ok(sameRecord({ ...record, createdAt: '2027-01-01T00:00:00.000Z' }, record));
  assert.ok(!sameRecord({ ...record, backendOptions: { controlPort: 3262 } }, record), 'nested values count');
  assert.ok(!sameRecord(undefined, record));
  for (const [text, why] of [
    ['{', /is not JSON/],
    ['{"version":3}', /has version 3, not 2/],
    [JSON.stringify({ ...record, mode: 'floppy' }), /has mode "floppy"/],
    [JSON.stringify({ ...record, name: '../etc' }), /has a bad name/],
    [JSON.stringify({ ...record, target: undefined }), /has no target/],
  ] as const) {
    assert.throws(() => parseRecord('/var/lib/virt-iscsi/exports/x.json', text), why);
  }
  assert.equal(localStateDir({ XDG_STATE_HOME: '/s' }), '/s/virt-iscsi/exports');
  assert.match(localStateDir({ XDG_STATE_HOME: 'relative' }), /\/\.local\/state\/virt-iscsi\/exports$/, 'a relative XDG_STATE_HOME is ignored (XDG spec)');
});

test("an export's disk is found by its alias or by a source only it has (running dumpxml, captured)", () => {
  const running = parseDomain(fixture('virsh/dumpxml-running.xml'));
  const view = { name: 'vit-fcap-dom', live: running, inactive: parseDomain(fixture('virsh/dumpxml-inactive.xml')) };
  // sdb is volume unit:0:0:2 of pool vit-fcap; sdc a network cdrom of ...:fcap LUN 3.
  const byPool = findOurs(view, { alias: 'ua-virt-iscsi-x', target: 'iqn.2024-01.dev.virt-iscsi:other', lun: 1, pool: 'vit-fcap' });
  assert.deepEqual(byPool && [byPool.dev, byPool.live !== undefined, byPool.inactive !== undefined, byPool.media], ['sdb', true, true, false]);
  const byIqn = findOurs(view, { alias: 'ua-virt-iscsi-x', target: 'IQN.2024-01.dev.virt-iscsi:fcap', lun: 3 });
  assert.deepEqual(byIqn && [byIqn.dev, byIqn.media], ['sdc', true], 'a cdrom without our alias: media in a drive that was there');
  assert.equal(findOurs(view, { alias: 'ua-virt-iscsi-x', target: 'iqn.2024-01.dev.virt-iscsi:fcap', lun: 9 }), undefined);
  const block = { device: 'disk' as const, source: { type: 'block' as const, dev: '/dev/disk/by-path/ip-192.0.2.1:3260-iscsi-iqn.2026-11.x.y:d-lun-1' }, target: { dev: 'sdz' } };
  assert.ok(isOurs(block, { alias: 'ua-virt-iscsi-d', target: 'iqn.2026-11.x.y:d', lun: 1 }));
  assert.ok(!isOurs(block, { alias: 'ua-virt-iscsi-d', target: 'iqn.2026-11.x.y:d', lun: 2 }));
});
