// Giving a domain a disk or cdrom, and taking it away, as plans of steps. Where the device
// goes comes from placement.ts; the source is checked on the hypervisor first (disks.ts),
// so bad input changes nothing.
import { ValidationError } from '../errors.js';
import type { Step } from '../plan/plan.js';
import type { DiskBus, DiskDef } from '../xml/disk.js';
import { attachStep } from './disk-steps.js';
import { describeSource, deviceXml, diskFor, readView, resolveSource, sameSource, type SourceSpec } from './disks.js';
import { flagWords } from './media.js';
import { place, placeDetach, slotOf, type FlagChoice, type Placement } from './placement.js';
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
  // Placed now, so what is printed is what happens; the step places it again at that dev.
  const placement = place(view, { device, bus: req.bus, dev: req.dev, flags: req.flags });
  const disk = diskFor(source, device, placement.target, req.readonly);
  const { dev, bus } = placement.target;
  const flags = req.flags ?? (placement.flags.live && placement.flags.config ? 'persistent' : placement.flags.live ? 'live' : 'config');
  const step = attachStep(virsh, {
    view,
    request: { domain: req.domain, source, cdrom: device === 'cdrom', readonly: req.readonly === true, dev, bus, flags },
    title:
      placement.kind === 'media'
        ? `insert ${describeSource(source)} into cdrom drive ${dev} of domain ${req.domain} (${flagWords(placement.flags)})`
        : `attach ${describeSource(source)} to domain ${req.domain} as ${device} ${dev} on bus ${bus} (${flagWords(placement.flags)})${placement.controller ? ', adding a virtio-scsi controller' : ''}`,
  });
  return { steps: [step], disk, placement };
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
