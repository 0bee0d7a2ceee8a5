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
import { sameIqn } from '../names/iscsi-name.js';
import { formatPortal, parsePortal, type Portal } from '../names/portal.js';
import { checkAbsolutePath, checkDomainName } from '../names/values.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Session } from '../runner/session.js';
import type { Runner } from '../runner/types.js';
import type { DaemonStatus, TargetBackend, TargetState } from '../storage/backend.js';
import { createBackend, detectBackend, type BackendName, type BackendOptions } from '../storage/backends.js';
import { checkServableImage, fileIdentities, type ImageInfo } from '../storage/image.js';
import { notInstalledError } from '../storage/tgt/tgtadm.js';
import { readJournal, type JournalState } from './journal.js';
import { AUTO_MODES, EXPORT_MODES, MODES, type ExportMode, type ModeEntry } from './modes.js';
import { chapUser, checkExportName, defaultExportName, exportTargetIqn, generatedInitiator, hostAuthority, looksLikeIso, newChapSecret, newSerial, poolName, secretUsage } from './names.js';
import { probeHypervisor, type HypervisorFacts } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, localStateDir, readRecord, type ExportRecord, type HypervisorPart, type ModeFields } from './records.js';
import type { ExportOptions } from './types.js';

/** The LUN an export's image is served as (LUN 0 is the target's controller). */
export const EXPORT_LUN = 1;

export interface StorageFacts {
  runner: Runner;
  backend: TargetBackend;
  backendName: BackendName;
  /** The target daemon answers. */
  running: boolean;
  image: ImageInfo;
  hostname: string;
  record?: ExportRecord;
  /** Every target the daemon serves (none when it is stopped). */
  targets: TargetState[];
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

function backendOptions(o: ExportOptions, name: string): BackendOptions {
  const b: BackendOptions = { controlPort: o.controlPort, confDir: o.confDir, install: o.install, signal: o.signal, lockOwner: `export ${name}`, lockTimeoutMs: o.lockTimeoutMs };
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
  return b;
}

async function storageFacts(runner: Runner, o: ExportOptions, image: string, name: string, hostRecordDir: string): Promise<StorageFacts> {
  const b = backendOptions(o, name);
  const named = o.backend !== undefined ? Promise.resolve(o.backend) : detectBackend(runner, b);
  const backend = named.then((n) => createBackend(n, runner, b));
  // The targets are asked for along with the daemon's status (a round trip less over SSH):
  // what a stopped daemon answers does not count.
  const listed = backend.then((be) => be.list()).then(
    (targets) => ({ targets }),
    (error: unknown) => ({ error }),
  );
  const [info, hostname, backendName, record, status, shown] = await Promise.all([
    checkServableImage(runner, image),
    hostName(runner),
    named,
    readRecord(runner, hostRecordDir, name),
    backend.then((be) => be.status()),
    listed,
  ]);
  if (status === 'not-installed' && !(backendName === 'tgt' && o.install)) {
    throw backendName === 'tgt' ? notInstalledError(runner.host) : new PrerequisiteError(`${backendName} is not installed on ${runner.host}`);
  }
  const running = status === ('running' satisfies DaemonStatus);
  if (running && 'error' in shown) throw shown.error;
  const targets = running && 'targets' in shown ? shown.targets : [];
  return { runner, backend: await backend, backendName, running, image: info, hostname, ...(record ? { record } : {}), targets };
}

/** Another target serving the same file (by path, or by device and inode) would corrupt it. */
async function checkNotServed(s: StorageFacts, iqn: string): Promise<TargetState | undefined> {
  const path = s.image.path;
  const ours = s.targets.find((t) => sameIqn(t.iqn, iqn));
  const luns = s.targets.flatMap((t) => t.luns.map((l) => ({ t, l })));
  const ids = luns.length > 0 ? await fileIdentities(s.runner, [...new Set([path, ...luns.map((x) => x.l.path)])]) : new Map<string, string>();
  const same = (p: string): boolean => p === path || (ids.get(path) !== undefined && ids.get(p) === ids.get(path));
  const other = luns.find((x) => x.t !== ours && same(x.l.path));
  if (other) throw new ValidationError(`image ${show(path)} is already served by target ${other.t.iqn} as LUN ${other.l.lun} on ${s.runner.host}`, 'image');
  if (ours && !ours.luns.some((l) => l.lun === EXPORT_LUN && same(l.path))) {
    const has = ours.luns.map((l) => `LUN ${l.lun} ${l.path}`).join(', ') || 'no LUN';
    throw new ValidationError(`target ${ours.iqn} already exists on ${s.runner.host} and serves ${has}, not ${show(path)}; give another --name`, 'name');
  }
  return ours;
}

/** The portal's host as the hypervisors reach the storage host (before resolving it to an IP). */
function defaultPortalHost(storage: string, hypervisors: readonly string[], storageHostname: string): string {
  if (hypervisors.every((h) => h === storage)) return '127.0.0.1';
  const spec = parseHostUri(storage);
  return spec.kind === 'ssh' ? spec.host : storageHostname;
}

const CONFLICTING = ['image', 'vm', 'storage', 'mode', 'cdrom', 'readonly', 'portal', 'persist'] as const;
type Conflicting = (typeof CONFLICTING)[number];

/** What differs between an earlier run's record and this request; undefined when it is the same export. */
function conflict(prior: ExportRecord, want: Pick<ExportRecord, Conflicting | 'chapUser'> & { hypervisors: string[] }): string | undefined {
  for (const k of CONFLICTING) if (prior[k] !== want[k]) return `${k} ${show(prior[k])}, not ${show(want[k])}`;
  if (!!prior.chapUser !== !!want.chapUser) return prior.chapUser ? 'CHAP on' : 'CHAP off';
  const had = prior.hypervisors.map((h) => h.uri);
  if (had.join('\n') !== want.hypervisors.join('\n')) return `hypervisors ${had.join(', ')}, not ${want.hypervisors.join(', ')}`;
  return undefined;
}

/** The mode every hypervisor can do: the one asked for (checked), else the earlier run's, else the best they all can. */
function modeFor(asked: ExportMode | undefined, prior: ExportRecord | undefined, sides: ReadonlyArray<{ uri: string; facts: HypervisorFacts }>): ModeEntry {
  const wanted = asked ?? prior?.mode;
  if (wanted !== undefined) {
    const m = MODES[wanted];
    for (const h of sides) {
      const why = m.unavailable(h.facts, h.uri);
      if (why) throw new PrerequisiteError(why);
    }
    return m;
  }
  const m = AUTO_MODES.find((c) => sides.every((h) => c.unavailable(h.facts, h.uri) === undefined));
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
        `${SESSION_SETTING_FLAGS[flag]} sets open-iscsi's sessions on the hypervisor, but in mode ${mode.name} QEMU logs in itself; it applies to the modes whose host logs in (${Object.values(MODES).filter((m) => m.sessionSettings).map((m) => m.name).join(', ')})`,
        flag,
      );
    }
    return undefined;
  }
  return { ...defaults, ...prior, ...given };
}

/** The mode's own fields of the record. */
function modeFields(mode: ModeEntry, name: string, chap: boolean): ModeFields {
  const secret = chap && mode.chapIn === 'libvirt-secret' ? { secretUsage: secretUsage(name) } : {};
  switch (mode.name) {
    case 'pool':
    case 'direct':
      return { mode: mode.name, pool: poolName(name), ...secret };
    case 'network':
      return { mode: 'network', ...secret };
    case 'block':
      return { mode: 'block' };
  }
}

export async function resolveExport(session: Session, o: ExportOptions): Promise<ResolvedExport> {
  const storageUri = o.storage ?? 'local';
  parseHostUri(storageUri);
  const hvUris = hypervisorUris(o);
  const vm = checkDomainName(o.vm, '--vm');
  const image = imagePath(o.image, storageUri);
  const name = checkExportName(o.name ?? defaultExportName(image));
  const asked = checkMode(o.mode);
  if (o.portal !== undefined) parsePortal(o.portal);
  const connect = checkLibvirtUri(o.connect ?? DEFAULT_LIBVIRT_URI, '--connect');
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  const hostRecordDir = checkAbsolutePath('--host-records', o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR, 'host-records');
  if (o.confDir !== undefined) checkAbsolutePath('--conf-dir', o.confDir, 'conf-dir');
  const candidates = asked !== undefined ? [MODES[asked]] : AUTO_MODES;

  const [storageRunner, local, ...hvRunners] = await Promise.all([session.runner(storageUri), session.runner('local'), ...hvUris.map((u) => session.runner(u))]);
  const virshes = hvRunners.map((r) => new Virsh(r, connect));
  const [storage, localRecord, journal, ...facts] = await Promise.all([
    storageFacts(storageRunner, o, image, name, hostRecordDir),
    readRecord(local, stateDir, name),
    session.dryRun ? Promise.resolve(undefined) : readJournal(stateDir, name),
    ...virshes.map((v) => probeHypervisor(v, vm, candidates)),
  ]);
  const prior = localRecord ?? journal?.record ?? storage.record;
  const sides = hvUris.map((uri, i) => ({ uri, facts: facts[i]! }));
  if (!sides.some((s) => s.facts.view)) {
    throw new ValidationError(`no domain ${show(vm)} on ${virshes.length === 1 ? virshes[0]!.where : `any of ${virshes.map((v) => v.where).join(', ')}`}`, 'vm');
  }
  const mode = modeFor(asked, prior, sides);
  const cdrom = o.cdrom ?? prior?.cdrom ?? looksLikeIso(image);
  const chap = o.chap ?? (prior ? prior.chapUser !== undefined : false);

  const portalText = o.portal ?? prior?.portal ?? defaultPortalHost(storageUri, hvUris, storage.hostname);
  const portalGiven = o.portal !== undefined || prior !== undefined ? parsePortal(portalText) : { host: portalText, port: 3260 };
  const portals = await Promise.all(hvRunners.map((r) => new Iscsiadm(r).resolvePortal(portalGiven)));
  const initiators = sides.map((s) => prior?.hypervisors.find((h) => h.uri === s.uri)?.initiator ?? initiatorFor(mode, s.facts, s.uri));
  for (const [i, a] of initiators.entries()) {
    const j = initiators.findIndex((b) => sameIqn(a, b));
    if (j !== i) throw new ValidationError(`hypervisors ${hvUris[j]} and ${hvUris[i]} both log in as ${a}; each needs its own initiator name (set InitiatorName in /etc/iscsi/initiatorname.iscsi)`, 'hypervisor');
  }
  const wanted = {
    image,
    vm,
    storage: storageUri,
    hypervisors: hvUris,
    mode: mode.name,
    cdrom,
    readonly: cdrom || (o.readonly ?? prior?.readonly ?? false),
    portal: formatPortal(portals[0]!),
    persist: o.persist ?? prior?.persist ?? true,
    ...(chap ? { chapUser: chapUser(name) } : {}),
  };
  if (prior) {
    const diff = conflict(prior, wanted);
    if (diff) {
      throw new ValidationError(
        `export ${show(name)} already exists with ${diff} (${prior.image} on ${prior.storage} to domain ${prior.vm}); unexport it first (virt-iscsi unexport ${name}), or give another --name`,
        'name',
      );
    }
  }
  const stack = o.stack ?? prior?.stack;
  const sessionSettings = sessionSettingsFor(mode, o, prior?.session);
  const iqn = prior?.target ?? exportTargetIqn(hostAuthority(storage.hostname), name, o.now);
  const target = await checkNotServed(storage, iqn);
  const hypervisors: HypervisorPart[] = sides.map((s, i) => ({ uri: s.uri, connect, initiator: initiators[i]! }));
  const record: ExportRecord = {
    version: 2,
    name,
    image,
    sizeBytes: storage.image.sizeBytes,
    cdrom,
    readonly: wanted.readonly,
    storage: storageUri,
    backend: storage.backendName,
    backendOptions: { ...(o.controlPort !== undefined ? { controlPort: o.controlPort } : {}), ...(o.confDir !== undefined ? { confDir: o.confDir } : {}) },
    target: iqn,
    lun: EXPORT_LUN,
    serial: prior?.serial ?? target?.luns.find((l) => l.lun === EXPORT_LUN)?.serial ?? newSerial(),
    ...(chap ? { chapUser: chapUser(name) } : {}),
    portal: wanted.portal,
    vm,
    persist: wanted.persist,
    hypervisors,
    ...(sessionSettings ? { session: sessionSettings } : {}),
    ...(stack !== undefined ? { stack } : {}),
    createdAt: prior?.createdAt ?? (o.now ?? new Date()).toISOString(),
    ...modeFields(mode, name, chap),
  };
  let chapSecret: string | undefined;
  if (chap) chapSecret = target ? await storage.backend.storedChapSecret(iqn, record.chapUser!) : newChapSecret();
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

