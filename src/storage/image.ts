// Disk images on the storage host, through a Runner: what a path is (file, block device),
// its format (tgt serves raw only), and making raw images without ever overwriting one.
import { posix } from 'node:path';
import { CommandError, ValidationError } from '../errors.js';
import { commandError, runChecked } from '../runner/check.js';
import type { Runner } from '../runner/types.js';
import { qemuProgressParser } from './qemu-progress.js';

export interface ImageInfo {
  path: string;
  /** rbd: an RBD image (path POOL/IMAGE), served through tgt's rbd backing store. */
  kind: 'file' | 'block' | 'rbd';
  /** Bytes the initiator sees (file length, block device or RBD image size). */
  sizeBytes: number;
  /** qemu-img's format name: raw, qcow2, vmdk, ... */
  format: string;
}

const show = (v: string): string => JSON.stringify(v);

/**
 * `stat -L -c '%F|%s' PATH` (GNU coreutils), e.g.
 *   regular file|5242880        regular empty file|0        directory|4096
 *   block special file|0        character special file|0
 * Missing: exit 1, "stat: cannot statx '/x': No such file or directory".
 */
export function parseStat(stdout: string): { type: string; size: number } {
  const m = /^([a-z ]+)\|(\d+)\s*$/.exec(stdout);
  if (!m) throw new ValidationError(`stat printed ${show(stdout.trim())}, not "TYPE|SIZE"`, 'stat');
  return { type: m[1]!, size: Number(m[2]) };
}

/** stat's errors (LC_ALL=C) that are about the path, not the host: said in our words. */
const STAT_PROBLEMS: Array<[RegExp, string]> = [
  [/Too many levels of symbolic links/, 'is a loop of symbolic links'],
  [/Permission denied/, 'cannot be reached: permission denied'],
  [/File name too long/, 'is too long a path'],
];

/** What is at `path` on the host (symlinks followed), or undefined when nothing is; `what` names it in errors. */
export async function statPath(runner: Runner, path: string, what = 'path'): Promise<{ type: string; size: number } | undefined> {
  const argv = ['stat', '-L', '-c', '%F|%s', '--', path];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode === 0) return parseStat(r.stdout);
  if (/No such file or directory|Not a directory/.test(r.stderr)) return undefined;
  const problem = STAT_PROBLEMS.find(([re]) => re.test(r.stderr));
  if (problem) throw new ValidationError(`${what} ${show(path)} ${problem[1]} on ${runner.host}`, what);
  throw commandError(runner, argv, r);
}

/** Magic numbers of the formats tgt would serve as garbage, for hosts without qemu-img. */
const MAGIC: Array<[string, string]> = [
  ['514649fb', 'qcow2'], // "QFI\xfb" (qcow and qcow2)
  ['4b444d56', 'vmdk'], // "KDMV" sparse extent
  ['23204469', 'vmdk'], // "# Di(sk DescriptorFile)"
  ['76686478', 'vhdx'], // "vhdx"
  ['636f6e65', 'vpc'], // "conectix"
  ['3c3c3c20', 'vdi'], // "<<< Oracle VM VirtualBox Disk Image >>>"
  ['514645fb', 'qed'], // "QFE\xfb"
];

/**
 * The image's format. `qemu-img info -U --output=json PATH` prints (qemu-img 7.2):
 *   { "virtual-size": 20971520, "filename": "q.qcow2", "cluster-size": 65536,
 *     "format": "qcow2", "actual-size": 200704, "dirty-flag": false, ... }
 * -U (force-share) reads images a running VM holds locked. Without qemu-img on the
 * host, the first 4 bytes (`od -A n -t x1 -N 4 PATH`: " 51 46 49 fb") are matched
 * against the magic numbers of the usual formats; anything else is taken as raw.
 */
export async function imageFormat(runner: Runner, path: string): Promise<string> {
  const argv = ['qemu-img', 'info', '-U', '--output=json', path];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode === 0) {
    const format = (JSON.parse(r.stdout) as { format?: unknown }).format;
    if (typeof format !== 'string') throw new ValidationError(`qemu-img info gave no format for ${show(path)}`, 'image');
    return format;
  }
  if (r.exitCode !== 127) throw new ValidationError(`image ${show(path)} cannot be read on ${runner.host}: ${lastLine(r.stderr)}`, 'image');
  const od = await runChecked(runner, ['od', '-A', 'n', '-t', 'x1', '-N', '4', path], { query: true }).catch((e: unknown) => {
    throw new ValidationError(`image ${show(path)} cannot be read on ${runner.host}: ${e instanceof CommandError ? lastLine(e.stderr) : String(e)}`, 'image');
  });
  const magic = od.stdout.replace(/\s+/g, '');
  return MAGIC.find(([m]) => m === magic)?.[1] ?? 'raw';
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? 'no error message';
}

/** A path name for the raw copy of a non-raw image: disk.qcow2 -> disk.img. */
export function rawNameFor(path: string): string {
  const dir = posix.dirname(path);
  const base = posix.basename(path).replace(/\.(qcow2?|vmdk|vdi|vhdx?|vpc|qed)$/i, '');
  return posix.join(dir, `${base}.img`);
}

/**
 * Checks that `path` can be served as a LUN: an existing, readable, raw regular file or
 * block device. Every failure is a one-line ValidationError naming the path.
 */
export async function checkServableImage(runner: Runner, path: string): Promise<ImageInfo> {
  const st = await statPath(runner, path, 'image');
  if (!st) throw new ValidationError(`image ${show(path)} does not exist on ${runner.host}`, 'image');
  let kind: ImageInfo['kind'];
  let sizeBytes = st.size;
  if (st.type === 'regular file' || st.type === 'regular empty file') {
    kind = 'file';
  } else if (st.type === 'block special file') {
    kind = 'block';
    const r = await runChecked(runner, ['blockdev', '--getsize64', path], { query: true });
    sizeBytes = Number(r.stdout.trim());
  } else {
    throw new ValidationError(`image ${show(path)} is a ${st.type}, not an image file or block device`, 'image');
  }
  if (sizeBytes === 0) throw new ValidationError(`image ${show(path)} is empty (0 bytes)`, 'image');
  const format = await imageFormat(runner, path);
  if (format !== 'raw') {
    throw new ValidationError(
      `image ${show(path)} is ${format}, but tgt serves raw images only: convert it first with "virt-iscsi image convert ${path} ${rawNameFor(path)}"`,
      'image',
    );
  }
  return { path, kind, sizeBytes, format };
}

// Creates a temporary name beside the image, then hard-links it to the final name: link(2)
// fails with EEXIST when anything is there, so an existing file is never opened, let
// alone truncated, and two racing creates cannot both win. The temporary name is removed
// either way. New images are 0600 (mktemp's mode): they hold a guest's disk.
const CREATE_SCRIPT =
  'tmp=$(mktemp "$1.XXXXXX") || exit 1; if truncate -s "$2" "$tmp" && ln -T "$tmp" "$1"; then rm -f "$tmp"; else rc=$?; rm -f "$tmp"; exit $rc; fi';

/** Creates a sparse raw image of `sizeBytes`; refuses (ValidationError) when `path` exists. */
export async function createImage(runner: Runner, path: string, sizeBytes: number): Promise<void> {
  if (!path.startsWith('/')) throw new ValidationError(`image path ${show(path)} is not an absolute path`, 'path');
  const argv = ['sh', '-c', CREATE_SCRIPT, 'sh', path, String(sizeBytes)];
  const r = await runner.run(argv);
  if (r.exitCode === 0) return;
  if (/File exists/.test(r.stderr)) throw new ValidationError(`image ${show(path)} already exists on ${runner.host}; refusing to overwrite it`, 'path');
  throw commandError(runner, argv, r);
}

export interface ConvertOptions {
  /** Output format; default raw (what tgt serves). */
  format?: string;
  /** Called with 0-100 as qemu-img reports progress. */
  onProgress?: (percent: number) => void;
}

// Same no-overwrite rule as CREATE_SCRIPT: qemu-img writes a temporary file, which is
// linked to the output name only when the conversion succeeded.
const CONVERT_SCRIPT =
  'tmp=$(mktemp "$4.XXXXXX") || exit 1; if qemu-img convert -p -f "$1" -O "$2" "$3" "$tmp" && ln -T "$tmp" "$4"; then rm -f "$tmp"; else rc=$?; rm -f "$tmp"; exit $rc; fi';

/** Converts `input` (any format qemu-img reads) into a new file `output`. */
export async function convertImage(runner: Runner, input: string, output: string, options: ConvertOptions = {}): Promise<{ inputFormat: string }> {
  for (const [what, p] of [['input', input], ['output', output]] as const) {
    if (!p.startsWith('/')) throw new ValidationError(`${what} path ${show(p)} is not an absolute path`, what);
  }
  const format = options.format ?? 'raw';
  if (!/^[a-z0-9]+$/.test(format)) throw new ValidationError(`format ${show(format)} is not a qemu-img format name (e.g. raw)`, 'format');
  const st = await statPath(runner, input, 'image');
  if (!st) throw new ValidationError(`image ${show(input)} does not exist on ${runner.host}`, 'input');
  if (st.type === 'directory') throw new ValidationError(`image ${show(input)} is a directory`, 'input');
  if (await statPath(runner, output, 'output')) throw new ValidationError(`output ${show(output)} already exists on ${runner.host}; refusing to overwrite it`, 'output');
  // The input format is read once and passed with -f, so a raw image holding a qcow2
  // header is never reinterpreted (qemu-img's probing warning).
  const inputFormat = await imageFormat(runner, input);
  const argv = ['sh', '-c', CONVERT_SCRIPT, 'sh', inputFormat, format, input, output];
  const feed = options.onProgress ? qemuProgressParser(options.onProgress) : undefined;
  const r = await runner.run(argv, { onOutput: feed ? (chunk, stream) => stream === 'stdout' && feed(chunk) : undefined });
  if (r.exitCode === 0) return { inputFormat };
  if (/File exists/.test(r.stderr)) throw new ValidationError(`output ${show(output)} already exists on ${runner.host}; refusing to overwrite it`, 'output');
  throw commandError(runner, argv, r);
}

/**
 * Which paths name the same file: `stat -L -c '%d:%i|%n' -- PATH...` prints
 * "DEVICE:INODE|PATH" per path it can stat (e.g. "2049:1835021|/srv/disk.img"), so a
 * symlink, a hard link and the file itself share one identity. Missing paths are left out.
 */
export async function fileIdentities(runner: Runner, paths: readonly string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  if (paths.length === 0) return ids;
  const r = await runner.run(['stat', '-L', '-c', '%d:%i|%n', '--', ...paths], { query: true });
  for (const line of r.stdout.split('\n')) {
    const m = /^(\d+:\d+)\|(.+)$/.exec(line);
    if (m) ids.set(m[2]!, m[1]!);
  }
  return ids;
}

/** How much of an image file is allocated: a sparse image has holes, a fully allocated one none. */
export interface ImageAllocation {
  sizeBytes: number;
  allocatedBytes: number;
}

/**
 * `stat -L -c '%s %b %B' -- PATH` (GNU coreutils 9.1) prints the length, the blocks
 * allocated and the size of those blocks, e.g. "67108864 8 512" for a sparse 64 MiB
 * file with 4 KiB written, "67108864 131072 512" for one fully allocated.
 */
export function parseAllocation(stdout: string): ImageAllocation {
  const m = /^(\d+) (\d+) (\d+)\s*$/.exec(stdout);
  if (!m) throw new ValidationError(`stat printed ${show(stdout.trim())}, not "SIZE BLOCKS BLOCKSIZE"`, 'stat');
  return { sizeBytes: Number(m[1]), allocatedBytes: Number(m[2]) * Number(m[3]) };
}

export async function imageAllocation(runner: Runner, path: string): Promise<ImageAllocation> {
  return parseAllocation((await runChecked(runner, ['stat', '-L', '-c', '%s %b %B', '--', path], { query: true })).stdout);
}

/** Grown as it was made: holes stay holes (sparse), or every new byte allocated on disk. */
export type GrowKind = 'sparse' | 'allocated';

/** A file with every byte allocated (filesystems may allocate a little more than its length) was made that way. */
export function growKind(a: ImageAllocation): GrowKind {
  return a.allocatedBytes >= a.sizeBytes ? 'allocated' : 'sparse';
}

/**
 * The command that grows a raw image file from `from` to `to` bytes, never shrinking it
 * and never creating one: sparse, `truncate --no-create --size '>N'` (">": at least N,
 * so a file grown meanwhile is left alone); allocated, `fallocate --offset FROM --length
 * DELTA`, which allocates the new part and extends the file to its end.
 */
export function growImageArgv(path: string, from: number, to: number, kind: GrowKind): string[] {
  if (!path.startsWith('/')) throw new ValidationError(`image path ${show(path)} is not an absolute path`, 'path');
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && to > from && from >= 0)) throw new ValidationError(`cannot grow ${show(path)} from ${from} to ${to} bytes`, 'size');
  return kind === 'sparse'
    ? ['truncate', '--no-create', '--size', `>${to}`, '--', path]
    : ['fallocate', '--offset', String(from), '--length', String(to - from), '--', path];
}
