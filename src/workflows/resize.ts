// `resize NAME --size SIZE|+DELTA`: an export's disk grows while its VM runs, as a plan of
// steps, journaled and rolled back like export:
//   grow the image as it was made (sparse stays sparse, an allocated one gets its new part
//   allocated) -> the target reports the new size (domains paused around it where the
//   backend closes the LUN to do so) -> each hypervisor's host sees it (the mode says how:
//   a rescan, a pool refresh, nothing) -> QEMU is told (virsh blockresize) and tells the
//   guest -> both records hold the new size.
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
import { runPlan, type PlanEvent } from '../plan/plan.js';
import { runChecked } from '../runner/check.js';
import { parseHostUri } from '../runner/host-uri.js';
import { quoteArgv } from '../runner/quote.js';
import type { Session } from '../runner/session.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from '../storage/backend.js';
import { createBackend } from '../storage/backends.js';
import { checkServableImage, growImageArgv, growKind, imageAllocation, type GrowKind } from '../storage/image.js';
import { formatSize, parseSize } from '../storage/size.js';
import { markOf, withHooks } from './export.js';
import { Journal, readJournal, stillRunning } from './journal.js';
import { modeOf } from './modes.js';
import { checkExportName } from './names.js';
import { viewIfThere } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, localStateDir, readRecord, recordPath, writeRecord, isIscsi, type IscsiExportRecord } from './records.js';
import type { RecordDirs, WorkflowHooks, WorkflowStep } from './types.js';

export interface ResizeOptions extends RecordDirs {
  name: string;
  /** "20G": the new size; "+4G": grown by that much. */
  size: string;
  /** Where to look for the storage host's record when this machine has none; default `local`. */
  storage?: string;
  /** How long to wait for another run's lock on the storage host; default 60 s. */
  lockTimeoutMs?: number;
  /** How long to wait for a hypervisor's host to show the new size after a rescan; default 30 s. */
  waitTimeoutMs?: number;
  signal?: AbortSignal;
  setLeftHint?: (hint: () => string | undefined) => void;
  onPlan?: (steps: readonly WorkflowStep[]) => void;
  onEvent?: (e: PlanEvent) => void;
  hooks?: WorkflowHooks;
}

/** A domain paused while the target reopened the LUN. */
export interface ResizePause {
  hypervisor: string;
  vm: string;
  /** From the suspend request to the end of the resume: the longest the guest can have waited. */
  ms: number;
}

export interface ResizeResult {
  name: string;
  /** The export's record with its new size. */
  record: IscsiExportRecord;
  fromBytes: number;
  toBytes: number;
  /** How the image grew: as it was made (a block device is grown by its owner, before). */
  image: GrowKind | 'block';
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
  portal: Portal;
  view?: DomainView;
  /** The domain runs (not paused) here: its requests must be drained before the LUN closes. */
  running: boolean;
  /** An interrupted resize paused the domain here and never resumed it: this run does. */
  pausedByUs: boolean;
}

interface Resolved {
  record: IscsiExportRecord;
  /** Which records hold it (each gets the new size). */
  localRecord?: IscsiExportRecord;
  storageRecord?: IscsiExportRecord;
  storage: Runner;
  local: Runner;
  backend: TargetBackend;
  sides: Side[];
  from: number;
  to: number;
  kind: GrowKind | 'block';
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
  if (!isIscsi(record)) {
    throw new ValidationError(`export ${name} is a native rbd export: grow its image with "rbd resize" and then "virsh blockresize ${record.vm} DEV SIZE" (librbd grows it under QEMU); resize serves exports through an iSCSI target`, 'name');
  }
  if (record.cdrom || record.readonly) {
    throw new ValidationError(`export ${name} is a read-only ${record.cdrom ? 'CD-ROM' : 'disk'}: nothing writes past its end, so resizing it does nothing; grow the image and export it again`, 'name');
  }
  const backend = createBackend(record.backend, storage, { ...record.backendOptions, signal: o.signal, lockOwner: `resize ${name}`, lockTimeoutMs: o.lockTimeoutMs });
  if (!backend.capabilities.growLunInPlace) {
    throw new PrerequisiteError(`the ${record.backend} target on ${record.storage} cannot grow a LUN while it is served: unexport ${name}, grow ${record.image}, and export it again`);
  }
  // The target must be live to take the new size: checked before anything changes.
  const [image, live] = await Promise.all([checkServableImage(storage, record.image), backend.show(record.target)]);
  if (!live) throw new ValidationError(`target ${record.target} is not live on ${record.storage}: ${backend.restoreHint()} first`, 'name');
  if (!live.luns.some((l) => l.lun === record.lun)) throw new ValidationError(`target ${record.target} on ${record.storage} has no LUN ${record.lun}: unexport ${name} and export it again`, 'name');
  const to = targetSize(o.size, image.sizeBytes, `export ${name} (${record.image})`);
  let kind: GrowKind | 'block';
  if (image.kind === 'block') {
    if (to > image.sizeBytes) {
      throw new ValidationError(`${record.image} on ${record.storage} is a block device (${formatSize(image.sizeBytes)}): virt-iscsi cannot grow it; grow it yourself (e.g. lvextend), then run resize with its new size`, 'size');
    }
    kind = 'block';
  } else if (image.kind === 'file') {
    kind = growKind(await imageAllocation(storage, record.image));
  } else {
    throw new ValidationError(`${record.image} is not an image file or block device: virt-iscsi cannot grow it`, 'image');
  }
  const sides = await Promise.all(
    record.hypervisors.map(async (h): Promise<Side> => {
      const runner = await session.runner(h.uri);
      const virsh = new Virsh(runner, h.connect);
      const [portal, view] = await Promise.all([new Iscsiadm(runner).resolvePortal(parsePortal(record.portal)), viewIfThere(virsh, record.vm)]);
      const state = view?.live !== undefined ? (await virsh.domState(record.vm)).state : undefined;
      return { uri: h.uri, virsh, portal, ...(view ? { view } : {}), running: state === 'running', pausedByUs: state === 'paused' && pausedByUs.has(h.uri) };
    }),
  );
  return {
    record,
    ...(localRecord && isIscsi(localRecord) ? { localRecord } : {}),
    ...(found && isIscsi(found) ? { storageRecord: found } : {}),
    storage,
    local,
    backend,
    sides,
    from: image.sizeBytes,
    to,
    kind,
    stateDir,
    hostRecordDir,
  };
}

/** The plan, and what its steps found out as they ran. */
type Found = Pick<ResizeResult, 'pauses' | 'told' | 'seen'> & { target?: string };

/** The running domain's disk of the export on this hypervisor (its target dev), if it has one. */
function liveDisk(s: Side, r: IscsiExportRecord): string | undefined {
  const disk = s.view?.live ? findOurs(s.view, markOf(r)) : undefined;
  return disk?.live ? disk.dev : undefined;
}

/**
 * Whether the target already reports the new size, as an initiator sees it (a rerun after
 * a crash, or a resize to the size it has): QEMU's view of the running domain's disk, or
 * the by-path device where the host logs in, cannot be larger than what the target says.
 * With neither to ask, the target is told again (reopening an image is harmless then).
 */
async function targetReports(x: Resolved): Promise<boolean> {
  const r = x.record;
  for (const s of x.sides) {
    const dev = liveDisk(s, r);
    if (dev !== undefined && (await s.virsh.blkInfo(r.vm, dev)).capacity >= x.to) return true;
    if (modeOf(r).hostLogin && ((await blockDeviceSize(s.virsh.runner, byPathFor(s.portal, r.target, r.lun))) ?? 0) >= x.to) return true;
  }
  return false;
}

function resizeSteps(x: Resolved, o: ResizeOptions, journal?: Journal): { steps: WorkflowStep[]; result: Found } {
  const r = x.record;
  const host = x.storage.host;
  const result: Found = { pauses: [], told: [], seen: [] };
  const steps: WorkflowStep[] = [];
  const grown = async (): Promise<boolean> => (await checkServableImage(x.storage, r.image)).sizeBytes >= x.to;
  if (x.kind !== 'block') {
    const kind = x.kind;
    steps.push({
      id: 'image',
      host,
      title: `grow ${r.image} on ${host} from ${formatSize(x.from)} to ${formatSize(x.to)} (${kind === 'sparse' ? 'sparse, as it was made: truncate' : 'allocated, as it was made: fallocate the new part'})`,
      check: grown,
      async apply() {
        await runChecked(x.storage, growImageArgv(r.image, x.from, x.to, kind));
        if (!x.storage.dryRun && !(await grown())) throw new ValidationError(`${r.image} on ${host} is not ${x.to} bytes after growing it (was it moved away?)`, 'image');
      },
    });
  }
  // Where the backend closes the LUN to reopen it, QEMU must have no request in flight:
  // pausing the domain makes QEMU wait for (drain) every one of them. The backend calls the
  // drain right around the moment it closes the LUN, so the pause holds no lookup or check.
  const quiet = x.backend.capabilities.growClosesLun ? x.sides.filter((s) => s.running) : [];
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
  steps.push({
    id: 'target',
    host,
    title: `${paused}make target ${r.target} report LUN ${r.lun} as ${formatSize(x.to)} (${x.backend.name})${quiet.length > 0 ? `, resume ${r.vm}` : ''}`,
    check: () => targetReports(x),
    async apply() {
      result.target = (await x.backend.growLun(r.target, r.lun, { sizeBytes: x.to, path: r.image, ...(quiet.length > 0 ? { drain } : {}) })).how;
    },
  });
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
      // QEMU's own iSCSI driver changes its capacity only at blockresize; over a host block
      // device QEMU reads the device's size, so there only the records (written last) say
      // that an earlier run told the guest.
      check: async () => (await s.virsh.blkInfo(r.vm, dev)).capacity >= x.to && (modeOf(r).session === 'qemu' || r.sizeBytes >= x.to),
      async apply() {
        await s.virsh.blockResize(r.vm, dev, x.to);
        result.told.push({ hypervisor: s.uri, dev });
      },
    });
  }
  const sized = (rec: IscsiExportRecord): IscsiExportRecord => ({ ...rec, sizeBytes: x.to });
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
    image: x.kind,
    ...(plan.result.target ? { target: plan.result.target } : {}),
    pauses: plan.result.pauses,
    told: plan.result.told,
    seen: plan.result.seen,
    applied: ran.applied,
    skipped: ran.skipped,
    dryRun: session.dryRun,
  };
}
