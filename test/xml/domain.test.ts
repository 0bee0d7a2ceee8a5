import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { buildController, buildMarks, parseDomain, parseMarks, VIRT_ISCSI_NS, type ExportMark } from '../../src/xml/domain.js';
import { minimalDomainXml } from '../helpers/libvirt.js';
import { rng } from '../config/random.js';
import { randomController, randomMark } from './gen.js';
import { validateAll } from './schema.js';
import { wrapInDomain } from '../helpers/xml-validate.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/xml/in/${name}`, import.meta.url), 'utf8');

test('virsh dumpxml of a running domain: identity, ACPI, every disk in full, controllers, our marks', () => {
  const d = parseDomain(fixture('domain-running.xml'));
  assert.equal(d.type, 'qemu');
  assert.equal(d.id, 2);
  assert.equal(d.name, 'vit-cap-dom');
  assert.equal(d.uuid, '2044877d-90df-49c4-84bf-139f4b530b79');
  assert.equal(d.arch, 'x86_64');
  assert.equal(d.machine, 'pc-i440fx-7.2');
  assert.deepEqual(d.features, ['acpi', 'apic']);
  assert.equal(d.acpi, true);
  assert.deepEqual(d.disks[0], {
    device: 'disk',
    source: {
      type: 'network',
      protocol: 'iscsi',
      target: 'iqn.2024-01.dev.virt-iscsi:capture',
      lun: 1,
      hosts: [{ name: '127.0.0.1', port: 48308 }],
      initiator: 'iqn.2024-01.dev.virt-iscsi:capture-initiator',
    },
    driver: { name: 'qemu', type: 'raw', cache: 'none' },
    target: { dev: 'sda', bus: 'scsi' },
    serial: '0012',
    alias: 'ua-lun1',
    address: { type: 'drive', controller: 0, bus: 0, target: 0, unit: 0 },
  });
  assert.deepEqual(d.disks[1], {
    device: 'cdrom',
    source: { type: 'volume', pool: 'vit-cap-direct', volume: 'unit:0:0:2' },
    driver: { name: 'qemu', type: 'raw' },
    target: { dev: 'sdb', bus: 'scsi' },
    readonly: true,
    liveAlias: 'scsi0-0-0-1',
    address: { type: 'drive', controller: 0, bus: 0, target: 0, unit: 1 },
  });
  // the empty IDE cdrom drive, and a qcow2 file disk on a PCI address
  assert.deepEqual(d.disks[2]!.source, { type: 'file' });
  assert.equal(d.disks[2]!.liveAlias, 'ide0-1-0');
  assert.deepEqual(d.disks[3]!.address, { type: 'pci', domain: 0, bus: 0, slot: 3, function: 0 });
  assert.deepEqual(d.otherDisks, []);
  assert.deepEqual(d.controllers, [
    { type: 'scsi', model: 'virtio-scsi', index: 0 },
    { type: 'usb', model: 'piix3-uhci', index: 0 },
    { type: 'pci', model: 'pci-root', index: 0 },
    { type: 'ide', index: 0 },
  ]);
  assert.deepEqual(d.marks, [{ name: 'cap', dev: 'sda' }]);
});

test('virsh dumpxml --inactive of the same domain: no id, no libvirt aliases, the same disks', () => {
  const live = parseDomain(fixture('domain-running.xml'));
  const inactive = parseDomain(fixture('domain-inactive.xml'));
  assert.equal(inactive.id, undefined);
  assert.ok(inactive.disks.every((disk) => disk.liveAlias === undefined));
  const withoutLive = live.disks.map(({ liveAlias: _, ...rest }) => rest);
  // the running empty drive shows only the driver name; the definition keeps type='raw'
  assert.deepEqual(inactive.disks.map((disk) => disk.target.dev), withoutLive.map((disk) => disk.target.dev));
  assert.deepEqual(inactive.disks[0], withoutLive[0]);
  assert.deepEqual(inactive.disks[1], withoutLive[1]);
  assert.deepEqual(inactive.disks[3], withoutLive[3]);
  assert.deepEqual(inactive.disks[2]!.driver, { name: 'qemu', type: 'raw' });
  assert.deepEqual(inactive.marks, live.marks);
});

test('a domain without <acpi/> says so (it cannot hotplug on pci.0)', () => {
  const withAcpi = parseDomain(minimalDomainXml('t-acpi').replace('<name>', '<uuid>2044877d-90df-49c4-84bf-139f4b530b79</uuid><name>'));
  assert.equal(withAcpi.acpi, true);
  const d = parseDomain(minimalDomainXml('t-noacpi', { acpi: false, ideCdrom: true }).replace('<name>', '<uuid>2044877d90df49c484bf139f4b530b79</uuid><name>'));
  assert.equal(d.acpi, false);
  assert.deepEqual(d.features, ['apic']);
  assert.deepEqual(d.disks, [{ device: 'cdrom', source: { type: 'file' }, target: { dev: 'hdc', bus: 'ide' }, readonly: true }]);
});

test('disks the model does not cover are kept aside with their target dev and the reason', () => {
  const xml = `<domain type='kvm'><name>x</name><uuid>2044877d-90df-49c4-84bf-139f4b530b79</uuid><devices>
    <disk type='network' device='disk'><source protocol='nbd' name='export'><host name='nbd1'/></source><target dev='vda' bus='virtio'/></disk>
    <disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='1'><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='disk'><source file='/srv/a.img'/><target dev='vdc' bus='virtio'/></disk>
  </devices></domain>`;
  const d = parseDomain(xml);
  assert.deepEqual(d.disks.map((disk) => disk.target.dev), ['vdc']);
  assert.deepEqual(
    d.otherDisks.map((o) => [o.type, o.dev]),
    [
      ['network', 'vda'],
      ['nvme', 'vdb'],
    ],
  );
  assert.match(d.otherDisks[0]!.problem, /protocol "nbd" is not iscsi or rbd/);
  assert.deepEqual(d.controllers, []);
  assert.deepEqual(d.marks, []);
});

test('marks: only our namespace counts, under any prefix', () => {
  const doc = (meta: string) => `<domain type='kvm'><name>x</name><uuid>2044877d-90df-49c4-84bf-139f4b530b79</uuid><metadata>${meta}</metadata></domain>`;
  assert.deepEqual(parseDomain(doc(`<other:exports xmlns:other="https://example.com/ns"><other:export name="n" dev="sda"/></other:exports>`)).marks, []);
  assert.deepEqual(
    parseDomain(doc(`<app:x xmlns:app="https://example.com/a"/><vit:exports xmlns:vit="${VIRT_ISCSI_NS}"><vit:export name="a" dev="sda" lun="1"/><vit:export name="b" dev="sdb"/></vit:exports>`)).marks,
    [
      { name: 'a', dev: 'sda', lun: 1 },
      { name: 'b', dev: 'sdb' },
    ],
  );
  assert.throws(() => parseDomain(doc(`<vi:exports xmlns:vi="${VIRT_ISCSI_NS}"><vi:export name="a" dev="sda" target="iqn.x"/></vi:exports>`)), /mark target "iqn.x"/);
});

test('marks round trip through the element virsh metadata --set takes (200 seeded, hostile names)', () => {
  const r = rng(9);
  for (let i = 0; i < 200; i++) {
    const marks: ExportMark[] = Array.from({ length: r.int(0, 3) }, () => randomMark(r));
    const xml = buildMarks(marks);
    assert.deepEqual(parseMarks(xml), marks, xml);
  }
  assert.deepEqual(parseMarks(''), []);
  assert.equal(buildMarks([{ name: 'web1-disk', dev: 'sdb', target: 'iqn.2024-01.com.example:web1', lun: 1, portal: '192.0.2.1:3260' }]), '<exports>\n  <export name="web1-disk" dev="sdb" target="iqn.2024-01.com.example:web1" lun="1" portal="192.0.2.1:3260"/>\n</exports>\n');
  assert.throws(() => buildMarks([{ name: '', dev: 'sdb' }]), (e: unknown) => e instanceof ValidationError && e.message === 'mark name is missing');
});

test("controller fragments for attach-device, e.g. the virtio-scsi controller a SCSI cdrom needs; libvirt's schema accepts them", async () => {
  assert.equal(buildController({ type: 'scsi', model: 'virtio-scsi' }), '<controller type="scsi" model="virtio-scsi"/>\n');
  assert.equal(buildController({ type: 'scsi', model: 'virtio-scsi', index: 1 }), '<controller type="scsi" index="1" model="virtio-scsi"/>\n');
  assert.throws(() => buildController({ type: 'floppy' }), /controller type "floppy" is not one of/);
  assert.throws(() => buildController({ type: 'scsi', model: 'Virtio SCSI' }), /controller model "Virtio SCSI"/);
  assert.throws(() => buildController({ type: 'scsi', index: 256 }), /controller index 256/);
  const r = rng(3);
  const fragments = Array.from({ length: 10 }, () => buildController(randomController(r)));
  await validateAll([wrapInDomain(fragments.join(''))], 'domain');
});

test('documents that are not domains are refused', () => {
  assert.throws(() => parseDomain('<pool/>'), /no <domain> element/);
  assert.throws(() => parseDomain("<domain type='kvm'><name>x</name></domain>"), /domain uuid is missing/);
});
