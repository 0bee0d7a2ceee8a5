// Everything an export decides before it changes anything, from read-only queries: the
// storage host (image, backend, daemon, its name, targets already there, its record of
// this export) and the hypervisor (domain, what it can log in with, its initiator name)
// are asked at the same time. Bad input and impossible requests fail here, so nothing
// on any host has changed when they do.
import { isIP } from 'node:net';
import { resolve as resolvePath, posix } from 'node:path';
import { PrerequisiteError, ValidationError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { DEFAULT_LIBVIRT_URI, Virsh } from '../hypervisor/virsh.js';
import { formatPortal, parsePortal, type Portal } from '../names/portal.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Runner } from '../runner/types.js';
import type { Session } from '../runner/session.js';
import type { TargetBackend, TargetState } from '../storage/backend.js';
import { createBackend, detectBackend, probeBackends, type BackendName, type BackendOptions } from '../storage/backends.js';
import { checkServableImage, fileIdentities, type ImageInfo } from '../storage/image.js';
import { tgtStatus } from '../storage/tgt/daemon.js';
import { DEFAULT_CONF_DIR, readRecords } from '../storage/tgt/records.js';
import { notInstalledError, Tgtadm } from '../storage/tgt/tgtadm.js';
import { chapUser, checkExportName, defaultExportName, exportTargetIqn, generatedInitiator, hostAuthority, looksLikeIso, newChapSecret, newSerial, poolName, secretUsage } from './names.js';
import { canLogIn, chooseMode, hostName, probeHypervisor, type HypervisorFacts } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, EXPORT_MODES, localStateDir, readRecord, type ExportMode, type ExportRecord } from './records.js';
import type { ExportOptions } from './types.js';
import { sameIqn } from '../names/iscsi-name.js';

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

export interface HypervisorSide {
  runner: Runner;
  virsh: Virsh;
  facts: HypervisorFacts;
}

export interface ResolvedExport {
  /** What this export is: every name and choice, as its records will hold it (no attachment yet). */
  record: ExportRecord;
  /** The record found from an earlier run of the same export (local first, else the storage host's). */
  prior?: ExportRecord;
  localRecord?: ExportRecord;
  portal: Portal;
  /** Our target, when it exists already. */
  target?: TargetState;
  /** The CHAP secret: generated, or read back from the backend's config for an existing target. */
  chapSecret?: string;
  /** The CHAP secret is new, so a libvirt secret already there must get the new value. */
  chapSecretIsNew: boolean;
  storage: StorageFacts;
  hypervisor: HypervisorSide;
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
  if (posix.isAbsolute(image)) return posix.normalize(image);
  if (storage !== 'local') throw new ValidationError(`image ${show(image)} is a relative path; give its absolute path on ${storage}`, 'image');
  return resolvePath(process.cwd(), image);
}

function checkMode(mode: string | undefined): ExportMode | undefined {
  if (mode === undefined || (EXPORT_MODES as readonly string[]).includes(mode)) return mode as ExportMode | undefined;
  throw new ValidationError(`mode ${show(mode)} is not one of ${EXPORT_MODES.join(', ')}`, 'mode');
}

function backendOptions(o: ExportOptions): BackendOptions {
  const b: BackendOptions = { controlPort: o.controlPort, confDir: o.confDir, install: o.install, signal: o.signal };
  // A private tgtd virt-iscsi starts listens where the hypervisor will dial.
  if (o.controlPort !== undefined && o.portal !== undefined) {
    const p = parsePortal(o.portal);
    if (isIP(p.host) !== 0) b.portal = formatPortal(p);
  }
  // LIO listens on the portal's port, on every address of its family (the lab showed a fixed
  // 0.0.0.0:3260 failing beside another target on 3260 while --portal named another port).
  // Not on the portal's address itself: the hypervisor may dial one the storage host lacks (NAT).
  if (o.portal !== undefined) {
    const p = parsePortal(o.portal);
    b.portals = [{ host: isIP(p.host) === 6 ? '::' : '0.0.0.0', port: p.port }];
  }
  return b;
}

async function daemonRunning(runner: Runner, name: BackendName, b: BackendOptions): Promise<boolean> {
  if (name === 'tgt') {
    const status = await tgtStatus(new Tgtadm(runner, b.controlPort));
    if (status === 'not-installed' && !b.install) throw notInstalledError(runner.host);
    return status === 'running';
  }
  return (await probeBackends(runner, b)).find((p) => p.name === name)?.running ?? false;
}

async function storageFacts(runner: Runner, o: ExportOptions, image: string, name: string, hostRecordDir: string): Promise<StorageFacts> {
  const b = backendOptions(o);
  const named = o.backend !== undefined ? Promise.resolve(o.backend) : detectBackend(runner, b);
  // The targets are asked for along with the daemon's status (a round trip less over SSH):
  // what a stopped daemon answers does not count.
  const listed = named.then((n) => createBackend(n, runner, b).list()).then(
    (targets) => ({ targets }),
    (error: unknown) => ({ error }),
  );
  const [info, hostname, backendName, record, running, shown] = await Promise.all([
    checkServableImage(runner, image),
    hostName(runner),
    named,
    readRecord(runner, hostRecordDir, name),
    named.then((n) => daemonRunning(runner, n, b)),
    listed,
  ]);
  const backend = createBackend(backendName, runner, b);
  if (running && 'error' in shown) throw shown.error;
  const targets = running && 'targets' in shown ? shown.targets : [];
  return { runner, backend, backendName, running, image: info, hostname, ...(record ? { record } : {}), targets };
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

/** The secret of an existing tgt target's CHAP account, from its 0600 record (tgtd never shows secrets). */
async function existingChapSecret(s: StorageFacts, o: ExportOptions, iqn: string, user: string): Promise<string | undefined> {
  if (s.backendName !== 'tgt') return undefined;
  const recs = await readRecords(s.runner, o.confDir ?? DEFAULT_CONF_DIR);
  return recs.find((r) => sameIqn(r.iqn, iqn))?.target?.incomingUsers.find((a) => a.user === user)?.secret;
}

/** The portal's host as the hypervisor reaches the storage host (before resolving it to an IP). */
function defaultPortalHost(storage: string, hypervisor: string, storageHostname: string): string {
  if (storage === hypervisor) return '127.0.0.1';
  const spec = parseHostUri(storage);
  return spec.kind === 'ssh' ? spec.host : storageHostname;
}

const CONFLICTING = ['image', 'vm', 'storage', 'hypervisor', 'mode', 'cdrom', 'readonly', 'portal', 'persist'] as const;
type Conflicting = (typeof CONFLICTING)[number];

/** What differs between an earlier run's record and this request; undefined when it is the same export. */
function conflict(prior: ExportRecord, want: Pick<ExportRecord, Conflicting | 'chapUser'>): string | undefined {
  for (const k of CONFLICTING) if (prior[k] !== want[k]) return `${k} ${show(prior[k])}, not ${show(want[k])}`;
  if (!!prior.chapUser !== !!want.chapUser) return prior.chapUser ? 'CHAP on' : 'CHAP off';
  return undefined;
}

function modeFor(o: ExportOptions, prior: ExportRecord | undefined, f: HypervisorFacts, host: string): ExportMode {
  const mode = checkMode(o.mode) ?? prior?.mode ?? chooseMode(f);
  if ((mode === 'pool' || mode === 'block') && !canLogIn(f)) {
    const why = f.iscsiadm ? 'the iscsi_tcp kernel module is not available there' : 'iscsiadm (open-iscsi) is not installed there';
    throw new PrerequisiteError(`mode ${mode} needs open-iscsi to log in on ${host}, but ${why}; use --mode direct or --mode network`);
  }
  if (mode === 'direct' && !f.iscsiDirect) {
    throw new PrerequisiteError(`mode direct needs libvirt's iscsi-direct pool backend on ${host} (libvirt-daemon-driver-storage-iscsi-direct); use --mode network`);
  }
  return mode;
}

function initiatorFor(mode: ExportMode, f: HypervisorFacts, host: string): string {
  if (f.initiatorName) return f.initiatorName;
  if (mode === 'pool' || mode === 'block') {
    throw new PrerequisiteError(`/etc/iscsi/initiatorname.iscsi on ${host} is missing or has no InitiatorName= line: install open-iscsi`);
  }
  return generatedInitiator(f.hostname, f.machineId);
}

export async function resolveExport(session: Session, o: ExportOptions): Promise<ResolvedExport> {
  const storageUri = o.storage ?? 'local';
  const hvUri = o.hypervisor ?? 'local';
  for (const uri of [storageUri, hvUri]) parseHostUri(uri);
  if (o.vm === '') throw new ValidationError('--vm is empty; give the domain name', 'vm');
  const image = imagePath(o.image, storageUri);
  const name = checkExportName(o.name ?? defaultExportName(image));
  checkMode(o.mode);
  if (o.portal !== undefined) parsePortal(o.portal);
  const stateDir = o.stateDir ?? localStateDir();
  const hostRecordDir = o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR;
  const connect = o.connect ?? DEFAULT_LIBVIRT_URI;

  const [storageRunner, hvRunner, local] = await Promise.all([session.runner(storageUri), session.runner(hvUri), session.runner('local')]);
  const virsh = new Virsh(hvRunner, connect);
  const [storage, facts, localRecord] = await Promise.all([
    storageFacts(storageRunner, o, image, name, hostRecordDir),
    probeHypervisor(virsh, o.vm, checkMode(o.mode)),
    readRecord(local, stateDir, name),
  ]);
  const prior = localRecord ?? storage.record;
  const mode = modeFor(o, prior, facts, hvUri);
  const cdrom = o.cdrom ?? prior?.cdrom ?? looksLikeIso(image);
  const chap = o.chap ?? (prior ? prior.chapUser !== undefined : false);

  const portalText = o.portal ?? prior?.portal ?? defaultPortalHost(storageUri, hvUri, storage.hostname);
  const portal = await new Iscsiadm(hvRunner).resolvePortal(o.portal !== undefined || prior ? parsePortal(portalText) : { host: portalText, port: 3260 });
  const wanted = {
    image,
    vm: o.vm,
    storage: storageUri,
    hypervisor: hvUri,
    mode,
    cdrom,
    readonly: cdrom || (o.readonly ?? prior?.readonly ?? false),
    portal: formatPortal(portal),
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
  const iqn = prior?.target ?? exportTargetIqn(hostAuthority(storage.hostname), name, o.now);
  const target = await checkNotServed(storage, iqn);
  const record: ExportRecord = {
    version: 1,
    name,
    image,
    sizeBytes: storage.image.sizeBytes,
    cdrom,
    readonly: wanted.readonly,
    storage: storageUri,
    hypervisor: hvUri,
    connect,
    backend: storage.backendName,
    backendOptions: { ...(o.controlPort !== undefined ? { controlPort: o.controlPort } : {}), ...(o.confDir !== undefined ? { confDir: o.confDir } : {}) },
    target: iqn,
    lun: EXPORT_LUN,
    serial: prior?.serial ?? target?.luns.find((l) => l.lun === EXPORT_LUN)?.serial ?? newSerial(),
    ...(chap ? { chapUser: chapUser(name) } : {}),
    portal: wanted.portal,
    mode,
    initiator: prior?.initiator ?? initiatorFor(mode, facts, hvUri),
    ...(mode === 'pool' || mode === 'direct' ? { pool: poolName(name) } : {}),
    ...(chap && mode !== 'block' ? { secretUsage: secretUsage(name) } : {}),
    vm: o.vm,
    persist: wanted.persist,
    ...(stack !== undefined ? { stack } : {}),
    createdAt: prior?.createdAt ?? (o.now ?? new Date()).toISOString(),
  };
  let chapSecret: string | undefined;
  if (chap) chapSecret = target ? await existingChapSecret(storage, o, iqn, record.chapUser!) : newChapSecret();
  return {
    record,
    ...(prior ? { prior } : {}),
    ...(localRecord ? { localRecord } : {}),
    portal,
    ...(target ? { target } : {}),
    ...(chapSecret !== undefined ? { chapSecret } : {}),
    chapSecretIsNew: chap && !target,
    storage,
    hypervisor: { runner: hvRunner, virsh, facts },
    local,
    stateDir,
    hostRecordDir,
    dryRun: session.dryRun,
  };
}
