// A disk (or cdrom) in a domain, as the one step builder every caller uses (`attach`,
// `export`, `repair`): attached, or its media put into an empty cdrom drive, where
// placement.ts says it can go; found again by its marks; taken away. Attaching is planned
// when the step runs, from the domain as it is then, and planned again when libvirt
// answers that the chosen dev (or drive) was taken meanwhile: exports to one domain at the
// same moment each end up on their own dev.
import { sameIqn } from '../names/iscsi-name.js';
import { parseByPath } from '../names/by-path.js';
import { runPlan, sleep, undoAll, type Step } from '../plan/plan.js';
import { ValidationError } from '../errors.js';
import { cdromDisk, validateDisk, type DiskBus, type DiskDef, type DiskSource } from '../xml/disk.js';
import { buildController, type DomainInfo } from '../xml/domain.js';
import { describeSource, deviceXml, diskFor, readView } from './disks.js';
import { flagWords, insertStep } from './media.js';
import { chooseFlags, isEmptyDrive, place, placeMedia, slotOf, VIRTIO_SCSI, type DomainView, type FlagChoice } from './placement.js';
import { isMissing, VirshError } from './virsh-errors.js';
import type { DeviceFlags, Virsh } from './virsh.js';

/** How the disk sits in the domain, once it is there (what the records keep). */
export interface Attachment {
  dev: string;
  bus: string;
  device: 'disk' | 'cdrom';
  /** Media put into a cdrom drive the domain already had (the drive stays when taken away). */
  media: boolean;
  live: boolean;
  config: boolean;
  /** A virtio-scsi controller was added for it (removed with it when nothing else uses it). */
  controller?: { live: boolean; config: boolean };
}

/** What makes a disk the export's: our alias, or a source only this export has. */
export interface DiskMark {
  alias: string;
  /** An iSCSI LUN: its target and number. */
  target?: string;
  lun?: number;
  pool?: string;
  /** An RBD image: POOL/IMAGE. */
  rbd?: string;
}

export interface DiskRequest {
  domain: string;
  source: DiskSource;
  cdrom: boolean;
  readonly: boolean;
  /** What makes it findable again (export); without one only `dev` can find it. */
  mark?: DiskMark;
  serial?: string;
  /** A dev of the caller's choosing (else the first free one on a hot-plug-safe bus), and its bus. */
  dev?: string;
  bus?: DiskBus;
  /** 'live' for --no-persist; unset: live when the domain runs, and persistent. */
  flags?: FlagChoice;
}

/** Told before anything is changed: the controller a step is about to add (a journal writes it down first). */
export type ControllerHook = (flags: DeviceFlags, when: 'before' | 'after') => Promise<void>;


/** The export's IQN (network, block by-path) or pool (volume) names the source as ours. */
export function isOurs(d: DiskDef, m: DiskMark): boolean {
  if (d.alias === m.alias) return true;
  const s = d.source;
  switch (s.type) {
    case 'network':
      if (s.protocol === 'rbd') return m.rbd !== undefined && s.name === m.rbd;
      return m.target !== undefined && sameIqn(s.target, m.target) && s.lun === m.lun;
    case 'volume':
      return m.pool !== undefined && s.pool === m.pool;
    case 'block': {
      const id = s.dev === undefined ? undefined : parseByPath(s.dev);
      return id !== undefined && m.target !== undefined && sameIqn(id.iqn, m.target) && id.lun === m.lun;
    }
    case 'file':
      return false;
  }
}

export interface FoundDisk {
  dev: string;
  /** The disk as each configuration holds it. */
  live?: DiskDef;
  inactive?: DiskDef;
  /** Our media in a drive the domain had before (it carries someone else's alias, or none). */
  media: boolean;
}

export function findOurs(view: DomainView, m: DiskMark): FoundDisk | undefined {
  const live = view.live?.disks.find((d) => isOurs(d, m));
  const inactive = view.transient ? undefined : view.inactive.disks.find((d) => isOurs(d, m));
  const any = live ?? inactive;
  if (!any) return undefined;
  return { dev: any.target.dev, ...(live ? { live } : {}), ...(inactive ? { inactive } : {}), media: any.device === 'cdrom' && any.alias !== m.alias };
}

/** The attachment a found disk is, for the records. */
export function attachmentOf(f: FoundDisk): Attachment {
  const d = (f.live ?? f.inactive)!;
  const slot = slotOf(d);
  return { dev: f.dev, bus: slot.bus, device: d.device === 'cdrom' ? 'cdrom' : 'disk', media: f.media, live: f.live !== undefined, config: f.inactive !== undefined };
}

interface AttachPlan {
  steps: Step[];
  attachment: Attachment;
}

/** An empty cdrom drive in every configuration the change touches (the first one). */
function emptyDrive(view: DomainView, choice: FlagChoice | undefined): DiskDef | undefined {
  const flags = chooseFlags(view, choice);
  for (const d of (flags.live ? view.live : view.inactive)?.disks ?? []) {
    if (d.device !== 'cdrom') continue;
    try {
      const p = placeMedia(view, d.target.dev, choice);
      if (p.empty && p.flags.live === flags.live && p.flags.config === flags.config) return d;
    } catch {
      /* not in every configuration: not this one */
    }
  }
  return undefined;
}

function mediaPlan(virsh: Virsh, req: DiskRequest, view: DomainView, dev: string): AttachPlan {
  const p = placeMedia(view, dev, req.flags);
  const disk = cdromDisk({ source: req.source, target: slotOf(p.drive) });
  const slot = slotOf(p.drive);
  return {
    steps: [insertStep(virsh, req.domain, p.drive, disk, p.flags, true)],
    attachment: { dev, bus: slot.bus, device: 'cdrom', media: true, live: p.flags.live, config: p.flags.config },
  };
}

/** An ISO goes into an empty cdrom drive when the domain has one; anything else is a new device. */
function planDiskAttach(virsh: Virsh, req: DiskRequest, view: DomainView, onController?: ControllerHook): AttachPlan {
  const device = req.cdrom ? 'cdrom' : 'disk';
  const drive = req.cdrom && req.dev === undefined ? emptyDrive(view, req.flags) : undefined;
  if (drive) return mediaPlan(virsh, req, view, drive.target.dev);
  const p = place(view, { device, flags: req.flags, ...(req.dev !== undefined ? { dev: req.dev } : {}), ...(req.bus !== undefined ? { bus: req.bus } : {}) });
  if (p.kind === 'media') return mediaPlan(virsh, req, view, p.target.dev);
  const disk = validateDisk({
    ...diskFor(req.source, device, p.target, req.readonly),
    ...(req.mark ? { alias: req.mark.alias } : {}),
    ...(req.serial !== undefined ? { serial: req.serial } : {}),
  });
  const steps: Step[] = [];
  const c = p.controller;
  if (c) {
    const xml = buildController(c.controller);
    steps.push({
      title: `add a virtio-scsi controller to domain ${req.domain} (${flagWords(c.flags)})`,
      apply: async () => {
        await onController?.(c.flags, 'before');
        await virsh.attachDevice(req.domain, xml, c.flags);
        await onController?.(c.flags, 'after');
      },
      undo: () => virsh.detachDevice(req.domain, xml, c.flags),
    });
  }
  const xml = deviceXml(disk);
  steps.push({
    title: `attach ${describeSource(disk.source)} as ${device} ${p.target.dev} on bus ${p.target.bus}`,
    apply: () => virsh.attachDevice(req.domain, xml, p.flags),
    undo: () => virsh.detachDevice(req.domain, xml, p.flags),
  });
  const attachment: Attachment = { dev: p.target.dev, bus: p.target.bus, device, media: false, live: p.flags.live, config: p.flags.config };
  if (c) attachment.controller = c.flags;
  return { steps, attachment };
}

/**
 * The disk is in one of the configurations the request wants and not in the other (detached
 * from the running domain only, or from its definition only): it goes where it lacks, on
 * the dev it has, so the domain never holds it twice. Undefined when it lacks nowhere.
 */
function completePlan(virsh: Virsh, req: DiskRequest, view: DomainView, found: FoundDisk): AttachPlan | undefined {
  const want = chooseFlags(view, req.flags);
  const missing: DeviceFlags = { live: want.live && !found.live, config: want.config && !found.inactive };
  if (!missing.live && !missing.config) return undefined;
  const have = (found.live ?? found.inactive)!;
  const slot = slotOf(have);
  const device = have.device === 'cdrom' ? 'cdrom' : 'disk';
  const attachment: Attachment = { dev: found.dev, bus: slot.bus, device, media: found.media, live: want.live || found.live !== undefined, config: want.config || found.inactive !== undefined };
  if (found.media) {
    // Our media in a drive the domain had: the drive of the other configuration takes them too.
    const drive = (missing.live ? view.live : view.inactive)?.disks.find((d) => d.target.dev === found.dev);
    if (!drive || !isEmptyDrive(drive)) {
      const where = missing.live ? 'running domain' : 'definition';
      throw new ValidationError(`cdrom drive ${found.dev} of domain ${JSON.stringify(req.domain)} holds the export's media, but its ${where} has ${drive ? 'other media in that drive' : 'no such drive'}; eject or add it by hand`, 'dev');
    }
    return { steps: [insertStep(virsh, req.domain, drive, cdromDisk({ source: req.source, target: slotOf(drive) }), missing, true)], attachment };
  }
  const disk = validateDisk({
    ...diskFor(req.source, device, slot, req.readonly),
    ...(req.mark ? { alias: req.mark.alias } : {}),
    ...(req.serial !== undefined ? { serial: req.serial } : {}),
  });
  const xml = deviceXml(disk);
  const where = missing.live && missing.config ? '' : missing.live ? ' (the running domain lacked it)' : ' (its definition lacked it)';
  return {
    steps: [
      {
        title: `attach ${describeSource(disk.source)} as ${device} ${slot.dev} on bus ${slot.bus} again${where}`,
        apply: () => virsh.attachDevice(req.domain, xml, missing),
        undo: () => virsh.detachDevice(req.domain, xml, missing),
      },
    ],
    attachment,
  };
}

/** Another attach took the dev (or filled the drive) between our look and our change. */
function lostRace(e: unknown): boolean {
  return e instanceof VirshError && (e.failure === 'dev-taken' || e.failure === 'has-media');
}

const ATTACH_ATTEMPTS = 8;

export interface AttachStepOptions {
  /** The domain as the caller found it: the first placement is made from it, every retry from the domain as it is then. */
  view: DomainView;
  /** The disk; a function when its source is known only once the LUN is visible. */
  request: DiskRequest | (() => DiskRequest);
  /** Where it went (or was found). */
  done?: (a: Attachment) => void;
  onController?: ControllerHook;
  title?: string;
}

/**
 * The one step that gives a domain a disk or cdrom: marked disks already there are done;
 * one in only some of the configurations it should be in goes into the others on its dev;
 * otherwise it is placed from the domain as it is, planned again when another attach
 * took the dev meanwhile (only when the dev was ours to choose); undo takes exactly that
 * away again.
 */
export function attachStep(virsh: Virsh, o: AttachStepOptions): Step {
  const request = (): DiskRequest => (typeof o.request === 'function' ? o.request() : o.request);
  const view = o.view;
  let applied: Step[] = [];
  const fixed = typeof o.request === 'function' ? undefined : o.request;
  return {
    id: 'attach',
    host: virsh.runner.host,
    title: o.title ?? (fixed ? `attach ${describeSource(fixed.source)} to domain ${fixed.domain} as a ${fixed.cdrom ? 'cdrom' : 'disk'}${fixed.dev ? ` ${fixed.dev}` : ''}` : `attach the disk to domain ${view.name}`),
    async check() {
      const req = request();
      if (!req.mark) return false;
      const found = findOurs(view, req.mark);
      if (!found) return false;
      const want = chooseFlags(view, req.flags);
      if ((want.live && !found.live) || (want.config && !found.inactive)) return false;
      o.done?.(attachmentOf(found));
      return true;
    },
    async apply() {
      for (let attempt = 1; ; attempt++) {
        const req = request();
        const now = attempt === 1 ? view : await readView(virsh, view.name);
        const found = req.mark ? findOurs(now, req.mark) : undefined;
        const plan = (found && completePlan(virsh, req, now, found)) || planDiskAttach(virsh, req, now, o.onController);
        try {
          await runPlan(plan.steps);
          applied = plan.steps;
          o.done?.(plan.attachment);
          return;
        } catch (e) {
          if (attempt >= ATTACH_ATTEMPTS || req.dev !== undefined || !lostRace(e)) throw e;
          await sleep(50 + Math.floor(Math.random() * 200));
        }
      }
    },
    async undo() {
      const left = await undoAll(applied.map((step, index) => ({ step, index })));
      if (left.length > 0) throw left[0]!.error;
    },
  };
}

/**
 * Takes the export's disk out of the domain (`view`), wherever it is (running, defined or
 * both): media are ejected from a drive that was there before, our own device is detached.
 */
export async function detachDisk(virsh: Virsh, view: DomainView, mark: DiskMark): Promise<void> {
  const domain = view.name;
  const found = findOurs(view, mark);
  if (!found) return;
  const where: DeviceFlags = { live: found.live !== undefined, config: found.inactive !== undefined };
  if (found.media) {
    // The drive stays, empty, as it was before the export.
    const p = placeMedia(view, found.dev);
    const flags = { live: where.live && p.held.live, config: where.config && p.held.config };
    if (flags.live || flags.config) await virsh.changeMedia(domain, found.dev, { eject: true }, flags);
    return;
  }
  await virsh.detachDevice(domain, deviceXml((found.live ?? found.inactive)!), where);
}

/**
 * Gives a running domain the export's disk again, live, on the same dev: detached and
 * attached (media: ejected and inserted), so QEMU opens the path anew. Needed when the
 * host device behind the path was replaced (the session that made it logged out, a new
 * login made another): QEMU keeps the gone one open and every read and write fails.
 * `when` says, as the step runs, whether that happened; otherwise the step does nothing.
 */
export function replugStep(virsh: Virsh, view: DomainView, mark: DiskMark, when: () => boolean): Step {
  // The view is the domain as the run found it: the disk it runs with then is the one QEMU holds.
  const found = findOurs(view, mark);
  const live = { live: true, config: false };
  return {
    id: 'replug',
    host: virsh.runner.host,
    title: `give running domain ${view.name} the disk again if this run logged in again (QEMU holds the lost session's device)`,
    check: async () => !when() || found?.live === undefined,
    async apply() {
      const xml = deviceXml(found!.live!);
      if (found!.media) {
        await virsh.changeMedia(view.name, found!.dev, { eject: true }, live);
        await virsh.updateDevice(view.name, xml, live);
        return;
      }
      await virsh.detachDevice(view.name, xml, live);
      await virsh.attachDevice(view.name, xml, live);
    },
  };
}

const hasOurController = (info: DomainInfo): boolean => info.controllers.some((c) => c.type === 'scsi' && c.model === VIRTIO_SCSI.model && (c.index ?? 0) === VIRTIO_SCSI.index);

/** A disk other than ours is on SCSI (a disk we do not model counts when its dev is sd*: it may be). */
const otherScsiDisk = (info: DomainInfo, m: DiskMark): boolean =>
  info.disks.some((d) => !isOurs(d, m) && slotOf(d).bus === 'scsi') || info.otherDisks.some((d) => d.dev?.startsWith('sd') === true);

/**
 * Where the virtio-scsi controller that the export added (`added`, from its record) goes
 * again once its disk is detached: each configuration it was added to that still has it
 * and has no other disk on SCSI. A running domain lets go of it when its OS answers the
 * ACPI unplug request (one with no OS keeps it until it stops; its definition is clean).
 */
export function controllerToRemove(view: DomainView, m: DiskMark, added: DeviceFlags): DeviceFlags {
  const free = (info: DomainInfo | undefined): boolean => info !== undefined && hasOurController(info) && !otherScsiDisk(info, m);
  return { live: added.live && free(view.live), config: added.config && free(view.inactive) };
}

/** The domain's view, or undefined when there is no such domain (any more). */
export async function viewIfThere(virsh: Virsh, domain: string): Promise<DomainView | undefined> {
  try {
    return await readView(virsh, domain);
  } catch (e) {
    if (isMissing(e, 'domain')) return undefined;
    throw e;
  }
}
