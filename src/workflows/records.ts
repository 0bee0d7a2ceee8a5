// What an export leaves behind to find itself again: a JSON record per export on the
// machine that ran the command (XDG state dir) and one on the storage host, so `status`
// and `unexport` work from another machine, or after the local state is lost. Records
// hold names, never a secret. Both are written through a Runner (atomically, 0600), so
// a dry run prints them instead of writing.
import { homedir } from 'node:os';
import { isAbsolute, posix } from 'node:path';
import { ValidationError } from '../errors.js';
import { commandError, runChecked } from '../runner/check.js';
import type { Runner } from '../runner/types.js';
import { BACKEND_NAMES, type BackendName } from '../storage/backends.js';
import { checkExportName } from './names.js';

export const EXPORT_MODES = ['pool', 'direct', 'network', 'block'] as const;
export type ExportMode = (typeof EXPORT_MODES)[number];

/** Where the storage host keeps its export records. */
export const DEFAULT_HOST_RECORD_DIR = '/var/lib/virt-iscsi/exports';

/** How the disk sits in the domain; known once it is attached (the local record has it). */
export interface Attachment {
  dev: string;
  bus: string;
  device: 'disk' | 'cdrom';
  /** Media put into a cdrom drive the domain already had (the drive stays when unexported). */
  media: boolean;
  live: boolean;
  config: boolean;
  /** A virtio-scsi controller was added for it (removed with it when nothing else uses it). */
  controller?: { live: boolean; config: boolean };
}

export interface ExportRecord {
  version: 1;
  name: string;
  /** Absolute path on the storage host. */
  image: string;
  sizeBytes: number;
  cdrom: boolean;
  readonly: boolean;
  /** Host URIs as given to export (relative to the machine that ran it). */
  storage: string;
  hypervisor: string;
  /** libvirt URI on the hypervisor. */
  connect: string;
  backend: BackendName;
  /** What reaches the same target daemon again (a private tgtd's control port, its conf dir). */
  backendOptions: { controlPort?: number; confDir?: string };
  target: string;
  lun: number;
  serial: string;
  /** The CHAP user when CHAP is on; the secret lives only in the backend and libvirt. */
  chapUser?: string;
  /** HOST:PORT the hypervisor dials. */
  portal: string;
  mode: ExportMode;
  initiator: string;
  pool?: string;
  secretUsage?: string;
  vm: string;
  persist: boolean;
  attachment?: Attachment;
  /** The stack (`apply -f`) that declared this export: apply removes it once no longer declared. */
  stack?: string;
  createdAt: string;
}

/** $XDG_STATE_HOME/virt-iscsi/exports, default ~/.local/state/virt-iscsi/exports. */
export function localStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : posix.join(homedir(), '.local', 'state');
  return posix.join(base, 'virt-iscsi', 'exports');
}

export const recordPath = (dir: string, name: string): string => posix.join(dir, `${name}.json`);

const fail = (file: string, why: string): never => {
  throw new ValidationError(`export record ${file} ${why}; move it away, or fix it`, 'record');
};

/** Reads a record's JSON back, checking what teardown relies on. */
export function parseRecord(file: string, text: string): ExportRecord {
  let r: Partial<ExportRecord>;
  try {
    r = JSON.parse(text) as Partial<ExportRecord>;
  } catch (e) {
    return fail(file, `is not JSON (${(e as Error).message})`);
  }
  if (typeof r !== 'object' || r === null || r.version !== 1) return fail(file, 'is not a version 1 virt-iscsi export record');
  for (const key of ['name', 'image', 'storage', 'hypervisor', 'connect', 'target', 'serial', 'portal', 'initiator', 'vm', 'createdAt'] as const) {
    if (typeof r[key] !== 'string' || r[key] === '') fail(file, `has no ${key}`);
  }
  if (!(EXPORT_MODES as readonly string[]).includes(r.mode as string)) fail(file, `has mode ${JSON.stringify(r.mode)}, not one of ${EXPORT_MODES.join(', ')}`);
  if (!(BACKEND_NAMES as readonly string[]).includes(r.backend as string)) fail(file, `has backend ${JSON.stringify(r.backend)}`);
  if (!Number.isInteger(r.lun)) fail(file, 'has no LUN number');
  try {
    checkExportName(r.name!);
  } catch {
    fail(file, `names an invalid export ${JSON.stringify(r.name)}`);
  }
  return r as ExportRecord;
}

/** The record, or undefined when there is none. */
export async function readRecord(runner: Runner, dir: string, name: string): Promise<ExportRecord | undefined> {
  const file = recordPath(dir, name);
  const text = await runner.readFile(file);
  return text === undefined ? undefined : parseRecord(file, text);
}

/**
 * Every record in `dir`. `find DIR -maxdepth 1 -type f -name '*.json'` prints one path a
 * line; a missing directory (exit 1, "No such file or directory") holds none.
 */
export async function listRecords(runner: Runner, dir: string): Promise<ExportRecord[]> {
  const argv = ['find', dir, '-maxdepth', '1', '-type', 'f', '-name', '*.json'];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw commandError(runner, argv, r);
  }
  const files = r.stdout.split('\n').filter(Boolean).sort();
  const out: ExportRecord[] = [];
  for (const file of files) {
    const text = await runner.readFile(file);
    if (text !== undefined) out.push(parseRecord(file, text));
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
  if (runner.dryRun === true && (await runner.run(['test', '-d', dir], { query: true })).exitCode !== 0) await runChecked(runner, ['mkdir', '-p', '-m', '0700', dir]);
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

/** Same export, same pieces: everything but when it was written. */
export function sameRecord(a: ExportRecord | undefined, b: ExportRecord): boolean {
  if (!a) return false;
  const strip = ({ createdAt: _c, ...rest }: ExportRecord): string => JSON.stringify(canonical(rest));
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
