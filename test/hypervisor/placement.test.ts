// Where disks go, from a domain's two configurations: the real dumpxml of a running domain
// (test/fixtures/virsh) and small domains built as data for each rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../src/errors.js';
import { NotFoundError } from '../../src/hypervisor/virsh-errors.js';
import {
  busForDev,
  devName,
  nextFreeDev,
  place,
  placeDetach,
  placeMedia,
  takenDevs,
  VIRTIO_SCSI,
  type DomainView,
  type FlagChoice,
  type PlacementRequest,
} from '../../src/hypervisor/placement.js';
import type { DiskBus, DiskDef } from '../../src/xml/disk.js';
import { parseDomain, type DomainInfo } from '../../src/xml/domain.js';
import { rng } from '../config/random.js';

const dir = fileURLToPath(new URL('../fixtures/virsh/', import.meta.url));
const fixtureView = (): DomainView => ({
  name: 'vit-fcap-dom',
  live: parseDomain(readFileSync(`${dir}dumpxml-running.xml`, 'utf8')),
  inactive: parseDomain(readFileSync(`${dir}dumpxml-inactive.xml`, 'utf8')),
});

const emptyIdeCdrom: DiskDef = { device: 'cdrom', source: { type: 'file' }, target: { dev: 'hdc', bus: 'ide' }, readonly: true };
const fullIdeCdrom: DiskDef = { ...emptyIdeCdrom, source: { type: 'file', file: '/srv/x.iso' } };

function info(o: { acpi?: boolean; scsi?: boolean; usb?: boolean; disks?: DiskDef[] } = {}): DomainInfo {
  const acpi = o.acpi !== false;
  return {
    type: 'qemu',
    name: 'vm',
    uuid: '2044877d-90df-49c4-84bf-139f4b530b79',
    features: acpi ? ['acpi', 'apic'] : ['apic'],
    acpi,
    disks: o.disks ?? [],
    otherDisks: [],
    controllers: [...(o.scsi === false ? [] : [{ type: 'scsi', model: 'virtio-scsi', index: 0 }]), ...(o.usb ? [{ type: 'usb', model: 'piix3-uhci', index: 0 }] : [])],
    marks: [],
  };
}

const running = (o: Parameters<typeof info>[0] = {}, inactive = o): DomainView => ({ name: 'vm', live: info(o), inactive: info(inactive) });
const shutOff = (o: Parameters<typeof info>[0] = {}): DomainView => ({ name: 'vm', inactive: info(o) });

test('disk names count like libvirt: sda..sdz, sdaa..; the bus a name implies', () => {
  assert.deepEqual([0, 1, 25, 26, 27, 701, 702].map((i) => devName('sd', i)), ['sda', 'sdb', 'sdz', 'sdaa', 'sdab', 'sdzz', 'sdaaa']);
  assert.equal(nextFreeDev('ide', new Set(['hda', 'hdb', 'hdc', 'hdd'])), undefined, 'the pc machine has four IDE places');
  assert.equal(nextFreeDev('virtio', new Set(['vda', 'sda'])), 'vdb');
  assert.deepEqual(['sdb', 'vdc', 'hdd', 'fda', 'xvda'].map(busForDev), ['scsi', 'virtio', 'ide', 'fdc', undefined]);
});

test('the real running domain: the next free dev counts live and inactive disks; no controller to add', () => {
  const view = fixtureView();
  assert.deepEqual([...takenDevs(view)].sort(), ['hdc', 'sdb', 'sdc', 'sdh']);
  const p = place(view, { device: 'disk' });
  assert.deepEqual(p, { kind: 'attach', target: { dev: 'sda', bus: 'scsi' }, flags: { live: true, config: true }, why: p.why });
  // the IDE drive is empty in both configurations, so an IDE cdrom becomes media in it
  const cd = place(view, { device: 'cdrom', bus: 'ide' });
  assert.equal(cd.kind, 'media');
  assert.deepEqual(cd.target, { dev: 'hdc', bus: 'ide' });
});

test('running -> live and persistent; shut off -> persistent; --live on a shut-off domain is refused', () => {
  assert.deepEqual(place(running(), { device: 'disk' }).flags, { live: true, config: true });
  assert.deepEqual(place(running(), { device: 'disk', flags: 'live' }).flags, { live: true, config: false });
  assert.deepEqual(place(running(), { device: 'disk', flags: 'config' }).flags, { live: false, config: true });
  assert.deepEqual(place(shutOff(), { device: 'disk' }).flags, { live: false, config: true });
  assert.deepEqual(place(shutOff(), { device: 'disk', flags: 'persistent' }).flags, { live: false, config: true });
  assert.throws(() => place(shutOff(), { device: 'disk', flags: 'live' }), (e: Error) => e instanceof ValidationError && /not running; --live.*--config/.test(e.message));
});

test('a domain without a SCSI controller gets a virtio-scsi one, where it lacks one', () => {
  const both = place(running({ scsi: false }), { device: 'disk' });
  assert.equal(both.kind, 'attach');
  assert.deepEqual(both.kind === 'attach' && both.controller, { controller: VIRTIO_SCSI, flags: { live: true, config: true } });
  const liveHasOne = place(running({ scsi: true }, { scsi: false }), { device: 'disk' });
  assert.deepEqual(liveHasOne.kind === 'attach' && liveHasOne.controller, { controller: VIRTIO_SCSI, flags: { live: false, config: true } });
  const off = place(shutOff({ scsi: false }), { device: 'cdrom' });
  assert.deepEqual(off.kind === 'attach' && off.controller, { controller: VIRTIO_SCSI, flags: { live: false, config: true } });
  const liveOnly = place(running({ scsi: false }), { device: 'disk', flags: 'live' });
  assert.deepEqual(liveOnly.kind === 'attach' && liveOnly.controller, { controller: VIRTIO_SCSI, flags: { live: true, config: false } });
});

test('without ACPI: SCSI on an existing controller works; virtio, a new controller or IDE do not, and --config is suggested', () => {
  assert.deepEqual(place(running({ acpi: false }), { device: 'disk' }).target, { dev: 'sda', bus: 'scsi' });
  const refused = (view: DomainView, req: PlacementRequest, pattern: RegExp): void =>
    assert.throws(() => place(view, req), (e: Error) => e instanceof ValidationError && pattern.test(e.message) && /--config/.test(e.message) && !e.message.includes('\n'));
  refused(running({ acpi: false }), { device: 'disk', bus: 'virtio' }, /no ACPI.*PCI/);
  refused(running({ acpi: false, scsi: false }), { device: 'disk' }, /no SCSI controller, and no ACPI/);
  refused(running({ acpi: false, scsi: false }), { device: 'cdrom' }, /nor an empty cdrom drive/);
  refused(running(), { device: 'disk', bus: 'ide' }, /bus ide cannot take a live attach/);
  refused(running(), { device: 'disk', bus: 'sata' }, /bus sata cannot take a live attach/);
  refused(running({ disks: [fullIdeCdrom] }), { device: 'cdrom', bus: 'ide' }, /no empty ide cdrom drive/);
  refused(running(), { device: 'disk', bus: 'usb' }, /no USB controller/);
  assert.deepEqual(place(running({ usb: true }), { device: 'disk', bus: 'usb' }).target, { dev: 'sda', bus: 'usb' });
  // with neither a SCSI controller nor ACPI, an empty cdrom drive still takes the media
  const m = place(running({ acpi: false, scsi: false, disks: [emptyIdeCdrom] }), { device: 'cdrom' });
  assert.deepEqual([m.kind, m.target.dev], ['media', 'hdc']);
});

test('a taken --dev is refused unless it is an empty cdrom drive and a cdrom is wanted', () => {
  const view = running({ disks: [emptyIdeCdrom, { device: 'disk', source: { type: 'block', dev: '/dev/sdz' }, target: { dev: 'sdb', bus: 'scsi' } }] });
  assert.throws(() => place(view, { device: 'disk', dev: 'sdb' }), /target dev "sdb" is already taken on domain "vm"; pick another --dev/);
  assert.throws(() => place(view, { device: 'disk', dev: 'hdc' }), /"hdc" is already taken.*media eject/);
  assert.equal(place(view, { device: 'cdrom', dev: 'hdc' }).kind, 'media');
  assert.throws(() => place(view, { device: 'disk', dev: 'hdb', bus: 'scsi' }), /does not fit --bus scsi/);
  assert.throws(() => place(view, { device: 'disk', dev: 'xvdb' }), /not a disk name/);
  assert.throws(() => place(view, { device: 'cdrom', bus: 'virtio' }), /a cdrom cannot be on bus virtio/);
  // a free --dev on IDE names a new device, which a running domain cannot take
  assert.throws(() => place(view, { device: 'cdrom', dev: 'hdd' }), /bus ide cannot take a live attach/);
  // a drive empty live but holding media in the definition is not empty for a live+config change
  const mixed = running({ disks: [emptyIdeCdrom] }, { disks: [fullIdeCdrom] });
  assert.throws(() => place(mixed, { device: 'cdrom', bus: 'ide' }), ValidationError);
  assert.equal(place(mixed, { device: 'cdrom', bus: 'ide', flags: 'live' }).kind, 'media');
});

test('never a live attach on IDE or SATA, and every cdrom gets an explicit dev (random requests)', () => {
  const r = rng(4);
  const pick = <T>(xs: readonly T[]): T => r.pick(xs);
  const buses: Array<DiskBus | undefined> = [undefined, 'scsi', 'virtio', 'sata', 'ide', 'usb'];
  const devs = [undefined, 'sda', 'sdb', 'vda', 'hdc', 'hdd'];
  const flags: Array<FlagChoice | undefined> = [undefined, 'live', 'config', 'persistent'];
  let attached = 0;
  for (let i = 0; i < 2000; i++) {
    const shape = { acpi: r.chance(0.5), scsi: r.chance(0.5), usb: r.chance(0.5), disks: pick([[], [emptyIdeCdrom], [fullIdeCdrom]]) };
    const view = r.chance(0.7) ? running(shape, { ...shape, scsi: r.chance(0.5) }) : shutOff(shape);
    const req: PlacementRequest = { device: pick(['disk', 'cdrom'] as const), bus: pick(buses), dev: pick(devs), flags: pick(flags) };
    let p;
    try {
      p = place(view, req);
    } catch (e) {
      assert.ok(e instanceof ValidationError, String(e));
      assert.ok(!(e as Error).message.includes('\n'));
      continue;
    }
    if (p.kind === 'attach') {
      attached++;
      if (p.flags.live) assert.ok(!['ide', 'sata', 'fdc'].includes(p.target.bus), JSON.stringify({ req, p }));
      if (p.flags.live && p.target.bus === 'virtio') assert.ok(view.live!.acpi);
      if (p.controller?.flags.live) assert.ok(view.live!.acpi, 'a controller is hot-plugged only with ACPI');
      assert.ok(!takenDevs(view).has(p.target.dev), 'a new device never takes a used dev');
    } else {
      const drive = (p.flags.live ? view.live : view.inactive)!.disks.find((d) => d.target.dev === p.target.dev);
      assert.equal(drive?.device, 'cdrom');
      assert.equal(req.device, 'cdrom');
    }
    assert.match(p.target.dev, /^(sd|vd|hd)[a-z]+$/);
  }
  assert.ok(attached > 200, `only ${attached} attaches: the generator is too narrow`);
});

test('detach: from where the disk is; IDE cannot leave a running domain; unknown devs are named', () => {
  const view = fixtureView();
  assert.deepEqual(placeDetach(view, 'sdb').flags, { live: true, config: true });
  assert.deepEqual(placeDetach(view, 'sdh').flags, { live: true, config: false }, 'sdh was attached live only');
  assert.deepEqual(placeDetach(view, 'sdc').flags, { live: true, config: true });
  assert.deepEqual(placeDetach(view, 'sdb', 'config').flags, { live: false, config: true });
  assert.throws(() => placeDetach(view, 'sdh', 'config'), /only in the running/);
  assert.throws(() => placeDetach(view, 'hdc'), /bus ide, which QEMU cannot hot-unplug; eject its media/);
  assert.deepEqual(placeDetach(view, 'hdc', 'config').flags, { live: false, config: true });
  assert.throws(
    () => placeDetach(view, 'sdz'),
    (e: Error) => e instanceof NotFoundError && e.message === 'no disk "sdz" on domain "vit-fcap-dom"; it has hdc, sdb, sdc, sdh',
  );
  assert.throws(() => placeDetach(running({ acpi: false, disks: [{ device: 'disk', source: { type: 'block', dev: '/dev/x' }, target: { dev: 'vda', bus: 'virtio' } }] }), 'vda'), /no ACPI/);
});

test('media: only cdrom drives; which configurations hold media', () => {
  const view = fixtureView();
  assert.deepEqual(placeMedia(view, 'hdc'), { drive: view.live!.disks[0], flags: { live: true, config: true }, empty: true, held: { live: false, config: false } });
  const sdc = placeMedia(view, 'sdc');
  assert.deepEqual([sdc.flags, sdc.held, sdc.empty], [{ live: true, config: true }, { live: true, config: true }, false]);
  assert.throws(() => placeMedia(view, 'sdb'), /"sdb" of domain "vit-fcap-dom" is a disk, not a cdrom drive/);
  const liveOnly = running({ disks: [fullIdeCdrom] }, { disks: [] });
  assert.deepEqual(placeMedia(liveOnly, 'hdc').held, { live: true, config: false });
  assert.throws(() => placeMedia(liveOnly, 'hdc', 'config'), /only in the running domain "vm"; use --live/);
  const mixed = running({ disks: [emptyIdeCdrom] }, { disks: [fullIdeCdrom] });
  assert.deepEqual([placeMedia(mixed, 'hdc').held, placeMedia(mixed, 'hdc').empty], [{ live: false, config: true }, false]);
  assert.throws(() => placeMedia(view, 'hdz'), NotFoundError);
});
