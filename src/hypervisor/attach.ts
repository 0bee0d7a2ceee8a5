// Giving a domain a disk or cdrom, and taking it away, as plans of steps. Where the device
// goes comes from placement.ts; the source is checked on the hypervisor first (disks.ts),
// so bad input changes nothing.
import { ValidationError } from '../errors.js';
import type { Step } from '../plan/plan.js';
import type { DiskBus, DiskDef } from '../xml/disk.js';
import { buildController } from '../xml/domain.js';
import { describeSource, deviceXml, diskFor, readView, resolveSource, sameSource, type SourceSpec } from './disks.js';
import { flagWords, insertStep } from './media.js';
import { place, placeDetach, placeMedia, slotOf, type FlagChoice, type Placement } from './placement.js';
import type { DeviceFlags, Virsh } from './virsh.js';

export interface AttachRequest {
  domain: string;
  source: SourceSpec;
  /** A read-only CD-ROM instead of a disk. */
  cdrom?: boolean;
  readonly?: boolean;
  bus?: DiskBus;
  dev?: string;
  flags?: FlagChoice;
}

export interface AttachPlan {
  steps: Step[];
  /** The disk as the domain will have it. */
  disk: DiskDef;
  /** How it gets there; undefined when the domain already has this disk at --dev. */
  placement?: Placement;
}

export async function planAttach(virsh: Virsh, req: AttachRequest): Promise<AttachPlan> {
  const view = await readView(virsh, req.domain);
  const device = req.cdrom ? 'cdrom' : 'disk';
  // Asked again for the same disk at the same dev: already done.
  const existing = req.dev === undefined ? undefined : (view.live ?? view.inactive).disks.find((d) => d.target.dev === req.dev);
  const source = await resolveSource(virsh, req.source);
  if (existing && existing.device === device) {
    const wanted = diskFor(source, device, slotOf(existing), req.readonly);
    if (sameSource(existing.source, wanted.source)) return { steps: [], disk: existing };
  }
  const placement = place(view, { device, bus: req.bus, dev: req.dev, flags: req.flags });
  const disk = diskFor(source, device, placement.target, req.readonly);
  const dom = req.domain;
  if (placement.kind === 'media') {
    const drive = placeMedia(view, placement.target.dev, req.flags);
    return { steps: [insertStep(virsh, dom, drive.drive, disk, drive.flags, true)], disk, placement };
  }
  const steps: Step[] = [];
  const c = placement.controller;
  if (c) {
    const xml = buildController(c.controller);
    steps.push({
      title: `add a virtio-scsi controller to domain ${dom} (${flagWords(c.flags)})`,
      apply: () => virsh.attachDevice(dom, xml, c.flags),
      undo: () => virsh.detachDevice(dom, xml, c.flags),
    });
  }
  const xml = deviceXml(disk);
  const { dev, bus } = placement.target;
  steps.push({
    title: `attach ${describeSource(disk.source)} to domain ${dom} as ${device} ${dev} on bus ${bus} (${flagWords(placement.flags)})`,
    apply: () => virsh.attachDevice(dom, xml, placement.flags),
    undo: () => virsh.detachDevice(dom, xml, placement.flags),
  });
  return { steps, disk, placement };
}

export interface DetachPlan {
  steps: Step[];
  disk: DiskDef;
  flags: DeviceFlags;
}

/** Detaches the disk at `dev`; undo attaches the same device again. */
export async function planDetach(virsh: Virsh, req: { domain: string; dev: string; flags?: FlagChoice }): Promise<DetachPlan> {
  if (req.dev === '') throw new ValidationError('--dev is empty; give the target dev of the disk, e.g. sdb', 'dev');
  const view = await readView(virsh, req.domain);
  const { disk, flags } = placeDetach(view, req.dev, req.flags);
  const xml = deviceXml(disk);
  return {
    steps: [
      {
        title: `detach ${disk.device} ${req.dev} (${describeSource(disk.source)}) from domain ${req.domain} (${flagWords(flags)})`,
        apply: () => virsh.detachDevice(req.domain, xml, flags),
        undo: () => virsh.attachDevice(req.domain, xml, flags),
      },
    ],
    disk,
    flags,
  };
}
