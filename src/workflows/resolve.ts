// Everything an export decides before it changes anything, from read-only queries: the
// storage host (image, backend, daemon, its name, targets already there, its record of
// this export) and every hypervisor (domain, what it can log in with, its initiator name)
// are asked at the same time. Bad input and impossible requests fail here, so nothing
// on any host has changed when they do.
import { isIP } from 'node:net';
import { resolve as resolvePath, posix } from 'node:path';
import { PrerequisiteError, ValidationError } from '../errors.js';
import { hostName } from '../hypervisor/host.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { checkSessionSettings, SESSION_SETTING_FLAGS, type SessionSettings } from '../hypervisor/session-settings.js';
import { checkLibvirtUri, DEFAULT_LIBVIRT_URI } from '../names/libvirt-uri.js';
import { Virsh } from '../hypervisor/virsh.js';
import { sameIqn, toIqnIdentifier } from '../names/iscsi-name.js';
import { formatPortal, parsePortal, type Portal } from '../names/portal.js';
import { checkAbsolutePath, checkDomainName } from '../names/values.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Session } from '../runner/session.js';
import type { Runner } from '../runner/types.js';
import type { DaemonStatus, TargetBackend, TargetState } from '../storage/backend.js';
import { createBackend, detectBackend, type BackendName, type BackendOptions } from '../storage/backends.js';
import { checkServableImage, fileIdentities, type ImageInfo } from '../storage/image.js';
import { checkCephClient, type CephClient } from '../storage/rbd/client.js';
import type { CephMonitor } from '../storage/rbd/parse.js';
import { Rbd } from '../storage/rbd/rbd.js';
import { formatRbdRef, isRbdRef, parseRbdRef, rbdImageSpec, type RbdImageRef } from '../storage/rbd/ref.js';
import { notInstalledError } from '../storage/tgt/tgtadm.js';
import { hasAddress, hostAddresses } from '../storage/addresses.js';
import { lunWwid } from '../storage/wwid.js';
import { readJournal, type JournalState } from './journal.js';
import { autoModes, EXPORT_MODES, MODES, type ExportMode, type ModeEntry } from './modes.js';
import { chapUser, checkExportName, defaultExportName, exportTargetIqn, generatedInitiator, hostAuthority, looksLikeIso, newChapSecret, newSerial, poolName, secretUsage } from './names.js';
import { probeHypervisor, type HypervisorFacts } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, isIscsi, localStateDir, readRecord, type CephSettings, type ExportRecord, type HypervisorPart, type IscsiModeFields, type ModeFields, type RbdModeFields } from './records.js';
import type { ExportOptions } from './types.js';

/** The LUN an export's image is served as (LUN 0 is the target's controller). */
export const EXPORT_LUN = 1;

/** The storage host's iSCSI side: its target software, and what it serves. */
export interface IscsiStorage {
  backend: TargetBackend;
  backendName: BackendName;
  /** The target daemon answers. */
  running: boolean;
  /** Every target the daemon serves (none when it is stopped). */
  targets: TargetState[];
}

/** An rbd: image's cluster, as the storage host reaches it. */
export interface CephStorage {
  ref: RbdImageRef;
  client: CephClient;
  /** For native rbd: the monitors the disk lists, and the client's key for the libvirt secret. */
  monitors?: CephMonitor[];
  key?: string;
}

export interface StorageFacts {
  runner: Runner;
  image: ImageInfo;
  hostname: string;
  record?: ExportRecord;
  /** The target side, for every mode that goes through iSCSI. */
  iscsi?: IscsiStorage;
  /** For rbd: images. */
  ceph?: CephStorage;
  /** Why the iSCSI side or the native rbd side could not be asked (they matter only if the mode needs them). */
  iscsiError?: unknown;
  cephError?: unknown;
}

/** One hypervisor of the export, as the plan needs it. */
export interface HypervisorSide {
  uri: string;
  runner: Runner;
  virsh: Virsh;
  facts: HypervisorFacts;
  /** The initiator it logs in as. */
  initiator: string;
  /** The portal with its host resolved to an IP there. */
  portal: Portal;
  /** This hypervisor's part in an earlier run's record (where the disk was). */
  prior?: HypervisorPart;
}

export interface ResolvedExport {
  /** What this export is: every name and choice, as its records will hold it (no attachment yet). */
  record: ExportRecord;
  mode: ModeEntry;
  /** The record found from an earlier run of the same export (local, else the journal of a crashed run, else the storage host's). */
  prior?: ExportRecord;
  localRecord?: ExportRecord;
  /** What a run that did not end left behind. */
  journal?: JournalState;
  /** Our target, when it exists already. */
  target?: TargetState;
  /** The CHAP secret: generated, or read back from the backend's configuration for an existing target. */
  chapSecret?: string;
  /** The CHAP secret is new, so a libvirt secret already there must get the new value. */
  chapSecretIsNew: boolean;
  storage: StorageFacts;
  /** The iSCSI side, for an export through a target (every mode but native rbd). */
  iscsi?: IscsiStorage;
  hypervisors: HypervisorSide[];
  /** This machine (local records). */
  local: Runner;
  stateDir: string;
  hostRecordDir: string;
  dryRun: boolean;
}

const show = JSON.stringify;

/** The image path on the storage host: relative paths only make sense when that host is this one. */
function imagePath(image: string, storage: string): string {
  if (image === '') throw new ValidationError('image path is empty', 'image');
  if (/[\x00-\x1f\x7f]/.test(image)) throw new ValidationError(`image path ${show(image)} contains control characters`, 'image');
  if (posix.isAbsolute(image)) return posix.normalize(image);
  if (storage !== 'local') throw new ValidationError(`image ${show(image)} is a relative path; give its absolute path on ${storage}`, 'image');
  return resolvePath(process.cwd(), image);
}

export function checkMode(mode: string | undefined): ExportMode | undefined {
  if (mode === undefined || (EXPORT_MODES as readonly string[]).includes(mode)) return mode as ExportMode | undefined;
  throw new ValidationError(`mode ${show(mode)} is not one of ${EXPORT_MODES.join(', ')}`, 'mode');
}

/** The hypervisors asked for: each a host URI, none twice. */
export function hypervisorUris(o: Pick<ExportOptions, 'hypervisor' | 'hypervisors'>): string[] {
  const list = o.hypervisors !== undefined && o.hypervisors.length > 0 ? o.hypervisors : [o.hypervisor ?? 'local'];
  const seen = new Set<string>();
  for (const uri of list) {
    parseHostUri(uri);
    if (seen.has(uri)) throw new ValidationError(`hypervisor ${show(uri)} is given twice; give each hypervisor once`, 'hypervisor');
    seen.add(uri);
  }
  return list;
}

/** What reaches the storage host's target software: the backend, how it is reached and how long to wait for its lock. */
export type StorageAccess = Pick<ExportOptions, 'backend' | 'controlPort' | 'confDir' | 'install' | 'signal' | 'lockTimeoutMs' | 'portal' | 'portals'> & {
  /** What the run is doing, told to another run waiting for the host's lock; default "export NAME". */
  lockOwner?: string;
};

function backendOptions(o: StorageAccess, name: string): BackendOptions {
  const b: BackendOptions = { controlPort: o.controlPort, confDir: o.confDir, install: o.install, signal: o.signal, lockOwner: o.lockOwner ?? `export ${name}`, lockTimeoutMs: o.lockTimeoutMs };
  // A private tgtd virt-iscsi starts listens where the hypervisor will dial.
  if (o.controlPort !== undefined && o.portal !== undefined) {
    const p = parsePortal(o.portal);
    if (isIP(p.host) !== 0) b.portal = formatPortal(p);
  }
  // LIO listens on the portal's port, on every address of its family (a fixed 0.0.0.0:3260
  // fails beside another target on 3260 when the portal names another port). Not on the
  // portal's address itself: the hypervisor may dial one the storage host lacks (NAT).
  if (o.portal !== undefined) {
    const p = parsePortal(o.portal);
    b.portals = [{ host: isIP(p.host) === 6 ? '::' : '0.0.0.0', port: p.port }];
  }
  // Multipath: LIO listens on exactly the portals given (tgt listens on every address).
  if (o.portals !== undefined && o.portals.length > 1) b.portals = o.portals.map((p) => parsePortal(p));
  return b;
}

async function iscsiStorage(runner: Runner, o: StorageAccess, name: string): Promise<IscsiStorage> {
  const b = backendOptions(o, name);
  const named = o.backend !== undefined ? Promise.resolve(o.backend) : detectBackend(runner, b);
  const backend = named.then((n) => createBackend(n, runner, b));
  // The targets are asked for along with the daemon's status (a round trip less over SSH):
  // what a stopped daemon answers does not count.
  const listed = backend.then((be) => be.list()).then(
    (targets) => ({ targets }),
    (error: unknown) => ({ error }),
  );
  const [backendName, status, shown] = await Promise.all([named, backend.then((be) => be.status()), listed]);
  if (status === 'not-installed' && !(backendName === 'tgt' && o.install)) {
    throw backendName === 'tgt' ? notInstalledError(runner.host) : new PrerequisiteError(`${backendName} is not installed on ${runner.host}`);
  }
  const running = status === ('running' satisfies DaemonStatus);
  if (running && 'error' in shown) throw shown.error;
  return { backend: await backend, backendName, running, targets: running && 'targets' in shown ? shown.targets : [] };
}

async function storageFacts(runner: Runner, o: StorageAccess, image: string, rbd: RbdImageRef | undefined, client: CephClient, name: string, hostRecordDir: string, native: boolean): Promise<StorageFacts> {
  const settle = <T>(p: Promise<T>): Promise<{ ok: T } | { error: unknown }> => p.then((ok) => ({ ok }), (error: unknown) => ({ error }));
  const cluster = rbd ? new Rbd(runner, client) : undefined;
  const [info, hostname, record, iscsi, ceph] = await Promise.all([
    rbd ? cluster!.require(rbd).then((i): ImageInfo => ({ path: formatRbdRef(rbd), kind: 'rbd', sizeBytes: i.sizeBytes, format: 'raw' })) : checkServableImage(runner, image),
    hostName(runner),
    readRecord(runner, hostRecordDir, name),
    // For an rbd: image both ways are asked for: which one is used is known once the hypervisors are.
    rbd && native ? settle(iscsiStorage(runner, o, name)) : iscsiStorage(runner, o, name).then((ok) => ({ ok })),
    rbd && native ? settle(Promise.all([cluster!.monitors(), cluster!.clientKey()])) : Promise.resolve(undefined),
  ]);
  const out: StorageFacts = { runner, image: info, hostname, ...(record ? { record } : {}) };
  if ('ok' in iscsi) out.iscsi = iscsi.ok;
  else out.iscsiError = iscsi.error;
  if (rbd) out.ceph = { ref: rbd, client };
  if (ceph && 'ok' in ceph) Object.assign(out.ceph!, { monitors: ceph.ok[0], key: ceph.ok[1] });
  else if (ceph) out.cephError = ceph.error;
  return out;
}

/** What one export's hosts say, asked all at once: the storage host, this machine's records and journal, every hypervisor. */
export interface HostFacts {
  storage: StorageFacts;
  local: Runner;
  localRecord?: ExportRecord;
  journal?: JournalState;
  hypervisors: Array<{ uri: string; runner: Runner; virsh: Virsh; facts: HypervisorFacts }>;
}

export interface HostFactsRequest {
  storage: string;
  access: StorageAccess;
  /** Each hypervisor with the libvirt URI used there. */
  hypervisors: ReadonlyArray<{ uri: string; connect: string }>;
  vm: string;
  /** Absolute path on the storage host, or rbd:POOL/IMAGE. */
  image: string;
  /** The parsed rbd: image, when the image is one. */
  rbd?: RbdImageRef;
  /** The Ceph client of an rbd: image. */
  client?: CephClient;
  name: string;
  stateDir: string;
  hostRecordDir: string;
  /** The modes that may be used: only what they need is probed. */
  candidates: readonly ModeEntry[];
}

/**
 * Every read-only fact an export's plan is built from, the hosts asked in parallel: export
 * (from flags) and repair (from a record) build their plans on the same facts.
 */
export async function gatherHostFacts(session: Session, q: HostFactsRequest): Promise<HostFacts> {
  const [storageRunner, local, ...hvRunners] = await Promise.all([session.runner(q.storage), session.runner('local'), ...q.hypervisors.map((h) => session.runner(h.uri))]);
  const virshes = hvRunners.map((r, i) => new Virsh(r, q.hypervisors[i]!.connect));
  const native = q.candidates.some((m) => m.transport === 'rbd');
  const [storage, localRecord, journal, ...facts] = await Promise.all([
    storageFacts(storageRunner, q.access, q.image, q.rbd, q.client ?? {}, q.name, q.hostRecordDir, native),
    readRecord(local, q.stateDir, q.name),
    session.dryRun ? Promise.resolve(undefined) : readJournal(q.stateDir, q.name),
    ...virshes.map((v) => probeHypervisor(v, q.vm, q.candidates)),
  ]);
  return {
    storage,
    local,
    ...(localRecord ? { localRecord } : {}),
    ...(journal ? { journal } : {}),
    hypervisors: q.hypervisors.map((h, i) => ({ uri: h.uri, runner: hvRunners[i]!, virsh: virshes[i]!, facts: facts[i]! })),
  };
}

/** Who serves the export's image on the storage host, besides (or instead of) its own target. */
export interface ImageServing {
  /** The export's own target, when it is live. */
  ours?: TargetState;
  /** Another target serving the same file (by path, or by device and inode). */
  other?: { target: TargetState; lun: number };
  /** Our target's export LUN: serving the image, not there, or serving something else. */
  lun?: 'image' | 'missing' | 'other';
  /** Our target is live but its LUN does not serve the image: what it serves instead. */
  oursServes?: string;
}

/** `path` is the LUN's path as the target serves it (the file, or POOL/IMAGE of an rbd: image). */
export async function imageServing(storage: StorageFacts, s: IscsiStorage, path: string, iqn: string): Promise<ImageServing> {
  const ours = s.targets.find((t) => sameIqn(t.iqn, iqn));
  const luns = s.targets.flatMap((t) => t.luns.map((l) => ({ t, l })));
  const ids = luns.length > 0 && storage.image.kind !== 'rbd' ? await fileIdentities(storage.runner, [...new Set([path, ...luns.map((x) => x.l.path)])]) : new Map<string, string>();
  const same = (p: string): boolean => p === path || (ids.get(path) !== undefined && ids.get(p) === ids.get(path));
  const other = luns.find((x) => x.t !== ours && same(x.l.path));
  const out: ImageServing = { ...(ours ? { ours } : {}), ...(other ? { other: { target: other.t, lun: other.l.lun } } : {}) };
  if (ours) {
    const lun = ours.luns.find((l) => l.lun === EXPORT_LUN);
    out.lun = !lun ? 'missing' : same(lun.path) ? 'image' : 'other';
    if (out.lun !== 'image') out.oursServes = ours.luns.map((l) => `LUN ${l.lun} ${l.path}`).join(', ') || 'no LUN';
  }
  return out;
}

/** Another target serving the same file would corrupt it. */
async function checkNotServed(storage: StorageFacts, s: IscsiStorage, path: string, iqn: string): Promise<TargetState | undefined> {
  const x = await imageServing(storage, s, path, iqn);
  if (x.other) throw new ValidationError(`image ${show(storage.image.path)} is already served by target ${x.other.target.iqn} as LUN ${x.other.lun} on ${storage.runner.host}`, 'image');
  if (x.oursServes !== undefined) {
    throw new ValidationError(`target ${x.ours!.iqn} already exists on ${storage.runner.host} and serves ${x.oursServes}, not ${show(storage.image.path)}; give another --name`, 'name');
  }
  return x.ours;
}

/** The portal's host as the hypervisors reach the storage host (before resolving it to an IP). */
function defaultPortalHost(storage: string, hypervisors: readonly string[], storageHostname: string): string {
  if (hypervisors.every((h) => h === storage)) return '127.0.0.1';
  const spec = parseHostUri(storage);
  return spec.kind === 'ssh' ? spec.host : storageHostname;
}

const CONFLICTING = ['image', 'vm', 'storage', 'mode', 'cdrom', 'readonly', 'persist'] as const;
type Conflicting = (typeof CONFLICTING)[number];

/** What differs between an earlier run's record and this request; undefined when it is the same export. */
function conflict(prior: ExportRecord, want: Pick<ExportRecord, Conflicting> & { hypervisors: string[]; portal?: string; portals?: string[]; chapUser?: string }): string | undefined {
  for (const k of CONFLICTING) if (prior[k] !== want[k]) return `${k} ${show(prior[k])}, not ${show(want[k])}`;
  const p = isIscsi(prior) ? prior : undefined;
  if (p && want.portal !== undefined && p.portal !== want.portal) return `portal ${show(p.portal)}, not ${show(want.portal)}`;
  const hadPortals = p && 'portals' in p ? p.portals.join(', ') : undefined;
  if (want.portals !== undefined && hadPortals !== undefined && hadPortals !== want.portals.join(', ')) return `portals ${hadPortals}, not ${want.portals.join(', ')}`;
  if (!!p?.chapUser !== !!want.chapUser) return p?.chapUser ? 'CHAP on' : 'CHAP off';
  const had = prior.hypervisors.map((h) => h.uri);
  if (had.join('\n') !== want.hypervisors.join('\n')) return `hypervisors ${had.join(', ')}, not ${want.hypervisors.join(', ')}`;
  return undefined;
}

/** The mode every hypervisor can do: the one asked for (checked), else the earlier run's, else the best they all can. */
function modeFor(asked: ExportMode | undefined, prior: ExportRecord | undefined, sides: ReadonlyArray<{ uri: string; facts: HypervisorFacts }>, candidates: readonly ModeEntry[]): ModeEntry {
  const wanted = asked ?? prior?.mode;
  if (wanted !== undefined) {
    const m = MODES[wanted];
    for (const h of sides) {
      const why = m.unavailable(h.facts, h.uri);
      if (why) throw new PrerequisiteError(why);
    }
    return m;
  }
  const m = candidates.find((c) => sides.every((h) => c.unavailable(h.facts, h.uri) === undefined));
  if (!m) throw new PrerequisiteError(`no export mode works on every hypervisor (${sides.map((h) => h.uri).join(', ')})`);
  return m;
}

function initiatorFor(mode: ModeEntry, f: HypervisorFacts, host: string): string {
  if (f.initiatorName) return f.initiatorName;
  if (mode.hostLogin) throw new PrerequisiteError(`/etc/iscsi/initiatorname.iscsi on ${host} is missing or has no InitiatorName= line: install open-iscsi`);
  return generatedInitiator(f.hostname, f.machineId);
}

/**
 * The session recovery settings of the host's sessions: the ones given, else the earlier
 * run's, else the mode's. A mode where QEMU logs in has none, and refuses them given.
 */
export function sessionSettingsFor(mode: ModeEntry, o: Pick<ExportOptions, 'replacementTimeout' | 'noopOutInterval' | 'noopOutTimeout'>, prior?: SessionSettings): SessionSettings | undefined {
  const given: Partial<SessionSettings> = {
    ...(o.replacementTimeout !== undefined ? { replacementTimeout: o.replacementTimeout } : {}),
    ...(o.noopOutInterval !== undefined ? { noopOutInterval: o.noopOutInterval } : {}),
    ...(o.noopOutTimeout !== undefined ? { noopOutTimeout: o.noopOutTimeout } : {}),
  };
  checkSessionSettings(given);
  const defaults = mode.sessionSettings;
  if (!defaults) {
    const flag = (Object.keys(given) as Array<keyof SessionSettings>)[0];
    if (flag) {
      throw new ValidationError(
        `${SESSION_SETTING_FLAGS[flag]} sets open-iscsi's sessions on the hypervisor, but in mode ${mode.name} QEMU logs in itself; it applies to the modes whose host logs in (${EXPORT_MODES.filter((m) => MODES[m].sessionSettings).join(', ')})`,
        flag,
      );
    }
    return undefined;
  }
  return { ...defaults, ...prior, ...given };
}

/** The mode's own fields of the record. */
function modeFields(mode: ModeEntry, name: string, chap: boolean, monitors: readonly CephMonitor[], multipath?: { portals: string[]; minPaths: number; wwid: string }): ModeFields {
  const secret = chap && mode.chapIn === 'libvirt-secret' ? { secretUsage: secretUsage(name) } : {};
  switch (mode.name) {
    case 'rbd':
      return { mode: 'rbd', secretUsage: secretUsage(name), monitors: monitors.map((m) => formatPortal(m)) };
    case 'pool':
    case 'direct':
      return { mode: mode.name, pool: poolName(name), ...secret };
    case 'network':
      return { mode: 'network', ...secret };
    case 'block':
      return { mode: 'block' };
    case 'multipath':
      return { mode: 'multipath', ...multipath! };
  }
}

const multipathMode = (mode: ExportMode | undefined): boolean => mode !== undefined && MODES[mode].multipath === true;

/**
 * The portals of a multipath export: each an IP address the storage host has, none twice,
 * and how many must be up. One portal is not multipath; several are for no other mode.
 */
export function multipathPortals(o: Pick<ExportOptions, 'portal' | 'portals' | 'minPaths' | 'mode'>, prior?: readonly string[]): { portals: Portal[]; minPaths: number } | undefined {
  const texts = o.portals !== undefined && o.portals.length > 0 ? o.portals : undefined;
  if (texts && o.portal !== undefined) throw new ValidationError('--portal once and several portals exclude each other; give --portal once per path', 'portal');
  if (texts && texts.length === 1) {
    if (multipathMode(o.mode)) throw new ValidationError(`mode multipath needs two or more portals (give --portal once per path), not only ${show(texts[0])}`, 'portal');
    return undefined;
  }
  if (!texts) {
    if (multipathMode(o.mode) && !prior) throw new ValidationError(`mode multipath needs two or more portals (give --portal once per path)${o.portal !== undefined ? `, not only ${show(o.portal)}` : ''}`, 'portal');
    if (o.minPaths !== undefined && !prior) throw new ValidationError(`--min-paths ${o.minPaths} is for mode multipath: give two or more --portal`, 'min-paths');
    if (!prior) return undefined;
  }
  const list = (texts ?? prior!).map((t) => parsePortal(t));
  const seen = new Set<string>();
  for (const [i, p] of list.entries()) {
    if (isIP(p.host) === 0) throw new ValidationError(`portal ${show((texts ?? prior!)[i])}: give the storage host's IP address for each multipath path, not a name`, 'portal');
    const key = formatPortal(p);
    if (seen.has(key)) throw new ValidationError(`portal ${key} is given twice; give each path's portal once`, 'portal');
    seen.add(key);
  }
  if (o.mode !== undefined && !multipathMode(o.mode)) throw new ValidationError(`${list.length} portals are for mode multipath; mode ${o.mode} dials one portal`, 'mode');
  const minPaths = o.minPaths ?? list.length;
  if (!Number.isInteger(minPaths) || minPaths < 1 || minPaths > list.length) {
    throw new ValidationError(`--min-paths ${show(minPaths)} is not a number of paths from 1 to the ${list.length} portals given`, 'min-paths');
  }
  return { portals: list, minPaths };
}

export async function resolveExport(session: Session, o: ExportOptions): Promise<ResolvedExport> {
  const storageUri = o.storage ?? 'local';
  parseHostUri(storageUri);
  const hvUris = hypervisorUris(o);
  const vm = checkDomainName(o.vm, '--vm');
  const rbd = isRbdRef(o.image) ? parseRbdRef(o.image) : undefined;
  const image = rbd ? formatRbdRef(rbd) : imagePath(o.image, storageUri);
  const client = checkCephClient(o.ceph ?? {});
  const name = checkExportName(o.name ?? (rbd ? toIqnIdentifier(rbd.image) : defaultExportName(image)));
  const asked = checkMode(o.mode);
  if (asked !== undefined && MODES[asked].transport === 'rbd' && !rbd) throw new ValidationError(`mode ${asked} serves rbd:POOL/IMAGE images only, not ${show(image)}`, 'mode');
  if (o.portal !== undefined) parsePortal(o.portal);
  const connect = checkLibvirtUri(o.connect ?? DEFAULT_LIBVIRT_URI, '--connect');
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  const hostRecordDir = checkAbsolutePath('--host-records', o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR, 'host-records');
  if (o.confDir !== undefined) checkAbsolutePath('--conf-dir', o.confDir, 'conf-dir');
  if (o.portals?.length === 1 && o.portal === undefined && !multipathMode(asked)) o = { ...o, portal: o.portals[0], portals: undefined };
  const paths = multipathPortals({ ...o, mode: asked }, undefined);
  // Several portals: multipath is the mode that takes them, as if asked for.
  const chosen = asked ?? (paths ? Object.values(MODES).find((m) => m.multipath)!.name : undefined);
  const candidates = chosen !== undefined ? [MODES[chosen]] : autoModes(rbd !== undefined);

  const { storage, local, localRecord, journal, hypervisors: reached } = await gatherHostFacts(session, {
    storage: storageUri,
    access: o,
    hypervisors: hvUris.map((uri) => ({ uri, connect })),
    vm,
    image,
    ...(rbd ? { rbd } : {}),
    client,
    name,
    stateDir,
    hostRecordDir,
    candidates,
  });
  const hvRunners = reached.map((h) => h.runner);
  const virshes = reached.map((h) => h.virsh);
  const facts = reached.map((h) => h.facts);
  const prior = localRecord ?? journal?.record ?? storage.record;
  const sides = hvUris.map((uri, i) => ({ uri, facts: facts[i]! }));
  if (!sides.some((s) => s.facts.view)) {
    throw new ValidationError(`no domain ${show(vm)} on ${virshes.length === 1 ? virshes[0]!.where : `any of ${virshes.map((v) => v.where).join(', ')}`}`, 'vm');
  }
  const mode = modeFor(chosen, prior, sides, candidates);
  // What the mode needs of the storage host, now that it is known.
  if (mode.transport === 'iscsi' && !storage.iscsi) throw storage.iscsiError;
  if (mode.transport === 'rbd' && storage.cephError !== undefined) throw storage.cephError;
  if (mode.transport === 'iscsi' && rbd && storage.iscsi!.backendName !== 'tgt') {
    throw new PrerequisiteError(`rbd: images are served over iSCSI by tgt's rbd backing store (tgt-rbd), not by ${storage.iscsi!.backendName} on ${storageUri}; use --backend tgt, or --mode rbd`);
  }
  const cdrom = o.cdrom ?? prior?.cdrom ?? looksLikeIso(image);
  const priorIscsi = prior && isIscsi(prior) ? prior : undefined;
  const chap = mode.transport === 'iscsi' && (o.chap ?? (priorIscsi ? priorIscsi.chapUser !== undefined : false));
  if (mode.transport === 'rbd' && o.chap) throw new ValidationError('--chap is for iSCSI: native rbd authenticates with the cephx key (--ceph-id, --ceph-keyring)', 'chap');

  const multipath = mode.multipath ? (paths ?? multipathPortals({ ...o, mode: mode.name }, priorIscsi && 'portals' in priorIscsi ? priorIscsi.portals : undefined)!) : undefined;
  if (multipath) await checkStorageAddresses(storage.runner, multipath.portals);
  const portalText = multipath ? formatPortal(multipath.portals[0]!) : (o.portal ?? priorIscsi?.portal ?? defaultPortalHost(storageUri, hvUris, storage.hostname));
  const portalGiven = multipath || o.portal !== undefined || priorIscsi !== undefined ? parsePortal(portalText) : { host: portalText, port: 3260 };
  const portals = mode.transport === 'iscsi' ? await Promise.all(hvRunners.map((r) => new Iscsiadm(r).resolvePortal(portalGiven))) : hvRunners.map(() => portalGiven);
  const initiators = sides.map((s) => prior?.hypervisors.find((h) => h.uri === s.uri)?.initiator ?? initiatorFor(mode, s.facts, s.uri));
  for (const [i, a] of initiators.entries()) {
    const j = initiators.findIndex((b) => sameIqn(a, b));
    if (j !== i && mode.transport === 'iscsi') throw new ValidationError(`hypervisors ${hvUris[j]} and ${hvUris[i]} both log in as ${a}; each needs its own initiator name (set InitiatorName in /etc/iscsi/initiatorname.iscsi)`, 'hypervisor');
  }
  const wanted = {
    image,
    vm,
    storage: storageUri,
    hypervisors: hvUris,
    mode: mode.name,
    cdrom,
    readonly: cdrom || (o.readonly ?? prior?.readonly ?? false),
    portal: mode.transport === 'iscsi' ? formatPortal(portals[0]!) : undefined,
    ...(multipath ? { portals: multipath.portals.map((p) => formatPortal(p)) } : {}),
    persist: o.persist ?? prior?.persist ?? true,
    ...(chap ? { chapUser: chapUser(name) } : {}),
  };
  if (prior) {
    const diff = conflict(prior, o.changeHypervisors ? { ...wanted, hypervisors: prior.hypervisors.map((h) => h.uri) } : wanted);
    if (diff) {
      throw new ValidationError(
        `export ${show(name)} already exists with ${diff} (${prior.image} on ${prior.storage} to domain ${prior.vm}); unexport it first (virt-iscsi unexport ${name}), or give another --name`,
        'name',
      );
    }
  }
  const stack = o.stack ?? prior?.stack;
  const sessionSettings = sessionSettingsFor(mode, o, priorIscsi?.session);
  const hypervisors: HypervisorPart[] = sides.map((s, i) => ({ uri: s.uri, connect, initiator: initiators[i]! }));
  const ceph = rbd ? cephSettingsOf(client) : undefined;
  const base = {
    version: 2 as const,
    name,
    image,
    sizeBytes: storage.image.sizeBytes,
    cdrom,
    readonly: wanted.readonly,
    storage: storageUri,
    ...(ceph ? { ceph } : {}),
    vm,
    persist: wanted.persist,
    hypervisors,
    ...(stack !== undefined ? { stack } : {}),
    createdAt: prior?.createdAt ?? (o.now ?? new Date()).toISOString(),
  };
  let record: ExportRecord;
  let target: TargetState | undefined;
  let chapSecret: string | undefined;
  const iscsi = mode.transport === 'iscsi' ? storage.iscsi! : undefined;
  if (iscsi) {
    const iqn = priorIscsi?.target ?? exportTargetIqn(hostAuthority(storage.hostname), name, o.now);
    target = await checkNotServed(storage, iscsi, lunPath(image, rbd), iqn);
    const serial = priorIscsi?.serial ?? target?.luns.find((l) => l.lun === EXPORT_LUN)?.serial ?? newSerial();
    record = {
      ...base,
      backend: iscsi.backendName,
      backendOptions: { ...(o.controlPort !== undefined ? { controlPort: o.controlPort } : {}), ...(o.confDir !== undefined ? { confDir: o.confDir } : {}) },
      target: iqn,
      lun: EXPORT_LUN,
      serial,
      ...(chap ? { chapUser: chapUser(name) } : {}),
      portal: wanted.portal!,
      ...(sessionSettings ? { session: sessionSettings } : {}),
      ...(modeFields(mode, name, chap, [], multipath ? { portals: wanted.portals!, minPaths: multipath.minPaths, wwid: multipathWwid(iscsi.backendName, serial) } : undefined) as IscsiModeFields),
    };
    if (chap) chapSecret = target ? await iscsi.backend.storedChapSecret(iqn, chapUser(name)) : newChapSecret();
  } else {
    record = { ...base, ...(modeFields(mode, name, false, storage.ceph!.monitors ?? []) as RbdModeFields) };
  }
  return {
    record,
    mode,
    ...(prior ? { prior } : {}),
    ...(localRecord ? { localRecord } : {}),
    ...(journal ? { journal } : {}),
    ...(target ? { target } : {}),
    ...(chapSecret !== undefined ? { chapSecret } : {}),
    chapSecretIsNew: chap && !target,
    storage,
    ...(iscsi ? { iscsi } : {}),
    hypervisors: sides.map((s, i) => ({
      uri: s.uri,
      runner: hvRunners[i]!,
      virsh: virshes[i]!,
      facts: s.facts,
      initiator: initiators[i]!,
      portal: portals[i]!,
      ...(prior?.hypervisors.find((h) => h.uri === s.uri) ? { prior: prior.hypervisors.find((h) => h.uri === s.uri)! } : {}),
    })),
    local,
    stateDir,
    hostRecordDir,
    dryRun: session.dryRun,
  };
}

/** Each multipath portal is an address of the storage host (`ip -o addr` there). */
async function checkStorageAddresses(runner: Runner, portals: readonly Portal[]): Promise<void> {
  const have = await hostAddresses(runner);
  for (const p of portals) {
    if (!hasAddress(have, p.host)) {
      throw new ValidationError(`portal ${formatPortal(p)} is not an address of the storage host ${runner.host} (it has ${have.map((a) => a.address).join(', ') || 'none'}); give its own addresses`, 'portal');
    }
  }
}

/** The WWID dm-multipath will know the LUN by: the backend derives it from the serial, unique per export. */
function multipathWwid(backend: BackendName, serial: string): string {
  const wwid = lunWwid(backend, serial);
  if (wwid === undefined) throw new PrerequisiteError(`mode multipath needs a target that gives each LUN a WWID of its own; ${backend} cannot (use --backend tgt or lio)`);
  return wwid;
}

/** The LUN's path as the target serves it: the file, or POOL/IMAGE of an rbd: image. */
export function lunPath(image: string, rbd: RbdImageRef | undefined): string {
  return rbd ? rbdImageSpec(rbd) : image;
}

function cephSettingsOf(c: CephClient): CephSettings {
  return { ...(c.conf ? { conf: c.conf } : {}), ...(c.id ? { id: c.id } : {}), ...(c.keyring ? { keyring: c.keyring } : {}) };
}
