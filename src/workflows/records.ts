// What an export leaves behind to find itself again: a JSON record per export on the
// machine that ran the command (XDG state dir) and one on the storage host, so `status`
// and `unexport` work from another machine, or after the local state is lost. Records
// hold names, never a secret, and are written atomically, 0600, through a Runner (a dry
// run prints them instead).
//
// A record is data, never code: one read back (perhaps from another host, whose root may
// not be ours) is checked value by value with the checks its flags had, and the names of
// what it points at must be the ones its export name gives, so a record cannot send
// teardown after a pool, secret, program or URI it did not make.
import { homedir } from 'node:os';
import { isAbsolute, posix } from 'node:path';
import { ValidationError } from '../errors.js';
import type { Attachment } from '../hypervisor/disk-steps.js';
import { checkSessionSettings, SESSION_SETTING_KEYS, type SessionSettings } from '../hypervisor/session-settings.js';
import { checkLibvirtUri } from '../names/libvirt-uri.js';
import { parseIscsiName, toIqnIdentifier } from '../names/iscsi-name.js';
import { formatPortal, parsePortal } from '../names/portal.js';
import { checkAbsolutePath, checkDomainName } from '../names/values.js';
import { commandError, runChecked } from '../runner/check.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Runner } from '../runner/types.js';
import { BACKEND_NAMES, type BackendName } from '../storage/backends.js';
import { checkCephClient } from '../storage/rbd/client.js';
import { formatRbdRef, isRbdRef, parseRbdRef } from '../storage/rbd/ref.js';
import { lunWwid } from '../storage/wwid.js';
import { checkExportName, chapUser, poolName, secretUsage } from './names.js';

export type { Attachment };

export const EXPORT_MODES = ['pool', 'direct', 'network', 'block', 'multipath', 'rbd'] as const;
export type ExportMode = (typeof EXPORT_MODES)[number];

/** Where the storage host keeps its export records. */
export const DEFAULT_HOST_RECORD_DIR = '/var/lib/virt-iscsi/exports';

export const RECORD_VERSION = 2;

/** One hypervisor of an export: how it is reached, the initiator it logs in as, where the disk is in the domain there. */
export interface HypervisorPart {
  /** Host URI, as given to export (relative to the machine that ran it). */
  uri: string;
  /** libvirt URI there. */
  connect: string;
  initiator: string;
  /** Known once attached, and only where the domain is defined (the local record has it). */
  attachment?: Attachment;
}

/** How the storage host reaches the Ceph cluster of an `rbd:` image (the rbd CLI's --conf, --id, --keyring there). */
export interface CephSettings {
  conf?: string;
  id?: string;
  keyring?: string;
}

interface RecordBase {
  version: typeof RECORD_VERSION;
  name: string;
  /** Absolute path on the storage host, or rbd:POOL/IMAGE of a Ceph RBD image. */
  image: string;
  sizeBytes: number;
  cdrom: boolean;
  readonly: boolean;
  /** Host URI of the storage host (relative to the machine that ran export); for rbd: images, the host that reaches the cluster. */
  storage: string;
  /** For rbd: images. */
  ceph?: CephSettings;
  vm: string;
  persist: boolean;
  /** Every hypervisor the export serves, the first one the one it was made for. */
  hypervisors: HypervisorPart[];
  /** The stack (`apply -f`) that declared this export: apply removes it once no longer declared. */
  stack?: string;
  createdAt: string;
}

/** What an export over iSCSI adds: the target on the storage host and how it is reached. */
export interface IscsiFields {
  backend: BackendName;
  /** What reaches the same target daemon again (a private tgtd's control port, its conf dir). */
  backendOptions: { controlPort?: number; confDir?: string };
  target: string;
  lun: number;
  serial: string;
  /** The CHAP user when CHAP is on; the secret lives only in the backend and libvirt. */
  chapUser?: string;
  /** HOST:PORT the hypervisors dial. */
  portal: string;
  /** open-iscsi session recovery on the hypervisors' sessions (modes whose host logs in). */
  session?: SessionSettings;
}

/** The fields each iSCSI mode adds (the modes table, modes.ts, says what each mode does with them). */
export type IscsiModeFields =
  | { mode: 'pool'; pool: string; secretUsage?: string }
  | { mode: 'direct'; pool: string; secretUsage?: string }
  | { mode: 'network'; secretUsage?: string }
  | { mode: 'block' }
  | MultipathFields;

/** Multipath: one host session per portal, dm-multipath's map of them the VM's disk. */
export interface MultipathFields {
  mode: 'multipath';
  /** HOST:PORT of each path, in the order given (the first is also `portal`). */
  portals: string[];
  /** Paths that must be up before the disk is given to the VM. */
  minPaths: number;
  /** The LUN's WWID as dm-multipath names its map (derived from the serial by the backend). */
  wwid: string;
}

/** Native rbd: QEMU opens the image itself; the libvirt `ceph` secret holds the client's key. */
export interface RbdModeFields {
  mode: 'rbd';
  secretUsage: string;
  /** The cluster's monitors, HOST:PORT, as the disk lists them. */
  monitors: string[];
}

export type ModeFields = IscsiModeFields | RbdModeFields;
export type IscsiExportRecord = RecordBase & IscsiFields & IscsiModeFields;
export type RbdExportRecord = RecordBase & RbdModeFields;
export type ExportRecord = IscsiExportRecord | RbdExportRecord;

/** The export goes through an iSCSI target (every mode but native rbd). */
export const isIscsi = (r: ExportRecord): r is IscsiExportRecord => r.mode !== 'rbd';

/** The record of an export through an iSCSI target: what the iSCSI builders take (the modes table calls them only for those). */
export function asIscsi(r: ExportRecord): IscsiExportRecord {
  if (!isIscsi(r)) throw new TypeError(`export ${r.name} is not served through an iSCSI target`);
  return r;
}

/** The libvirt pool of the export, in the modes that have one. */
export const recordPool = (r: ExportRecord): string | undefined => ('pool' in r ? r.pool : undefined);
/** The libvirt secret holding its CHAP password, in the modes that keep it there. */
export const recordSecretUsage = (r: ExportRecord): string | undefined => ('secretUsage' in r ? r.secretUsage : undefined);

/** $XDG_STATE_HOME/virt-iscsi/exports, default ~/.local/state/virt-iscsi/exports. */
export function localStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : posix.join(homedir(), '.local', 'state');
  return posix.join(base, 'virt-iscsi', 'exports');
}

export const recordPath = (dir: string, name: string): string => posix.join(dir, `${name}.json`);

const SERIAL = /^[A-Za-z0-9]{1,32}$/;
/** A SCSI NAA WWID as udev and multipath print it: '3' and 32 hex digits (NAA 5 or 6: 3 and 16 or 32 digits). */
export const WWID = /^3[0-9a-f]{16}(?:[0-9a-f]{16})?$/;
const DEVS = /^(?:sd|vd|hd|xvd)[a-z]{1,3}$/;
const BUSES = ['scsi', 'virtio', 'sata', 'ide', 'usb', 'fdc', 'xen'];
const STACK = /^[a-z0-9][a-z0-9.-]{0,63}$/;

/** Reads a record's JSON back, checking every value as the flag that gave it was checked. */
export function parseRecord(file: string, text: string): ExportRecord {
  const fail = (why: string): never => {
    throw new ValidationError(`export record ${file} ${why}; move it away, or fix it`, 'record');
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(`is not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('is not a virt-iscsi export record');
  const r = raw as Record<string, unknown>;
  if (r.version === 1) return parseRecord(file, JSON.stringify(upgradeV1(r)));
  if (r.version !== RECORD_VERSION) return fail(`has version ${JSON.stringify(r.version)}, not ${RECORD_VERSION} (written by another virt-iscsi)`);
  const str = (key: string): string => {
    const v = r[key];
    if (typeof v !== 'string' || v === '') fail(`has no ${key}`);
    return v as string;
  };
  const bool = (key: string): boolean => (typeof r[key] === 'boolean' ? (r[key] as boolean) : fail(`has no ${key} (true or false)`));
  const checked = <T>(key: string, fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      return fail(`has a bad ${key}: ${(e as Error).message}`);
    }
  };
  const name = checked('name', () => checkExportName(str('name')));
  const mode = str('mode');
  if (!(EXPORT_MODES as readonly string[]).includes(mode)) fail(`has mode ${JSON.stringify(mode)}, not one of ${EXPORT_MODES.join(', ')}`);
  const sizeBytes = r.sizeBytes;
  if (!Number.isSafeInteger(sizeBytes) || (sizeBytes as number) < 0) fail('has no size');
  const createdAt = str('createdAt');
  if (Number.isNaN(Date.parse(createdAt))) fail(`has createdAt ${JSON.stringify(createdAt)}, not a date`);
  if (!Array.isArray(r.hypervisors) || r.hypervisors.length === 0) fail('names no hypervisor');
  const hypervisors = (r.hypervisors as unknown[]).map((h, i): HypervisorPart => {
    if (typeof h !== 'object' || h === null) return fail(`has a bad hypervisors[${i}]`);
    const x = h as Record<string, unknown>;
    const part: HypervisorPart = {
      uri: checked(`hypervisors[${i}].uri`, () => (parseHostUri(x.uri as string), x.uri as string)),
      connect: checked(`hypervisors[${i}].connect`, () => checkLibvirtUri(x.connect as string)),
      initiator: checked(`hypervisors[${i}].initiator`, () => parseIscsiName(x.initiator as string, 'initiator')),
    };
    if (x.attachment !== undefined) part.attachment = checked(`hypervisors[${i}].attachment`, () => checkAttachment(x.attachment));
    return part;
  });
  const session = r.session === undefined ? undefined : checked('session', () => checkRecordSession(r.session));
  const stack = r.stack === undefined ? undefined : str('stack');
  if (stack !== undefined && !STACK.test(stack)) fail(`names stack ${JSON.stringify(stack)}`);
  const image = str('image');
  const ceph = r.ceph === undefined ? undefined : checked('ceph', () => cephSettings(r.ceph));
  const base: RecordBase = {
    version: RECORD_VERSION,
    name,
    image: checked('image', () => (isRbdRef(image) ? formatRbdRef(parseRbdRef(image)) : checkAbsolutePath('image', image))),
    sizeBytes: sizeBytes as number,
    cdrom: bool('cdrom'),
    readonly: bool('readonly'),
    storage: checked('storage', () => (parseHostUri(str('storage')), str('storage'))),
    ...(ceph ? { ceph } : {}),
    vm: checked('vm', () => checkDomainName(str('vm'))),
    persist: bool('persist'),
    hypervisors,
    ...(stack !== undefined ? { stack } : {}),
    createdAt,
  };
  // The pieces a record names are the ones its export name gives: never a target, pool or secret of someone else's.
  const usage = r.secretUsage === undefined ? undefined : str('secretUsage');
  if (usage !== undefined && usage !== secretUsage(name)) fail(`names libvirt secret ${JSON.stringify(usage)}, not ${secretUsage(name)}`);
  if (mode === 'rbd') {
    if (!isRbdRef(base.image)) fail(`has mode rbd but image ${JSON.stringify(base.image)} is not rbd:POOL/IMAGE`);
    if (usage === undefined) fail('has mode rbd but no secretUsage');
    if (!Array.isArray(r.monitors) || r.monitors.length === 0) fail('has mode rbd but no monitors');
    const monitors = (r.monitors as unknown[]).map((m, i) => checked(`monitors[${i}]`, () => formatPortal(parsePortal(String(m)))));
    return { ...base, mode: 'rbd', secretUsage: usage!, monitors };
  }
  const backend = str('backend');
  if (!(BACKEND_NAMES as readonly string[]).includes(backend)) fail(`has backend ${JSON.stringify(backend)}`);
  const lun = r.lun;
  if (!Number.isInteger(lun) || (lun as number) < 1 || (lun as number) > 16383) fail('has no LUN number (1 to 16383)');
  const serial = str('serial');
  if (!SERIAL.test(serial)) fail(`has serial ${JSON.stringify(serial)}, not 1 to 32 letters and digits`);
  const bo = (r.backendOptions ?? {}) as Record<string, unknown>;
  if (typeof bo !== 'object' || Array.isArray(bo)) fail('has bad backendOptions');
  const backendOptions: IscsiFields['backendOptions'] = {};
  if (bo.controlPort !== undefined) {
    if (!Number.isInteger(bo.controlPort) || (bo.controlPort as number) < 0 || (bo.controlPort as number) > 32767) fail('has a bad backendOptions.controlPort');
    backendOptions.controlPort = bo.controlPort as number;
  }
  if (bo.confDir !== undefined) backendOptions.confDir = checked('backendOptions.confDir', () => checkAbsolutePath('conf dir', bo.confDir as string));
  const chap = r.chapUser === undefined ? undefined : str('chapUser');
  if (chap !== undefined && chap !== chapUser(name)) fail(`names CHAP user ${JSON.stringify(chap)}, not ${chapUser(name)}`);
  const iscsi: IscsiFields = {
    backend: backend as BackendName,
    backendOptions,
    target: checked('target', () => parseIscsiName(str('target'), 'target')),
    lun: lun as number,
    serial,
    ...(chap !== undefined ? { chapUser: chap } : {}),
    portal: checked('portal', () => formatPortal(parsePortal(str('portal')))),
    ...(session !== undefined ? { session } : {}),
  };
  if (!iscsi.target.endsWith(`:${toIqnIdentifier(name)}`)) fail(`names target ${JSON.stringify(iscsi.target)}, which is not one export ${name} makes (…:${toIqnIdentifier(name)})`);
  const pool = r.pool === undefined ? undefined : str('pool');
  if (pool !== undefined && pool !== poolName(name)) fail(`names pool ${JSON.stringify(pool)}, not ${poolName(name)}`);
  const secret = usage !== undefined ? { secretUsage: usage } : {};
  switch (mode as Exclude<ExportMode, 'rbd'>) {
    case 'pool':
    case 'direct':
      if (pool === undefined) fail(`has mode ${mode} but no pool`);
      return { ...base, ...iscsi, mode: mode as 'pool' | 'direct', pool: pool!, ...secret };
    case 'network':
      return { ...base, ...iscsi, mode: 'network', ...secret };
    case 'block':
      return { ...base, ...iscsi, mode: 'block' };
    case 'multipath':
      {
        const m = checked('multipath fields', () => multipathFields(r, iscsi.portal));
        // The WWID teardown flushes and forgets is the one the LUN's serial gives: never another map.
        if (m.wwid !== lunWwid(iscsi.backend, serial)) fail(`names WWID ${m.wwid}, not ${lunWwid(iscsi.backend, serial) ?? 'one'} that ${backend} gives serial ${serial}`);
        return { ...base, ...iscsi, ...m };
      }
  }
}

function multipathFields(r: Record<string, unknown>, portal: string): MultipathFields {
  if (!Array.isArray(r.portals) || r.portals.length < 2) throw new Error('portals is not a list of two or more HOST:PORT');
  const portals = (r.portals as unknown[]).map((p) => formatPortal(parsePortal(String(p))));
  if (new Set(portals).size !== portals.length) throw new Error('portals lists a portal twice');
  if (portals[0] !== portal) throw new Error(`portals does not start with portal ${portal}`);
  const minPaths = r.minPaths;
  if (!Number.isInteger(minPaths) || (minPaths as number) < 1 || (minPaths as number) > portals.length) throw new Error(`minPaths ${JSON.stringify(minPaths)} is not 1 to ${portals.length}`);
  if (typeof r.wwid !== 'string' || !WWID.test(r.wwid)) throw new Error(`wwid ${JSON.stringify(r.wwid)} is not a SCSI WWID (3 and 16 or 32 lowercase hex digits)`);
  return { mode: 'multipath', portals, minPaths: minPaths as number, wwid: r.wwid };
}

function cephSettings(c: unknown): CephSettings {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error('not an object');
  const x = c as Record<string, unknown>;
  const client = checkCephClient({
    ...(x.conf !== undefined ? { conf: String(x.conf) } : {}),
    ...(x.id !== undefined ? { id: String(x.id) } : {}),
    ...(x.keyring !== undefined ? { keyring: String(x.keyring) } : {}),
  });
  return { ...(client.conf ? { conf: client.conf } : {}), ...(client.id ? { id: client.id } : {}), ...(client.keyring ? { keyring: client.keyring } : {}) };
}

function checkRecordSession(v: unknown): SessionSettings {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
  const x = v as Record<string, unknown>;
  const keys = Object.keys(SESSION_SETTING_KEYS) as Array<keyof SessionSettings>;
  for (const k of Object.keys(x)) if (!(keys as string[]).includes(k)) throw new Error(`unknown key ${JSON.stringify(k)}`);
  for (const k of keys) if (typeof x[k] !== 'number') throw new Error(`${k} is not a number`);
  const out = { replacementTimeout: x.replacementTimeout as number, noopOutInterval: x.noopOutInterval as number, noopOutTimeout: x.noopOutTimeout as number };
  checkSessionSettings(out);
  return out;
}

function checkAttachment(a: unknown): Attachment {
  const x = a as Record<string, unknown>;
  if (typeof x !== 'object' || x === null) throw new Error('not an object');
  if (typeof x.dev !== 'string' || !DEVS.test(x.dev)) throw new Error(`dev ${JSON.stringify(x.dev)}`);
  if (typeof x.bus !== 'string' || !BUSES.includes(x.bus)) throw new Error(`bus ${JSON.stringify(x.bus)}`);
  if (x.device !== 'disk' && x.device !== 'cdrom') throw new Error(`device ${JSON.stringify(x.device)}`);
  for (const k of ['media', 'live', 'config'] as const) if (typeof x[k] !== 'boolean') throw new Error(`${k} is not true or false`);
  const out: Attachment = { dev: x.dev, bus: x.bus, device: x.device, media: x.media as boolean, live: x.live as boolean, config: x.config as boolean };
  const c = x.controller as Record<string, unknown> | undefined;
  if (c !== undefined) {
    if (typeof c !== 'object' || c === null || typeof c.live !== 'boolean' || typeof c.config !== 'boolean') throw new Error('controller');
    out.controller = { live: c.live, config: c.config };
  }
  return out;
}

/** A round-1 record: one hypervisor, at the top level. */
function upgradeV1(r: Record<string, unknown>): Record<string, unknown> {
  const { hypervisor, connect, initiator, attachment, ...rest } = r;
  return { ...rest, version: RECORD_VERSION, hypervisors: [{ uri: hypervisor, connect, initiator, ...(attachment !== undefined ? { attachment } : {}) }] };
}

/** The record, or undefined when there is none. */
export async function readRecord(runner: Runner, dir: string, name: string): Promise<ExportRecord | undefined> {
  const file = recordPath(dir, name);
  const text = await runner.readFile(file);
  return text === undefined ? undefined : parseRecord(file, text);
}

export interface RecordListing {
  records: ExportRecord[];
  /** Files that are not good records: reported, never used, never in the way of the others. */
  unreadable: Array<{ file: string; error: string }>;
}

/**
 * Every record in `dir`. `find DIR -maxdepth 1 -type f -name '*.json'` prints one path a
 * line; a missing directory (exit 1, "No such file or directory") holds none. The files
 * are read at once (one round trip each over SSH, in parallel).
 */
export async function listRecords(runner: Runner, dir: string): Promise<RecordListing> {
  const argv = ['find', dir, '-maxdepth', '1', '-type', 'f', '-name', '*.json'];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return { records: [], unreadable: [] };
    throw commandError(runner, argv, r);
  }
  const files = r.stdout.split('\n').filter(Boolean).sort();
  const texts = await Promise.all(files.map((f) => runner.readFile(f)));
  const out: RecordListing = { records: [], unreadable: [] };
  for (const [i, file] of files.entries()) {
    const text = texts[i];
    if (text === undefined) continue;
    try {
      out.records.push(parseRecord(file, text));
    } catch (e) {
      out.unreadable.push({ file, error: (e as Error).message });
    }
  }
  return out;
}

export function renderRecord(r: ExportRecord): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

/**
 * Writes (atomically replaces) the record, 0600, making its directory (0700) when missing.
 * The directory is there but the first time: it is made (and the write tried again) only
 * when the write fails, which saves a command on every other write.
 */
export async function writeRecord(runner: Runner, dir: string, record: ExportRecord): Promise<string> {
  const file = recordPath(dir, record.name);
  const write = (): Promise<void> => runner.writeFile(file, renderRecord(record), { mode: 0o600 });
  // A dry run's write cannot fail: the plan shows the mkdir the real run would need.
  if (runner.dryRun && (await runner.run(['test', '-d', dir], { query: true })).exitCode !== 0) await runChecked(runner, ['mkdir', '-p', '-m', '0700', dir]);
  try {
    await write();
  } catch (e) {
    if ((await runner.run(['test', '-d', dir], { query: true })).exitCode === 0) throw e;
    await runChecked(runner, ['mkdir', '-p', '-m', '0700', dir]);
    await write();
  }
  return file;
}

/** Already gone is success. */
export function removeRecord(runner: Runner, dir: string, name: string): Promise<void> {
  return runner.removeFile(recordPath(dir, name));
}

/** Same export, same pieces: everything but when it was written (and, with `withoutAttachments`, where the disks sit). */
export function sameRecord(a: ExportRecord | undefined, b: ExportRecord, o: { withoutAttachments?: boolean } = {}): boolean {
  if (!a) return false;
  const strip = ({ createdAt: _c, ...rest }: ExportRecord): string =>
    JSON.stringify(canonical(o.withoutAttachments ? { ...rest, hypervisors: rest.hypervisors.map(({ attachment: _a, ...h }) => h) } : rest));
  return strip(a) === strip(b);
}

/** Keys sorted at every level, so key order does not make two records differ. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}
