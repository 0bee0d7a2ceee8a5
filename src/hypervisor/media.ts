// Media in an existing cdrom drive: the way to give a running domain a CD-ROM on a bus
// that cannot hot-plug (IDE, SATA). A block device goes in with `change-media --insert
// --block`; a network LUN or a pool volume with `update-device` and the whole drive
// (change-media only knows paths). Eject is `change-media --eject`, only where the drive
// holds media (libvirt refuses to eject an empty one).
import { ValidationError } from '../errors.js';
import type { Step } from '../plan/plan.js';
import { cdromDisk, type DiskDef } from '../xml/disk.js';
import { describeSource, deviceXml, readView, resolveSource, sameSource, type SourceSpec } from './disks.js';
import { placeMedia, slotOf, type FlagChoice } from './placement.js';
import type { DeviceFlags, Virsh } from './virsh.js';

export interface InsertRequest {
  domain: string;
  dev: string;
  source: SourceSpec;
  /** Replace media already in the drive instead of refusing. */
  replace?: boolean;
  flags?: FlagChoice;
}

export interface MediaPlan {
  steps: Step[];
  /** The drive as it will be (insert) or as it was (eject). */
  disk: DiskDef;
  flags: DeviceFlags;
}

export const flagWords = (f: DeviceFlags): string => (f.live && f.config ? 'live and persistent' : f.live ? 'live only' : 'persistent, from the next start');

/**
 * Puts `disk` (a cdrom with its source) into the drive `previous` was; undo takes it out
 * again, or puts the previous media back.
 */
export function insertStep(virsh: Virsh, domain: string, previous: DiskDef, disk: DiskDef, flags: DeviceFlags, wasEmpty: boolean): Step {
  const dev = disk.target.dev;
  const path = disk.source.type === 'block' ? disk.source.dev : disk.source.type === 'file' ? disk.source.file : undefined;
  return {
    title: `insert ${describeSource(disk.source)} into cdrom drive ${dev} of domain ${domain} (${flagWords(flags)})`,
    async apply() {
      if (wasEmpty && path !== undefined) await virsh.changeMedia(domain, dev, { insert: path, block: disk.source.type === 'block' }, flags);
      else await virsh.updateDevice(domain, deviceXml(disk), flags);
    },
    async undo() {
      if (wasEmpty) await virsh.changeMedia(domain, dev, { eject: true }, flags);
      else await virsh.updateDevice(domain, deviceXml(previous), flags);
    },
  };
}

/** `media insert`: the drive must be a cdrom, and empty unless `replace`. */
export async function planInsert(virsh: Virsh, req: InsertRequest): Promise<MediaPlan> {
  const view = await readView(virsh, req.domain);
  const p = placeMedia(view, req.dev, req.flags);
  const source = await resolveSource(virsh, req.source);
  const disk = cdromDisk({ source, target: slotOf(p.drive) });
  if (!p.empty) {
    if (sameSource(p.drive.source, disk.source)) return { steps: [], disk, flags: p.flags };
    if (!req.replace) {
      throw new ValidationError(
        `cdrom drive ${JSON.stringify(req.dev)} of domain ${JSON.stringify(req.domain)} already holds ${describeSource(p.drive.source)}; eject it first (virt-iscsi media eject) or give --replace`,
        'dev',
      );
    }
  }
  return { steps: [insertStep(virsh, req.domain, p.drive, disk, p.flags, p.empty)], disk, flags: p.flags };
}

/** `media eject`: a drive already empty is done; undo puts the media back. */
export async function planEject(virsh: Virsh, req: { domain: string; dev: string; flags?: FlagChoice }): Promise<MediaPlan> {
  const view = await readView(virsh, req.domain);
  const p = placeMedia(view, req.dev, req.flags);
  if (p.empty) return { steps: [], disk: p.drive, flags: p.flags };
  const { drive, held } = p;
  return {
    steps: [
      {
        title: `eject ${describeSource(drive.source)} from cdrom drive ${req.dev} of domain ${req.domain} (${flagWords(held)})`,
        apply: () => virsh.changeMedia(req.domain, req.dev, { eject: true }, held),
        undo: () => virsh.updateDevice(req.domain, deviceXml(drive), held),
      },
    ],
    disk: drive,
    flags: held,
  };
}
