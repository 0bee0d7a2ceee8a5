// `status`: every export this machine has a record of (and, with --storage, every export
// that storage host has a record of), each piece looked at where it lives: target, LUN
// and ACL on the storage host (with the sessions logged in), and on each hypervisor the
// pool, volume or device, and the disk. A host that cannot be asked makes its pieces
// "unknown", not a failure; a record that cannot be read is reported beside the others;
// an export whose run was killed half-way is "interrupted", with the command that cleans it.
import { ValidationError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import type { DomainView } from '../hypervisor/placement.js';
import { READS, Virsh } from '../hypervisor/virsh.js';
import { sameIqn } from '../names/iscsi-name.js';
import { parsePortal } from '../names/portal.js';
import { checkAbsolutePath } from '../names/values.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Session } from '../runner/session.js';
import type { SessionInfo, TargetState } from '../storage/backend.js';
import { createBackend } from '../storage/backends.js';
import { markOf, undoCommand } from './export.js';
import { listJournals, stillRunning, type JournalState } from './journal.js';
import { modeOf } from './modes.js';
import { viewIfThere } from './probe.js';
import { Rbd } from '../storage/rbd/rbd.js';
import { formatRbdRef, isRbdRef, parseRbdRef, rbdImageSpec } from '../storage/rbd/ref.js';
import { DEFAULT_HOST_RECORD_DIR, isIscsi, listRecords, localStateDir, recordPool, recordSecretUsage, type ExportRecord, type IscsiExportRecord } from './records.js';
import type { RecordDirs } from './types.js';
import { diskHealth, findOurs, inspectSessionSettings, type Health, type PathHealth } from './visibility.js';

export type { Health };

/** The version of the JSON document `status --json` prints: fields may be added, never renamed. */
export const STATUS_VERSION = 2;

export interface ExportHealth {
  target: Health;
  lun: Health;
  acl: Health;
  /** The CHAP account bound to the target (n/a without CHAP). */
  chap: Health;
  /** The libvirt secret holding the CHAP password, on every hypervisor (n/a when the mode keeps it elsewhere, or without CHAP). */
  secret: Health;
  pool: Health;
  /** The pool's volume for the LUN, or (block mode) the by-path device. */
  volume: Health;
  disk: Health;
  session: Health;
  /** The host's node record and live session hold the recorded recovery settings (modes whose host logs in). */
  settings: Health;
}

/** One hypervisor's view of the export. */
export interface HypervisorStatus {
  uri: string;
  initiator: string;
  /** The domain runs here. */
  running: boolean;
  /** The domain is defined here. */
  defined: boolean;
  pool: Health;
  volume: Health;
  disk: Health;
  session: Health;
  secret: Health;
  /** The session recovery settings on the host's node record and live session (modes whose host logs in). */
  settings: Health;
  /** Multipath: each path of the map, with the portal its session came through. */
  paths?: PathHealth[];
  dev?: string;
  device?: 'disk' | 'cdrom';
  live?: boolean;
  persistent?: boolean;
}

/** An rbd: image as its cluster sees it. */
export interface RbdStatus {
  image: string;
  sizeBytes: number;
  /** The clients that have it open (QEMU, tgtd): their addresses. */
  watchers: string[];
}

export interface ExportStatus {
  name: string;
  /** ok: every piece there; degraded: some are not; interrupted: a run was killed half-way. */
  state: 'ok' | 'degraded' | 'interrupted' | 'busy';
  image: string;
  sizeBytes: number;
  storage: string;
  /** The iSCSI target (every mode but native rbd). */
  backend?: string;
  target?: string;
  lun?: number;
  portal?: string;
  /** For rbd: images (native rbd mode): the image in its cluster. */
  rbd?: RbdStatus;
  /** The first hypervisor (all of them: `hypervisors`). */
  hypervisor: string;
  hypervisors: HypervisorStatus[];
  /** Where the domain runs now, when it does. */
  runningOn?: string;
  mode: string;
  initiator: string;
  pool?: string;
  vm: string;
  /** Where the disk is in the domain (on the hypervisor it runs on, else the first that has it). */
  dev?: string;
  device?: 'disk' | 'cdrom';
  live?: boolean;
  persistent?: boolean;
  /** Every initiator logged in to the target. */
  sessions: SessionInfo[];
  health: ExportHealth;
  healthy: boolean;
  /** Why a piece is not ok, one line each. */
  problems: string[];
  /** Which records know the export. */
  records: Array<'local' | 'storage' | 'journal'>;
  /** For an interrupted export: what to run. */
  fix?: string;
}

export interface StatusOptions extends RecordDirs {
  /** Also list the exports this storage host has records of. */
  storage?: string;
  /** Only these exports: each must be known, or status fails naming it. */
  names?: string[];
}

export interface StatusReport {
  statusVersion: typeof STATUS_VERSION;
  exports: ExportStatus[];
  /** Record and journal files that could not be read: reported, never used. */
  unreadable: Array<{ file: string; error: string }>;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/**
 * What one look at many exports reads of their hosts, asked once and shared by them all:
 * each storage host's targets, each domain's configurations, and (prefetch) every pool,
 * volume list, domain and secret list of a hypervisor in one virsh process. Only for
 * reads made while nothing changes (a status; apply's plan); a poll makes a new one.
 */
export class HostReads {
  private readonly memo = new Map<string, Promise<unknown>>();

  constructor(readonly session: Session) {}

  private once<T>(key: string, read: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read();
      p.catch(() => undefined);
      this.memo.set(key, p);
    }
    return p;
  }

  /** Every target the export's backend on its storage host serves. */
  targets(r: IscsiExportRecord): Promise<TargetState[]> {
    return this.once(`targets\0${r.storage}\0${r.backend}\0${JSON.stringify(r.backendOptions)}`, async () => createBackend(r.backend, await this.session.runner(r.storage), r.backendOptions).list());
  }

  /** The domain's running and persistent configurations on one hypervisor; undefined when it is not defined there. */
  view(virsh: Virsh, vm: string): Promise<DomainView | undefined> {
    return this.once(`view\0${virsh.runner.host}\0${virsh.uri}\0${vm}`, () => viewIfThere(virsh, vm));
  }

  /** Asks each hypervisor of these exports, in one virsh process each, what looking at them will ask one by one. */
  async prefetch(records: readonly ExportRecord[]): Promise<void> {
    const byHost = new Map<string, { uri: string; connect: string; reads: string[][] }>();
    for (const r of records) {
      const pool = modeOf(r).pool ? recordPool(r) : undefined;
      for (const part of r.hypervisors) {
        const key = `${part.uri}\0${part.connect}`;
        let h = byHost.get(key);
        if (!h) byHost.set(key, (h = { uri: part.uri, connect: part.connect, reads: [READS.secretList()] }));
        h.reads.push(READS.domainXml(r.vm), READS.domainXml(r.vm, true), READS.domInfo(r.vm));
        if (pool) h.reads.push(READS.poolInfo(pool), READS.volList(pool));
      }
    }
    // A host that cannot be asked so is asked read by read, and reports its error there.
    await Promise.all([...byHost.values()].map(async (h) => new Virsh(await this.session.runner(h.uri), h.connect).prefetch(h.reads).catch(() => undefined)));
  }
}

/** What the storage host says: the target as the backend shows it. */
async function storageView(reads: HostReads, r: IscsiExportRecord, problems: string[]): Promise<TargetState | null | undefined> {
  try {
    return (await reads.targets(r)).find((t) => sameIqn(t.iqn, r.target)) ?? null;
  } catch (e) {
    problems.push(`storage host ${r.storage}: ${message(e)}`);
    return undefined; // unknown
  }
}

/**
 * The target is not live: when the backend's configuration still holds it (the target
 * daemon restarted, the storage host rebooted), the command that brings it back.
 */
async function missingTarget(session: Session, r: IscsiExportRecord): Promise<string> {
  try {
    const backend = createBackend(r.backend, await session.runner(r.storage), r.backendOptions);
    if (await backend.persisted(r.target)) {
      return `target ${r.target} is not live on ${r.storage} but its configuration holds it (the target daemon restarted?): ${backend.restoreHint()} to bring it back`;
    }
  } catch {
    /* the plain fact below */
  }
  return `target ${r.target} is not on ${r.storage}, nor in its configuration: unexport ${r.name} and export it again`;
}

/** An rbd: image as its cluster sees it, from the storage host: its size and who has it open. */
async function rbdView(session: Session, r: ExportRecord, problems: string[]): Promise<RbdStatus | null | undefined> {
  const ref = parseRbdRef(r.image);
  try {
    const cluster = new Rbd(await session.runner(r.storage), r.ceph ?? {});
    const info = await cluster.info(ref);
    if (!info) return null;
    const watchers = await cluster.watchers(ref);
    return { image: formatRbdRef(ref), sizeBytes: info.sizeBytes, watchers: watchers.map((w) => w.address) };
  } catch (e) {
    problems.push(`Ceph cluster of ${r.image} (from ${r.storage}): ${message(e)}`);
    return undefined;
  }
}

async function hypervisorView(reads: HostReads, r: ExportRecord, i: number, t: Pick<TargetState, 'sessions'> | null | undefined, problems: string[]): Promise<HypervisorStatus> {
  const part = r.hypervisors[i]!;
  const m = modeOf(r);
  const chapUser = isIscsi(r) ? r.chapUser : undefined;
  // The libvirt secret holds the CHAP password (where the mode keeps it there) or, for native rbd, the cephx key.
  const usage = (chapUser && m.chapIn === 'libvirt-secret') || !isIscsi(r) ? recordSecretUsage(r) : undefined;
  const out: HypervisorStatus = { uri: part.uri, initiator: part.initiator, running: false, defined: false, pool: 'unknown', volume: 'unknown', disk: 'unknown', session: 'unknown', secret: usage ? 'unknown' : 'n/a', settings: 'unknown' };
  try {
    const runner = await reads.session.runner(part.uri);
    const virsh = new Virsh(runner, part.connect);
    const portal = isIscsi(r) ? await new Iscsiadm(runner).resolvePortal(parsePortal(r.portal)) : { host: '', port: 0 };
    const [seen, view, secret, settings] = await Promise.all([
      m.inspect(virsh, r, portal),
      reads.view(virsh, r.vm),
      usage ? virsh.secretByUsage(usage, isIscsi(r) ? 'iscsi' : 'ceph') : Promise.resolve(undefined),
      inspectSessionSettings(virsh, r, portal),
    ]);
    out.pool = seen.pool;
    out.volume = seen.volume;
    out.settings = settings.settings;
    if (seen.paths) out.paths = seen.paths;
    problems.push(...seen.problems, ...settings.problems);
    if (usage) {
      out.secret = secret ? 'ok' : 'missing';
      if (!secret) problems.push(`libvirt secret ${usage} (${isIscsi(r) ? 'the CHAP password' : 'the cephx key'}) is not defined on ${part.uri}`);
    }
    out.defined = view !== undefined;
    out.running = view?.live !== undefined;
    const d = diskHealth(view ? findOurs(view, markOf(r)) : undefined, out.running, r.persist && !view?.transient);
    // The disk is expected where the domain is defined.
    out.disk = view ? d.disk : 'n/a';
    if (view && d.disk === 'missing') problems.push(`domain ${r.vm} on ${part.uri} does not hold the export's disk`);
    if (d.disk === 'inactive') problems.push(`the disk is only in the definition of ${r.vm} on ${part.uri}, not in the running domain`);
    if (d.disk === 'transient') problems.push(`the disk is only in the running domain ${r.vm} on ${part.uri}, not in its definition: it is gone at the next restart`);
    if (d.attachment) Object.assign(out, { dev: d.attachment.dev, device: d.attachment.device, live: d.attachment.live, persistent: d.attachment.config });
  } catch (e) {
    problems.push(`hypervisor ${part.uri}: ${message(e)}`);
  }
  // Who logs in: the host's open-iscsi always; QEMU while the VM runs here with the disk.
  const expected = m.session === 'host' || (out.running && out.disk === 'ok');
  if (!isIscsi(r)) {
    out.session = 'n/a'; // librbd's watchers are shown with the image
  } else if (t) {
    const has = t.sessions.some((s) => sameIqn(s.initiator, part.initiator));
    out.session = has ? 'ok' : expected ? 'missing' : 'n/a';
    if (out.session === 'missing') problems.push(`no session from ${part.initiator} (${part.uri}) on ${r.target}`);
  } else if (t === null) {
    out.session = expected ? 'missing' : 'n/a';
  }
  return out;
}

/** The worst of several: missing beats inactive beats unknown beats ok. */
function worst(hs: Health[]): Health {
  for (const h of ['missing', 'wrong', 'inactive', 'transient', 'unknown', 'ok'] as const) if (hs.includes(h)) return h;
  return 'n/a';
}

/** Native rbd: the image and the disks; no target, LUN, ACL or iSCSI session. */
async function rbdStatusOf(reads: HostReads, r: ExportRecord, problems: string[]): Promise<{ health: ExportHealth; hvs: HypervisorStatus[]; rbd?: RbdStatus }> {
  const img = await rbdView(reads.session, r, problems);
  const hvs = await Promise.all(r.hypervisors.map((_, i) => hypervisorView(reads, r, i, undefined, problems)));
  if (img === null) problems.push(`RBD image ${r.image} is not in its cluster any more`);
  const health: ExportHealth = {
    target: img === undefined ? 'unknown' : img === null ? 'missing' : 'ok',
    lun: 'n/a',
    acl: 'n/a',
    chap: 'n/a',
    secret: worst(hvs.map((h) => h.secret)),
    pool: worst(hvs.map((h) => h.pool)),
    volume: worst(hvs.map((h) => h.volume)),
    disk: worst(hvs.map((h) => h.disk)),
    session: 'n/a',
    settings: 'n/a',
  };
  return { health, hvs, ...(img ? { rbd: img } : {}) };
}

async function statusOf(reads: HostReads, r: ExportRecord, records: ExportStatus['records'], journal: JournalState | undefined, hostRecordDir?: string): Promise<ExportStatus> {
  const problems: string[] = [];
  const { health, hvs, t, rbd } = isIscsi(r) ? await iscsiStatusOf(reads, r, problems) : { ...(await rbdStatusOf(reads, r, problems)), t: undefined };
  const here = hvs.find((h) => h.running) ?? hvs.find((h) => h.dev !== undefined);
  const healthy = Object.values(health).every((h) => h === 'ok' || h === 'n/a');
  const busy = journal !== undefined && stillRunning(journal);
  const state: ExportStatus['state'] = journal ? (busy ? 'busy' : 'interrupted') : healthy ? 'ok' : 'degraded';
  if (journal && !busy) {
    const last = journal.open.filter((s) => !s.done).pop() ?? journal.open[journal.open.length - 1];
    problems.unshift(`a ${journal.op === 'resize' ? 'resize' : 'run'} of export ${r.name} was interrupted${last ? ` during: ${last.title}` : ''}`);
  }
  return {
    name: r.name,
    state,
    image: r.image,
    sizeBytes: r.sizeBytes,
    storage: r.storage,
    ...(isIscsi(r) ? { backend: r.backend, target: r.target, lun: r.lun, portal: r.portal } : {}),
    ...(rbd ? { rbd } : {}),
    hypervisor: r.hypervisors[0]!.uri,
    hypervisors: hvs,
    ...(hvs.find((h) => h.running) ? { runningOn: hvs.find((h) => h.running)!.uri } : {}),
    mode: r.mode,
    initiator: r.hypervisors[0]!.initiator,
    ...(recordPool(r) ? { pool: recordPool(r)! } : {}),
    vm: r.vm,
    ...(here?.dev !== undefined ? { dev: here.dev, device: here.device!, live: here.live!, persistent: here.persistent! } : {}),
    sessions: t ? t.sessions : [],
    health,
    healthy: healthy && !journal,
    problems,
    records,
    ...(journal && !busy ? { fix: journal.finish !== undefined ? `${journal.finish}   (runs the resize again to finish it)` : `${undoCommand(r, hostRecordDir)}   (or run the same export again to finish it)` } : {}),
  };
}

async function iscsiStatusOf(reads: HostReads, r: IscsiExportRecord, problems: string[]): Promise<{ health: ExportHealth; hvs: HypervisorStatus[]; t: TargetState | null | undefined; rbd?: RbdStatus }> {
  // Through the tgt-rbd gateway: the RBD image as its cluster sees it too (its size, tgtd as its watcher).
  const [t, img] = await Promise.all([storageView(reads, r, problems), isRbdRef(r.image) ? rbdView(reads.session, r, problems) : undefined]);
  const hvs = await Promise.all(r.hypervisors.map((_, i) => hypervisorView(reads, r, i, t, problems)));
  const lun = t?.luns.find((l) => l.lun === r.lun);
  const missingAcl = t ? r.hypervisors.filter((h) => !t.acls.some((a) => sameIqn(a, h.initiator))) : [];
  const served = isRbdRef(r.image) ? rbdImageSpec(parseRbdRef(r.image)) : r.image;
  const health: ExportHealth = {
    target: t === undefined ? 'unknown' : t === null ? 'missing' : 'ok',
    lun: !t ? (t === undefined ? 'unknown' : 'missing') : !lun ? 'missing' : lun.path !== served || (lun.serial !== undefined && lun.serial !== r.serial) ? 'wrong' : 'ok',
    acl: !t ? (t === undefined ? 'unknown' : 'missing') : missingAcl.length === 0 ? 'ok' : 'missing',
    chap: !r.chapUser ? 'n/a' : !t ? (t === undefined ? 'unknown' : 'missing') : t.accounts.includes(r.chapUser) ? 'ok' : 'missing',
    secret: worst(hvs.map((h) => h.secret)),
    pool: worst(hvs.map((h) => h.pool)),
    volume: worst(hvs.map((h) => h.volume)),
    disk: worst(hvs.map((h) => h.disk)),
    session: worst(hvs.map((h) => h.session)),
    settings: worst(hvs.map((h) => h.settings)),
  };
  if (t === null) problems.push(await missingTarget(reads.session, r));
  if (health.lun === 'wrong') problems.push(`LUN ${r.lun} serves ${lun!.path} (serial ${lun!.serial ?? 'none'}), not ${served} (serial ${r.serial})`);
  if (t && health.lun === 'missing') problems.push(`target ${r.target} has no LUN ${r.lun}`);
  for (const h of missingAcl) problems.push(`target ${r.target} does not allow ${h.initiator} (${h.uri})`);
  if (t && health.chap === 'missing') problems.push(`target ${r.target} has no CHAP account ${r.chapUser} bound: initiators log in without CHAP`);
  if (img === null) problems.push(`RBD image ${r.image} is not in its cluster any more`);
  return { health, hvs, t, ...(img ? { rbd: img } : {}) };
}

/** Every export known here (and on `o.storage`), sorted by name, each looked at on its hosts in parallel. */
export async function exportStatus(session: Session, o: StatusOptions = {}): Promise<ExportStatus[]> {
  return (await statusReport(session, o)).exports;
}

/** One export as this machine's records, the storage host's and the journals know it. */
export interface KnownExport {
  record: ExportRecord;
  records: ExportStatus['records'];
  journal?: JournalState;
}

export interface KnownExports {
  /** Sorted by name; only `o.names` when given. */
  exports: KnownExport[];
  unreadable: StatusReport['unreadable'];
}

/**
 * Every export this machine has a record or journal of (and, with `o.storage`, every export
 * that storage host has a record of); each name in `o.names` must be among them.
 */
export async function knownExports(session: Session, o: StatusOptions = {}): Promise<KnownExports> {
  if (o.storage !== undefined) parseHostUri(o.storage);
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  if (o.hostRecordDir !== undefined) checkAbsolutePath('--host-records', o.hostRecordDir, 'host-records');
  const local = await session.runner('local');
  const [mine, theirs, journals] = await Promise.all([
    listRecords(local, stateDir),
    o.storage === undefined ? Promise.resolve({ records: [], unreadable: [] }) : session.runner(o.storage).then((s) => listRecords(s, o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR)),
    listJournals(stateDir),
  ]);
  const byName = new Map<string, KnownExport>();
  for (const r of mine.records) byName.set(r.name, { record: r, records: ['local'] });
  for (const r of theirs.records) {
    const known = byName.get(r.name);
    if (known) known.records.push('storage');
    // Reached from here: the storage host's record names the storage host as it was given there.
    else byName.set(r.name, { record: { ...r, storage: o.storage! }, records: ['storage'] });
  }
  for (const j of journals.journals) {
    const known = byName.get(j.name);
    if (known) {
      known.records.push('journal');
      known.journal = j;
    } else byName.set(j.name, { record: j.record, records: ['journal'], journal: j });
  }
  for (const n of o.names ?? []) {
    if (!byName.has(n)) {
      const where = o.storage === undefined ? `in ${stateDir}` : `in ${stateDir} or on ${o.storage}`;
      throw new ValidationError(`no export named ${JSON.stringify(n)} is recorded ${where}; "virt-iscsi status" lists them${o.storage === undefined ? ' (add --storage URI for the exports a storage host knows)' : ''}`, 'name');
    }
  }
  const exports = [...byName.values()].filter((x) => !o.names || o.names.includes(x.record.name)).sort((a, b) => a.record.name.localeCompare(b.record.name));
  return { exports, unreadable: [...mine.unreadable, ...theirs.unreadable, ...journals.unreadable] };
}

/**
 * The status of one known export, each of its pieces looked at where it lives. `reads`:
 * what other exports looked at in the same moment read already (default: read afresh).
 */
export function exportStatusOf(session: Session, x: KnownExport, hostRecordDir?: string, reads = new HostReads(session)): Promise<ExportStatus> {
  return statusOf(reads, x.record, x.records, x.journal, hostRecordDir);
}

export async function statusReport(session: Session, o: StatusOptions = {}): Promise<StatusReport> {
  const known = await knownExports(session, o);
  const reads = new HostReads(session);
  await reads.prefetch(known.exports.map((x) => x.record));
  const exports = await Promise.all(known.exports.map((x) => exportStatusOf(session, x, o.hostRecordDir, reads)));
  return { statusVersion: STATUS_VERSION, exports, unreadable: known.unreadable };
}
