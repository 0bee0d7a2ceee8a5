// Where a disk goes in a domain, decided from its dumpxml alone (no I/O here). What QEMU
// can do to a running domain (checked on libvirt 9 /
// QEMU 7.2): IDE and SATA buses cannot take a hot-plugged device ("Bus 'ide.1' does not
// support hotplugging"); without ACPI nothing can be hot-plugged on PCI, so neither a
// virtio disk nor a new controller; a SCSI disk on an existing virtio-scsi controller can;
// an existing empty cdrom drive (any bus) takes new media. libvirt adds an lsilogic
// controller by itself when a SCSI disk has none, which Debian's QEMU cannot run, so we
// add a virtio-scsi one explicitly.
import { ValidationError } from '../errors.js';
import type { DiskBus, DiskDef } from '../xml/disk.js';
import type { ControllerDef, DomainInfo } from '../xml/domain.js';
import { NotFoundError } from './virsh-errors.js';
import type { DeviceFlags } from './virsh.js';

/** What the user asked for: --live, --config or --persistent; none means "from the state". */
export type FlagChoice = 'live' | 'config' | 'persistent';

export interface DomainView {
  name: string;
  /** The running configuration; undefined while the domain is shut off. */
  live?: DomainInfo;
  /** The persistent definition (dumpxml --inactive); a transient domain's is its running configuration. */
  inactive: DomainInfo;
  /** Started with `virsh create`: no definition, so nothing goes into one. */
  transient?: boolean;
}

export interface PlacementRequest {
  device: 'disk' | 'cdrom';
  bus?: DiskBus;
  dev?: string;
  flags?: FlagChoice;
}

export interface DiskSlot {
  dev: string;
  bus: DiskBus;
}

export interface ControllerAdd {
  controller: ControllerDef;
  flags: DeviceFlags;
}

export type Placement =
  /** A new disk device, after the controller it needs when there is one to add. */
  | { kind: 'attach'; target: DiskSlot; flags: DeviceFlags; controller?: ControllerAdd; why: string }
  /** New media in an existing empty cdrom drive (change-media / update-device). */
  | { kind: 'media'; target: DiskSlot; flags: DeviceFlags; why: string };

export const VIRTIO_SCSI: ControllerDef = { type: 'scsi', model: 'virtio-scsi', index: 0 };

const PREFIX: Record<DiskBus, string> = { scsi: 'sd', sata: 'sd', usb: 'sd', virtio: 'vd', ide: 'hd', fdc: 'fd' };
/** Buses QEMU cannot hot-plug on at all. */
const NO_HOTPLUG: readonly DiskBus[] = ['ide', 'sata', 'fdc'];
/** How many devices a bus takes: the pc machine's two IDE channels, one floppy controller. */
const MAX_DEVS: Partial<Record<DiskBus, number>> = { ide: 4, fdc: 2 };
const CDROM_BUSES: readonly DiskBus[] = ['scsi', 'sata', 'ide', 'usb'];

const show = JSON.stringify;
const LATER = 'or --config to attach it at the next start';

/** sda, ..., sdz, sdaa, ... as libvirt numbers them (virDiskNameToIndex). */
export function devName(prefix: string, index: number): string {
  let s = '';
  for (let i = index; i >= 0; i = Math.floor(i / 26) - 1) s = String.fromCharCode(97 + (i % 26)) + s;
  return prefix + s;
}

/** The bus a target dev name implies: sd -> scsi, vd -> virtio, hd -> ide, fd -> fdc. */
export function busForDev(dev: string): DiskBus | undefined {
  const m = /^(sd|vd|hd|fd)[a-z]+$/.exec(dev);
  return m ? ({ sd: 'scsi', vd: 'virtio', hd: 'ide', fd: 'fdc' } as const)[m[1] as 'sd' | 'vd' | 'hd' | 'fd'] : undefined;
}

/** Every target dev the domain uses, running or defined, disks we model or not. */
export function takenDevs(view: DomainView): Set<string> {
  const out = new Set<string>();
  for (const d of [view.live, view.inactive]) {
    for (const disk of d?.disks ?? []) out.add(disk.target.dev);
    for (const other of d?.otherDisks ?? []) if (other.dev) out.add(other.dev);
  }
  return out;
}

/** The first free name for the bus, or undefined when the bus is full. */
export function nextFreeDev(bus: DiskBus, taken: ReadonlySet<string>): string | undefined {
  const max = MAX_DEVS[bus] ?? 26 * 27;
  for (let i = 0; i < max; i++) {
    const dev = devName(PREFIX[bus], i);
    if (!taken.has(dev)) return dev;
  }
  return undefined;
}

/** running -> live and persistent; shut off -> persistent only; --live on a shut-off domain is refused. */
export function chooseFlags(view: DomainView, choice?: FlagChoice): DeviceFlags {
  const running = view.live !== undefined;
  if (view.transient) {
    if (choice === 'config' || choice === 'persistent') throw new ValidationError(`domain ${show(view.name)} is transient (started with virsh create): it has no definition to change; use --live`, choice);
    return { live: true, config: false };
  }
  if (choice === 'live') {
    if (!running) throw new ValidationError(`domain ${show(view.name)} is not running; --live needs a running domain (use --config)`, 'live');
    return { live: true, config: false };
  }
  if (choice === 'config') return { live: false, config: true };
  return { live: running, config: true };
}

/** A cdrom (or floppy) drive with no media in it. */
export function isEmptyDrive(d: DiskDef): boolean {
  if (d.device !== 'cdrom' && d.device !== 'floppy') return false;
  return (d.source.type === 'block' && d.source.dev === undefined) || (d.source.type === 'file' && d.source.file === undefined);
}

const find = (info: DomainInfo | undefined, dev: string): DiskDef | undefined => info?.disks.find((d) => d.target.dev === dev);

/** An empty cdrom drive in every configuration the change touches, optionally on one bus or with one name. */
function emptyDrive(view: DomainView, flags: DeviceFlags, match: { bus?: DiskBus; dev?: string }): DiskDef | undefined {
  const first = flags.live ? view.live : view.inactive;
  return first?.disks.find((d) => {
    if (d.device !== 'cdrom' || (match.dev !== undefined && d.target.dev !== match.dev)) return false;
    if (match.bus !== undefined && d.target.bus !== match.bus) return false;
    const views = [flags.live ? view.live : undefined, flags.config ? view.inactive : undefined].filter((v) => v !== undefined);
    return views.every((v) => {
      const same = find(v, d.target.dev);
      return same !== undefined && isEmptyDrive(same);
    });
  });
}

const hasScsi = (info: DomainInfo | undefined): boolean => (info?.controllers ?? []).some((c) => c.type === 'scsi');
const hasUsb = (info: DomainInfo | undefined): boolean => (info?.controllers ?? []).some((c) => c.type === 'usb' && c.model !== 'none');

/** A disk's target dev and bus (the bus its dev name implies when libvirt left it out). */
export function slotOf(d: DiskDef): DiskSlot {
  return { dev: d.target.dev, bus: d.target.bus ?? busForDev(d.target.dev) ?? 'ide' };
}

/** Checks --bus and --dev agree with each other and with the device kind; the bus they give, if any. */
function requestedBus(req: PlacementRequest): DiskBus | undefined {
  let bus = req.bus;
  if (req.dev !== undefined) {
    const implied = busForDev(req.dev);
    if (implied === undefined) throw new ValidationError(`--dev ${show(req.dev)} is not a disk name such as sdb, vdb or hdc`, 'dev');
    if (bus !== undefined && PREFIX[bus] !== PREFIX[implied]) {
      throw new ValidationError(`--dev ${show(req.dev)} does not fit --bus ${bus}: ${bus} disks are named ${PREFIX[bus]}a, ${PREFIX[bus]}b, ...`, 'dev');
    }
    bus ??= implied;
  }
  if (req.device === 'cdrom' && bus !== undefined && !CDROM_BUSES.includes(bus)) {
    throw new ValidationError(`a cdrom cannot be on bus ${bus}; it takes ${CDROM_BUSES.join(', ')}`, 'bus');
  }
  return bus;
}

/** Where a new disk or cdrom goes, and how (attach, after a controller; or media into a drive). */
export function place(view: DomainView, req: PlacementRequest): Placement {
  const flags = chooseFlags(view, req.flags);
  const taken = takenDevs(view);
  const bus = requestedBus(req);
  const dom = `domain ${show(view.name)}`;
  const media = (d: DiskDef, why: string): Placement => ({ kind: 'media', target: slotOf(d), flags, why });

  if (req.dev !== undefined && taken.has(req.dev)) {
    const drive = req.device === 'cdrom' ? emptyDrive(view, flags, { dev: req.dev }) : undefined;
    if (drive) return media(drive, `${req.dev} is an empty cdrom drive: the media goes in`);
    const held = find(view.live, req.dev) ?? find(view.inactive, req.dev);
    const advice = held && held.device === 'cdrom' ? 'eject its media first (virt-iscsi media eject) or pick another --dev' : 'pick another --dev, or leave --dev out';
    throw new ValidationError(`target dev ${show(req.dev)} is already taken on ${dom}; ${advice}`, 'dev');
  }
  const attach = (b: DiskBus, why: string, controller?: ControllerAdd): Placement => {
    const dev = req.dev ?? nextFreeDev(b, taken);
    if (dev === undefined) throw new ValidationError(`${dom} has no free target dev left on bus ${b}; pick another --bus`, 'dev');
    return { kind: 'attach', target: { dev, bus: b }, flags, why, ...(controller ? { controller } : {}) };
  };

  if (!flags.live) {
    const b = bus ?? 'scsi';
    const controller = b === 'scsi' && !hasScsi(view.inactive) ? { controller: VIRTIO_SCSI, flags: { live: false, config: true } } : undefined;
    return attach(b, `${dom} takes it in its definition, for the next start`, controller);
  }

  const live = view.live!;
  if (bus !== undefined && NO_HOTPLUG.includes(bus)) {
    // A --dev that is free names a new device, which cannot be; without one, a drive may do.
    const drive = req.device === 'cdrom' && req.dev === undefined ? emptyDrive(view, flags, { bus }) : undefined;
    if (drive) return media(drive, `${drive.target.dev} is an empty ${bus} cdrom drive, and ${bus} cannot hot-plug: the media goes in`);
    const noDrive = req.device === 'cdrom' ? ` and ${dom} has no empty ${bus} cdrom drive` : '';
    throw new ValidationError(`bus ${bus} cannot take a live attach (QEMU cannot hot-plug IDE, SATA or floppy)${noDrive}; use --bus scsi, ${LATER}`, 'bus');
  }
  if (bus === 'virtio') {
    if (!live.acpi) throw new ValidationError(`${dom} has no ACPI, so QEMU cannot hot-plug on PCI (virtio); use --bus scsi, ${LATER}`, 'bus');
    return attach('virtio', `${dom} runs with ACPI: virtio hot-plugs on PCI`);
  }
  if (bus === 'usb') {
    if (!hasUsb(live)) throw new ValidationError(`${dom} has no USB controller to hot-plug a USB disk on; use --bus scsi, ${LATER}`, 'bus');
    return attach('usb', `${dom} has a USB controller`);
  }
  // SCSI, asked for or by default.
  if (hasScsi(live) || live.acpi) {
    const cflags = { live: !hasScsi(live), config: flags.config && !hasScsi(view.inactive) };
    const controller = cflags.live || cflags.config ? { controller: VIRTIO_SCSI, flags: cflags } : undefined;
    const why = hasScsi(live) ? `${dom} has a SCSI controller to hot-plug on` : `${dom} has no SCSI controller: a virtio-scsi one is hot-plugged first (it has ACPI)`;
    return attach('scsi', why, controller);
  }
  if (bus === undefined && req.device === 'cdrom') {
    const drive = emptyDrive(view, flags, {});
    if (drive) return media(drive, `${dom} has neither a SCSI controller nor ACPI to add one, but ${drive.target.dev} is an empty cdrom drive: the media goes in`);
  }
  const noDrive = req.device === 'cdrom' ? ', nor an empty cdrom drive' : '';
  throw new ValidationError(`${dom} has no SCSI controller, and no ACPI to hot-plug one (or a virtio disk)${noDrive}; use --config to attach it at the next start`, 'bus');
}

/** The disk a detach removes and where from; IDE/SATA disks cannot leave a running domain. */
export function placeDetach(view: DomainView, dev: string, choice?: FlagChoice): { disk: DiskDef; flags: DeviceFlags } {
  const dom = `domain ${show(view.name)}`;
  const other = [...(view.live?.otherDisks ?? []), ...view.inactive.otherDisks].find((d) => d.dev === dev);
  if (other) throw new ValidationError(`disk ${show(dev)} of ${dom} is of a kind virt-iscsi does not model (${other.problem}); remove it with virsh detach-disk`, 'dev');
  const liveDisk = find(view.live, dev);
  const inactiveDisk = view.transient ? undefined : find(view.inactive, dev);
  if (!liveDisk && !inactiveDisk) throw new NotFoundError('disk', dev, dom, `it has ${[...takenDevs(view)].join(', ') || 'no disks'}`);
  const flags = chooseFlags(view, choice);
  if (choice === 'live' && !liveDisk) throw new ValidationError(`disk ${show(dev)} is only in the definition of ${dom}, not running; use --config`, 'dev');
  if (choice === 'config' && !inactiveDisk) throw new ValidationError(`disk ${show(dev)} is only in the running ${dom}, not in its definition; use --live`, 'dev');
  const result = { live: flags.live && liveDisk !== undefined, config: flags.config && inactiveDisk !== undefined };
  if (result.live) {
    const bus = slotOf(liveDisk!).bus;
    if (NO_HOTPLUG.includes(bus)) {
      const advice = liveDisk!.device === 'cdrom' ? 'eject its media instead (virt-iscsi media eject), or' : 'use';
      throw new ValidationError(`disk ${show(dev)} of ${dom} is on bus ${bus}, which QEMU cannot hot-unplug; ${advice} --config to remove it at the next start`, 'dev');
    }
    if (bus === 'virtio' && !view.live!.acpi) {
      throw new ValidationError(`${dom} has no ACPI, so QEMU cannot hot-unplug the virtio disk ${show(dev)}; use --config to remove it at the next start`, 'dev');
    }
  }
  return { disk: (result.live ? liveDisk : inactiveDisk) ?? liveDisk!, flags: result };
}

export interface DrivePlacement {
  /** The drive as the changed configuration holds it (the running one first). */
  drive: DiskDef;
  flags: DeviceFlags;
  /** Empty in every configuration the change touches. */
  empty: boolean;
  /** The configurations, among those touched, where the drive holds media. */
  held: DeviceFlags;
}

/** A cdrom drive that media go into or come out of, and the configurations that change. */
export function placeMedia(view: DomainView, dev: string, choice?: FlagChoice): DrivePlacement {
  const dom = `domain ${show(view.name)}`;
  const liveDrive = find(view.live, dev);
  const inactiveDrive = view.transient ? undefined : find(view.inactive, dev);
  const drive = liveDrive ?? inactiveDrive;
  if (!drive) throw new NotFoundError('disk', dev, dom, `it has ${[...takenDevs(view)].join(', ') || 'no disks'}`);
  if (drive.device !== 'cdrom') throw new ValidationError(`${show(dev)} of ${dom} is a ${drive.device}, not a cdrom drive; media go into cdrom drives`, 'dev');
  const flags = chooseFlags(view, choice);
  const result = { live: flags.live && liveDrive !== undefined, config: flags.config && inactiveDrive !== undefined };
  if (!result.live && !result.config) {
    throw new ValidationError(`cdrom drive ${show(dev)} is ${liveDrive ? 'only in the running' : 'only in the definition of'} ${dom}; use ${liveDrive ? '--live' : '--config'}`, 'dev');
  }
  const held = { live: result.live && !isEmptyDrive(liveDrive!), config: result.config && !isEmptyDrive(inactiveDrive!) };
  return { drive: (result.live ? liveDrive : inactiveDrive)!, flags: result, empty: !held.live && !held.config, held };
}
