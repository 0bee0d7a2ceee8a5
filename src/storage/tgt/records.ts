// The files that record the targets virt-iscsi made, one per target, in tgt's conf.d
// (targets.conf syntax). A persistent target's file ends in .conf, so tgt's
// `include /etc/tgt/conf.d/*.conf` loads it when tgtd starts; a --no-persist target's
// file ends in .live-only, which tgt-admin never reads: it only says the target is ours.
// A file is ours when its name starts with virt-iscsi- and its first line is our header;
// any other file is never read, written or removed.
import { posix } from 'node:path';
import { parseTgtConf, parseTgtTarget, buildTgtTarget, type TgtTarget } from '../../config/tgt-conf.js';
import { commandError, runChecked } from '../../runner/check.js';
import type { Runner } from '../../runner/types.js';

export const DEFAULT_CONF_DIR = '/etc/tgt/conf.d';

export type RecordKind = 'persistent' | 'live-only';

export interface TgtRecord {
  iqn: string;
  kind: RecordKind;
  file: string;
  /** The export that made the target (`virt-iscsi export`), when one did. */
  export?: string;
  /** The block; unset when the file could not be read back (then `error` says why). */
  target?: TgtTarget;
  error?: string;
}

const PREFIX = 'virt-iscsi-';
const EXT: Record<RecordKind, string> = { persistent: '.conf', 'live-only': '.live-only' };
const HEADER = /^# virt-iscsi: target (\S+) \((persistent|live only)\b/;
/** The header line that says which export made the target: what tells an export's target from one of `target create`. */
const EXPORT_LINE = /^# virt-iscsi: made by export ([a-z0-9][a-z0-9.-]{0,47})$/m;

/** iqn.2024-01.com.example:disk1 -> virt-iscsi-iqn.2024-01.com.example_disk1.conf */
export function recordFile(confDir: string, iqn: string, kind: RecordKind): string {
  return posix.join(confDir, `${PREFIX}${iqn.toLowerCase().replace(/:/g, '_')}${EXT[kind]}`);
}

export function buildRecord(target: TgtTarget, kind: RecordKind, exportName?: string): string {
  const header =
    kind === 'persistent'
      ? [
          `# virt-iscsi: target ${target.iqn} (persistent: tgt-admin loads this file when tgtd starts)`,
          `# Made by virt-iscsi; "virt-iscsi target delete ${target.iqn}" removes it with the target.`,
          '# After editing it by hand, run "virt-iscsi target sync" to apply it to the running tgtd.',
        ]
      : [
          `# virt-iscsi: target ${target.iqn} (live only: made with --no-persist; tgt-admin does not read this file)`,
          '# It records that virt-iscsi made the target; "virt-iscsi target sync" removes it once the target is gone.',
        ];
  if (exportName !== undefined) header.push(`# virt-iscsi: made by export ${exportName}`);
  return `${header.join('\n')}\n${buildTgtTarget(target)}`;
}

/** Reads one of our files back; undefined when `text` does not start with our header. */
export function parseRecord(file: string, text: string): TgtRecord | undefined {
  const m = HEADER.exec(text);
  if (!m) return undefined;
  const kind: RecordKind = m[2] === 'persistent' ? 'persistent' : 'live-only';
  const rec: TgtRecord = { iqn: m[1]!, kind, file };
  const made = EXPORT_LINE.exec(text.split('\n<')[0]!);
  if (made) rec.export = made[1]!;
  try {
    const blocks = parseTgtConf(text).chunks.filter((c) => c.kind === 'target');
    if (blocks.length !== 1) throw new Error(`holds ${blocks.length} <target> blocks, not 1`);
    rec.target = parseTgtTarget(blocks[0]!.text);
    if (rec.target.iqn.toLowerCase() !== rec.iqn.toLowerCase()) throw new Error(`its block is for ${rec.target.iqn}, its header for ${rec.iqn}`);
  } catch (e) {
    delete rec.target;
    rec.error = e instanceof Error ? e.message : String(e);
  }
  return rec;
}

/**
 * Our records in `confDir`. `find DIR -maxdepth 1 -type f -name 'virt-iscsi-*'` prints
 * one path a line; a missing directory (exit 1, "No such file or directory") holds none.
 */
export async function readRecords(runner: Runner, confDir: string): Promise<TgtRecord[]> {
  const argv = ['find', confDir, '-maxdepth', '1', '-type', 'f', '-name', `${PREFIX}*`];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw commandError(runner, argv, r);
  }
  const files = r.stdout
    .split('\n')
    .filter((f) => f.endsWith(EXT.persistent) || f.endsWith(EXT['live-only']))
    .sort();
  const texts = await Promise.all(files.map((file) => runner.readFile(file)));
  const records: TgtRecord[] = [];
  for (const [i, file] of files.entries()) {
    const text = texts[i];
    const rec = text === undefined ? undefined : parseRecord(file, text);
    if (rec) records.push(rec);
  }
  return records;
}

/** Writes (atomically replaces) the target's record; 0600 when it holds CHAP secrets. */
export async function writeRecord(runner: Runner, confDir: string, target: TgtTarget, kind: RecordKind, exportName?: string): Promise<string> {
  const secret = target.incomingUsers.length > 0 || target.outgoingUser !== undefined;
  const file = recordFile(confDir, target.iqn, kind);
  const write = (): Promise<void> => runner.writeFile(file, buildRecord(target, kind, exportName), { mode: secret ? 0o600 : 0o644, secret });
  const mkdir = async (): Promise<boolean> => {
    if ((await runner.run(['test', '-d', confDir], { query: true })).exitCode === 0) return false;
    await runChecked(runner, ['mkdir', '-p', confDir]);
    return true;
  };
  // The directory is almost always there: it is looked at only when the write fails (a
  // dry run's write cannot, so there it is looked at first, to show the mkdir).
  if (runner.dryRun === true) await mkdir();
  try {
    await write();
  } catch (e) {
    if (!(await mkdir())) throw e;
    await write();
  }
  return file;
}
