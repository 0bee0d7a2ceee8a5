// `resize NAME --size SIZE|+DELTA`: an export's disk grows while its VM runs, as a plan of
// steps, journaled and rolled back like export:
//   grow the image as it was made (sparse stays sparse, an allocated one gets its new part
//   allocated) -> the target reports the new size (domains paused around it where the
//   backend closes the LUN to do so) -> each hypervisor's host sees it (the mode says how:
//   a rescan, a pool refresh, nothing) -> QEMU is told (virsh blockresize) and tells the
//   guest -> both records hold the new size.
// An rbd: image grows with `rbd resize` (thin: nothing is allocated). Served natively, QEMU
// holds it open through librbd and learns the size only at blockresize (its own size is
// cached; QEMU's block_resize would resize the image through librbd too, so growing it
// first makes that call a no-op and works with the domain shut off); served through the
// tgt-rbd gateway, tgtd reopens it as it reopens a file.
// Shrinking is refused (it would cut off the guest's data), and so is a read-only or CD-ROM
// export. A grown image is never shrunk back: a rollback after it leaves the file longer,
// which loses nothing; rerunning the same resize finishes, and resumes a domain a killed
// run left paused (its journal says so).
import { ValidationError, PrerequisiteError } from '../errors.js';
import { findOurs } from '../hypervisor/disk-steps.js';
import { blockDeviceSize } from '../hypervisor/host.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { byPathFor } from '../names/by-path.js';
import { Virsh } from '../hypervisor/virsh.js';
import type { DomainView } from '../hypervisor/placement.js';
import { parsePortal, type Portal } from '../names/portal.js';
import { checkAbsolutePath } from '../names/values.js';
import { runPlan } from '../plan/plan.js';
import { runChecked } from '../runner/check.js';
import { parseHostUri } from '../runner/host-uri.js';
import { quoteArgv } from '../runner/quote.js';
import type { Session } from '../runner/session.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from '../storage/backend.js';
import { createBackend } from '../storage/backends.js';
import { checkServableImage, growImageArgv, growKind, imageAllocation, type GrowKind } from '../storage/image.js';
import { Rbd } from '../storage/rbd/rbd.js';
import { formatRbdRef, isRbdRef, parseRbdRef, rbdImageSpec } from '../storage/rbd/ref.js';
import { formatSize, parseSize } from '../storage/size.js';
import { markOf, withHooks } from './export.js';
import { Journal, readJournal, stillRunning } from './journal.js';
import { modeOf } from './modes.js';
import { checkExportName } from './names.js';
import { viewIfThere } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, localStateDir, readRecord, recordPath, writeRecord, isIscsi, type ExportRecord, type IscsiExportRecord } from './records.js';
import type { ExportOptions, RecordDirs, RunControl, WorkflowHooks, WorkflowStep } from './types.js';

export interface ResizeOptions extends RecordDirs, RunControl {
  name: string;
  /** "20G": the new size; "+4G": grown by that much. */
  size: string;
  /** Where to look for the storage host's record when this machine has none; default `local`. */
  storage?: string;
  /** How long to wait for another run's lock on the storage host; default 60 s. */
  lockTimeoutMs?: number;
  /** How long to wait for a hypervisor's host to show the new size after a rescan; default 30 s. */
  waitTimeoutMs?: number;
  setLeftHint?: ExportOptions['setLeftHint'];
  hooks?: WorkflowHooks;
}

/** A domain paused while the target reopened the LUN. */
export interface ResizePause {
  hypervisor: string;
  vm: string;
  /** From the suspend request to the end of the resume: the longest the guest can have waited. */
  ms: number;
}

/** How an image grows: a file as it was made, a block device by its owner (before), an RBD image with rbd resize. */
export type ImageGrowth = GrowKind | 'block' | 'rbd';

export interface ResizeResult {
  name: string;
  /** The export's record with its new size. */
  record: ExportRecord;
  fromBytes: number;
  toBytes: number;
  /** How the image grew. */
  image: ImageGrowth;
  /** How the target came to report it. */
  target?: string;
  pauses: ResizePause[];
  /** The running domain's disk QEMU was told of now, where it runs. */
  told: Array<{ hypervisor: string; dev: string }>;
  /** Where the domain runs with the disk (told now, or before: it has the new size). */
  seen: Array<{ hypervisor: string; dev: string }>;
  applied: number;
  skipped: number;
  dryRun: boolean;
}

/**
 * "20G" -> 20 GiB; "+4G" -> `current` + 4 GiB. A size below `current` ("-4G", or an
 * absolute one) is refused: the guest's data past the new end would be cut off.
 */
export function targetSize(text: string, current: number, name = 'the export'): number {
  const t = text.trim();
  if (t.startsWith('-')) throw new ValidationError(`size ${JSON.stringify(text)} would shrink ${name}, which destroys the data past its new end: virt-iscsi only grows disks`, 'size');
  const size = t.startsWith('+') ? current + parseSize(t.slice(1)) : parseSize(t);
  if (size < current) {
    throw new ValidationError(`size ${JSON.stringify(text)} (${formatSize(size)}) is smaller than ${name} (${formatSize(current)}): shrinking destroys the data past the new end; virt-iscsi only grows disks`, 'size');
  }
  return size;
}

/** One hypervisor of the export, as the resize reaches it. */
interface Side {
  uri: string;
  virsh: Virsh;
  /** The record's portal resolved there (exports through an iSCSI target). */
  portal?: Portal;
  view?: DomainView;
  /** The domain runs (not paused) here: its requests must be drained before the LUN closes. */
  running: boolean;
  /** An interrupted resize paused the domain here and never resumed it: this run does. */
  pausedByUs: boolean;
}

/** The export's image as resize grows it: its size now, and the step that grows it (none: grown by its owner). */
interface GrowableImage {
  kind: ImageGrowth;
  sizeBytes: number;
  /** What the target's LUN opens: the file, or POOL/IMAGE for tgt's rbd store. */
  lunPath: string;
  grow?(host: string, from: number, to: number): WorkflowStep;
  /** Why it cannot be grown here, where there is no grow step. */
  fixed?: string;
}

interface Resolved {
  record: ExportRecord;
  /** Which records hold it (each gets the new size). */
  localRecord?: ExportRecord;
  storageRecord?: ExportRecord;
  storage: Runner;
  local: Runner;
  /** The iSCSI target that serves the image; none for native rbd (QEMU opens the image itself). */
  backend?: TargetBackend;
  sides: Side[];
  image: GrowableImage;
  from: number;
  to: number;
  stateDir: string;
  hostRecordDir: string;
}

const show = JSON.stringify;

/** The command that runs this resize again (absolute size: a rerun after a crash must not add the delta twice). */
export function resizeCommand(name: string, bytes: number, o: Pick<ResizeOptions, 'storage' | 'hostRecordDir'>): string {
  const argv = ['virt-iscsi', 'resize', name, '--size', String(bytes)];
  if (o.storage !== undefined && o.storage !== 'local') argv.push('--storage', o.storage);
  if (o.hostRecordDir !== undefined) argv.push('--host-records', o.hostRecordDir);
  return quoteArgv(argv);
}

async function resolveResize(session: Session, o: ResizeOptions): Promise<Resolved> {
  const name = checkExportName(o.name);
  if (o.storage !== undefined) parseHostUri(o.storage);
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  const hostRecordDir = checkAbsolutePath('--host-records', o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR, 'host-records');
  const local = await session.runner('local');
  const [localRecord, journal] = await Promise.all([readRecord(local, stateDir, name), session.dryRun ? undefined : readJournal(stateDir, name)]);
  if (journal && journal.op === 'export') {
    if (stillRunning(journal)) throw new ValidationError(`export ${name} is being changed by another run (pid ${journal.pid}); wait for it to end`, 'name');
    throw new ValidationError(`a run of export ${name} was interrupted: finish it first (run the same export again, or unexport it)`, 'name');
  }
  if (journal && stillRunning(journal)) throw new ValidationError(`export ${name} is being resized by another run (pid ${journal.pid}); wait for it to end`, 'name');
  // An interrupted resize that paused a domain and never resumed it: by host, from its journal.
  const pausedByUs = new Set<string>();
  for (const p of journal?.pieces ?? []) {
    if (p.kind !== 'paused') continue;
    if (p.resumed) pausedByUs.delete(p.host);
    else pausedByUs.add(p.host);
  }
  const storageUri = o.storage ?? localRecord?.storage ?? 'local';
  const storage = await session.runner(storageUri);
  const found = await readRecord(storage, hostRecordDir, name);
  // Reached from here: the storage host's record names the storage host as it was given there.
  const record = localRecord ?? (found && { ...found, storage: storageUri });
  if (!record) {
    throw new ValidationError(`no export named ${show(name)} is recorded in ${stateDir} or on ${storageUri}; "virt-iscsi status" lists them (add --storage URI for the exports a storage host knows)`, 'name');
  }
  if (record.cdrom || record.readonly) {
    throw new ValidationError(`export ${name} is a read-only ${record.cdrom ? 'CD-ROM' : 'disk'}: nothing writes past its end, so resizing it does nothing; grow the image and export it again`, 'name');
  }
  let backend: TargetBackend | undefined;
  if (isIscsi(record)) {
    backend = createBackend(record.backend, storage, { ...record.backendOptions, signal: o.signal, lockOwner: `resize ${name}`, lockTimeoutMs: o.lockTimeoutMs });
    if (!backend.capabilities.growLunInPlace) {
      throw new PrerequisiteError(`the ${record.backend} target on ${record.storage} cannot grow a LUN while it is served: unexport ${name}, grow ${record.image}, and export it again`);
    }
  }
  // The image, and the target where there is one, must be there to take the new size: checked before anything changes.
  const [image, live] = await Promise.all([growableImage(storage, record), isIscsi(record) ? backend!.show(record.target) : undefined]);
  if (isIscsi(record)) {
    if (!live) throw new ValidationError(`target ${record.target} is not live on ${record.storage}: ${backend!.restoreHint()} first`, 'name');
    if (!live.luns.some((l) => l.lun === record.lun)) throw new ValidationError(`target ${record.target} on ${record.storage} has no LUN ${record.lun}: unexport ${name} and export it again`, 'name');
  }
  const to = targetSize(o.size, image.sizeBytes, `export ${name} (${record.image})`);
  if (!image.grow && to > image.sizeBytes) throw new ValidationError(image.fixed ?? `${record.image} cannot be grown by virt-iscsi`, 'size');
  const sides = await Promise.all(
    record.hypervisors.map(async (h): Promise<Side> => {
      const runner = await session.runner(h.uri);
      const virsh = new Virsh(runner, h.connect);
      const [portal, view] = await Promise.all([isIscsi(record) ? new Iscsiadm(runner).resolvePortal(parsePortal(record.portal)) : undefined, viewIfThere(virsh, record.vm)]);
      const state = view?.live !== undefined ? (await virsh.domState(record.vm)).state : undefined;
      return { uri: h.uri, virsh, ...(portal ? { portal } : {}), ...(view ? { view } : {}), running: state === 'running', pausedByUs: state === 'paused' && pausedByUs.has(h.uri) };
    }),
  );
  return {
    record,
    ...(localRecord ? { localRecord } : {}),
    ...(found ? { storageRecord: found } : {}),
    storage,
    local,
    ...(backend ? { backend } : {}),
    sides,
    image,
    from: image.sizeBytes,
    to,
    stateDir,
    hostRecordDir,
  };
}

/**
 * The export's image as resize grows it. A file grows as it was made (sparse: truncate;
 * allocated: fallocate the new part); a block device is grown by its owner; an RBD image
 * with `rbd resize` from the storage host (the record's Ceph client), which refuses to
 * shrink. Anything else (a directory, a device node of another kind) is refused.
 */
async function growableImage(storage: Runner, r: ExportRecord): Promise<GrowableImage> {
  if (isRbdRef(r.image)) {
    const ref = parseRbdRef(r.image);
    const cluster = new Rbd(storage, r.ceph ?? {});
    const size = async (): Promise<number> => (await cluster.require(ref)).sizeBytes;
    return {
      kind: 'rbd',
      sizeBytes: await size(),
      lunPath: rbdImageSpec(ref),
      grow: (host, from, to) => ({
        id: 'image',
        host,
        title: `grow RBD image ${formatRbdRef(ref)} from ${formatSize(from)} to ${formatSize(to)} (rbd resize, thin: nothing is allocated)`,
        check: async () => (await size()) >= to,
        async apply() {
          await cluster.resize(ref, to);
          if (!storage.dryRun && (await size()) < to) throw new ValidationError(`RBD image ${formatRbdRef(ref)} is not ${to} bytes after rbd resize`, 'image');
        },
      }),
    };
  }
  const image = await checkServableImage(storage, r.image);
  if (image.kind === 'block') {
    const fixed = `${r.image} on ${r.storage} is a block device (${formatSize(image.sizeBytes)}): virt-iscsi cannot grow it; grow it yourself (e.g. lvextend), then run resize with its new size`;
    return { kind: 'block', sizeBytes: image.sizeBytes, lunPath: r.image, fixed };
  }
  if (image.kind !== 'file') throw new ValidationError(`${r.image} is not an image file, block device or rbd:POOL/IMAGE: virt-iscsi cannot grow it`, 'image');
  const kind = growKind(await imageAllocation(storage, r.image));
  const grown = async (to: number): Promise<boolean> => (await checkServableImage(storage, r.image)).sizeBytes >= to;
  return {
    kind,
    sizeBytes: image.sizeBytes,
    lunPath: r.image,
    grow: (host, from, to) => ({
      id: 'image',
      host,
      title: `grow ${r.image} on ${host} from ${formatSize(from)} to ${formatSize(to)} (${kind === 'sparse' ? 'sparse, as it was made: truncate' : 'allocated, as it was made: fallocate the new part'})`,
      check: () => grown(to),
      async apply() {
        await runChecked(storage, growImageArgv(r.image, from, to, kind));
        if (!storage.dryRun && !(await grown(to))) throw new ValidationError(`${r.image} on ${host} is not ${to} bytes after growing it (was it moved away?)`, 'image');
      },
    }),
  };
}

/** The plan, and what its steps found out as they ran. */
type Found = Pick<ResizeResult, 'pauses' | 'told' | 'seen'> & { target?: string };

/** The running domain's disk of the export on this hypervisor (its target dev), if it has one. */
function liveDisk(s: Side, r: ExportRecord): string | undefined {
  const disk = s.view?.live ? findOurs(s.view, markOf(r)) : undefined;
  return disk?.live ? disk.dev : undefined;
}

/**
 * Whether the target already reports the new size, as an initiator sees it (a rerun after
 * a crash, or a resize to the size it has): QEMU's view of the running domain's disk, or
 * the by-path device where the host logs in, cannot be larger than what the target says.
 * With neither to ask, the target is told again (reopening an image is harmless then).
 */
async function targetReports(x: Resolved, r: IscsiExportRecord): Promise<boolean> {
  for (const s of x.sides) {
    const dev = liveDisk(s, r);
    if (dev !== undefined && (await s.virsh.blkInfo(r.vm, dev)).capacity >= x.to) return true;
    if (modeOf(r).hostLogin && s.portal && ((await blockDeviceSize(s.virsh.runner, byPathFor(s.portal, r.target, r.lun))) ?? 0) >= x.to) return true;
  }
  return false;
}

/**
 * The target reports the grown image: where the backend closes the LUN to reopen it, QEMU
 * must have no request in flight, and pausing the domain makes QEMU wait for (drain) every
 * one of them. The backend calls the drain right around the moment it closes the LUN, so
 * the pause holds no lookup or check.
 */
function targetStep(x: Resolved, r: IscsiExportRecord, backend: TargetBackend, result: Found, journal?: Journal): WorkflowStep {
  const quiet = backend.capabilities.growClosesLun ? x.sides.filter((s) => s.running) : [];
  const on = (s: Side): string => (x.sides.length > 1 ? ` on ${s.uri}` : '');
  const started = new Map<string, number>();
  const drain = {
    async before(): Promise<void> {
      for (const s of quiet) {
        await journal?.piece({ kind: 'paused', host: s.uri, vm: r.vm }, 'before');
        started.set(s.uri, Date.now());
        await s.virsh.suspend(r.vm);
        await journal?.piece({ kind: 'paused', host: s.uri, vm: r.vm }, 'after');
      }
    },
    async after(): Promise<void> {
      // Every domain paused is resumed, even when another's resume fails.
      const failed: unknown[] = [];
      for (const s of quiet.filter((q) => started.has(q.uri))) {
        try {
          await s.virsh.resume(r.vm);
          if (!s.virsh.dryRun) result.pauses.push({ hypervisor: s.uri, vm: r.vm, ms: Date.now() - started.get(s.uri)! });
          await journal?.resumed(s.uri, r.vm);
        } catch (e) {
          failed.push(e);
        }
      }
      if (failed.length > 0) throw failed[0];
    },
  };
  const paused = quiet.map((s) => `pause ${r.vm}${on(s)} (QEMU drains its disk requests), `).join('');
  return {
    id: 'target',
    host: x.storage.host,
    title: `${paused}make target ${r.target} report LUN ${r.lun} as ${formatSize(x.to)} (${backend.name})${quiet.length > 0 ? `, resume ${r.vm}` : ''}`,
    check: () => targetReports(x, r),
    async apply() {
      result.target = (await backend.growLun(r.target, r.lun, { sizeBytes: x.to, path: x.image.lunPath, ...(quiet.length > 0 ? { drain } : {}) })).how;
    },
  };
}

function resizeSteps(x: Resolved, o: ResizeOptions, journal?: Journal): { steps: WorkflowStep[]; result: Found } {
  const r = x.record;
  const host = x.storage.host;
  const result: Found = { pauses: [], told: [], seen: [] };
  const steps: WorkflowStep[] = [];
  if (x.image.grow) steps.push(x.image.grow(host, x.from, x.to));
  // Native rbd has no target: QEMU opens the image itself and is told at blockresize.
  if (isIscsi(r) && x.backend) steps.push(targetStep(x, r, x.backend, result, journal));
  const on = (s: Side): string => (x.sides.length > 1 ? ` on ${s.uri}` : '');
  // A resize killed while the domain was paused left it so: this run resumes it.
  for (const s of x.sides.filter((q) => q.pausedByUs)) {
    steps.push({
      id: 'resume',
      host: s.uri,
      title: `resume domain ${r.vm}${on(s)}, which an interrupted resize paused`,
      check: async () => (await s.virsh.domState(r.vm)).state !== 'paused',
      apply: () => s.virsh.resume(r.vm),
    });
  }
  const wait = { timeoutMs: o.waitTimeoutMs ?? 30_000, ...(o.signal ? { signal: o.signal } : {}) };
  for (const s of x.sides) {
    if (!isIscsi(r) || !s.portal) continue;
    for (const step of modeOf(r).resize({ record: r, virsh: s.virsh, portal: s.portal, sizeBytes: x.to, wait })) steps.push({ ...step, id: step.id ?? 'step' });
  }
  for (const s of x.sides) {
    const dev = liveDisk(s, r);
    if (dev === undefined) continue;
    result.seen.push({ hypervisor: s.uri, dev });
    steps.push({
      id: 'blockresize',
      host: s.uri,
      title: `tell QEMU (virsh blockresize ${r.vm} ${dev}), which tells the guest, that the disk is ${formatSize(x.to)}`,
      // QEMU's own iSCSI and rbd drivers change their capacity only at blockresize (librbd
      // sees an image grown under it, but QEMU keeps the size it had); over a host block
      // device QEMU reads the device's size, so there only the records (written last) say
      // that an earlier run told the guest.
      check: async () => (await s.virsh.blkInfo(r.vm, dev)).capacity >= x.to && (modeOf(r).session === 'qemu' || r.sizeBytes >= x.to),
      async apply() {
        await s.virsh.blockResize(r.vm, dev, x.to);
        result.told.push({ hypervisor: s.uri, dev });
      },
    });
  }
  const sized = (rec: ExportRecord): ExportRecord => ({ ...rec, sizeBytes: x.to });
  if (x.storageRecord) {
    const rec = x.storageRecord;
    steps.push({
      id: 'storage-record',
      host,
      title: `record the new size in ${recordPath(x.hostRecordDir, r.name)} on ${host}`,
      check: async () => rec.sizeBytes === x.to,
      // Written as the storage host holds it (its storage URI as given at export, no attachments).
      apply: async () => void (await writeRecord(x.storage, x.hostRecordDir, sized(rec))),
    });
  }
  if (x.localRecord) {
    const rec = x.localRecord;
    steps.push({
      id: 'local-record',
      host: 'local',
      title: `record the new size in ${recordPath(x.stateDir, r.name)}`,
      check: async () => rec.sizeBytes === x.to,
      apply: async () => void (await writeRecord(x.local, x.stateDir, sized(rec))),
    });
  }
  return { steps, result };
}

/**
 * Grows export `o.name` to `o.size`: resolves everything first (bad input and impossible
 * requests change nothing), then runs the plan, journaled. Under a dry-run Session every
 * change is only recorded.
 */
export async function resizeExport(session: Session, o: ResizeOptions): Promise<ResizeResult> {
  const x = await resolveResize(session, o);
  const r = x.record;
  const again = resizeCommand(r.name, x.to, { storage: o.storage, hostRecordDir: o.hostRecordDir });
  const journal = session.dryRun ? undefined : await Journal.begin(x.stateDir, r, { op: 'resize', finish: again });
  o.setLeftHint?.(() => `the resize may be half done: "${again}" finishes it`);
  const plan = resizeSteps(x, o, journal);
  const steps = withHooks(plan.steps, o.hooks);
  o.onPlan?.(steps);
  let ran;
  try {
    ran = await runPlan(steps, { signal: o.signal, onEvent: o.onEvent, ...(journal ? { journal } : {}) });
  } catch (e) {
    if (journal && !(e instanceof Error && e.name === 'RollbackError')) await journal.end('rolled-back');
    throw e;
  }
  await journal?.end('done');
  return {
    name: r.name,
    record: { ...r, sizeBytes: x.to },
    fromBytes: x.from,
    toBytes: x.to,
    image: x.image.kind,
    ...(plan.result.target ? { target: plan.result.target } : {}),
    pauses: plan.result.pauses,
    told: plan.result.told,
    seen: plan.result.seen,
    applied: ran.applied,
    skipped: ran.skipped,
    dryRun: session.dryRun,
  };
}
