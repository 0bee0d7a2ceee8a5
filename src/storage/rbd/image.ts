// RBD images as the `image` command makes them: created empty (thin) or filled from an
// image file by qemu-img through QEMU's rbd driver. Never over an existing image: the
// image is created first with `rbd create`, which refuses an existing name atomically,
// and the conversion writes into that image (qemu-img convert -n), so an image that
// was there before is never opened for writing; a failed conversion removes only the
// image it created.
import { ValidationError } from '../../errors.js';
import { commandError } from '../../runner/check.js';
import type { Runner } from '../../runner/types.js';
import { imageFormat, statPath } from '../image.js';
import { qemuProgressParser } from '../qemu-progress.js';
import { SECTOR } from '../size.js';
import { qemuRbdFilename, type CephClient } from './client.js';
import { Rbd } from './rbd.js';
import { formatRbdRef, type RbdImageRef } from './ref.js';

const show = (v: string): string => JSON.stringify(v);

/** Creates an empty (thin) RBD image of `sizeBytes`; a CephError 'exists' when the name is taken. */
export async function createRbdImage(runner: Runner, ref: RbdImageRef, sizeBytes: number, client: CephClient = {}): Promise<void> {
  await new Rbd(runner, client).create(ref, sizeBytes);
}

export interface RbdConvertOptions {
  /** Called with 0-100 as qemu-img reports progress. */
  onProgress?: (percent: number) => void;
}

/**
 * `qemu-img info -U --output=json -f FORMAT PATH`'s "virtual-size" (qemu-img 7.2), e.g.
 *   { "virtual-size": 134217728, "filename": "in.qcow2", "format": "qcow2", ... }
 */
export async function virtualSize(runner: Runner, path: string, format: string): Promise<number> {
  const argv = ['qemu-img', 'info', '-U', '--output=json', '-f', format, path];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) throw commandError(runner, argv, r);
  const size = (JSON.parse(r.stdout) as { 'virtual-size'?: unknown })['virtual-size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new ValidationError(`qemu-img info gave no virtual size for ${show(path)}`, 'input');
  return size;
}

/**
 * Copies the disk in `input` (any format qemu-img reads, on the runner's host) into a new
 * RBD image of the same virtual size (rounded up to whole 512-byte sectors). Only the
 * written parts are stored: the new image reads as zeros (--target-is-zero).
 */
export async function convertToRbd(runner: Runner, input: string, ref: RbdImageRef, client: CephClient = {}, options: RbdConvertOptions = {}): Promise<{ inputFormat: string; sizeBytes: number }> {
  if (!input.startsWith('/')) throw new ValidationError(`input path ${show(input)} is not an absolute path`, 'input');
  const rbd = new Rbd(runner, client);
  const st = await statPath(runner, input);
  if (!st) throw new ValidationError(`image ${show(input)} does not exist on ${runner.host}`, 'input');
  if (st.type === 'directory') throw new ValidationError(`image ${show(input)} is a directory`, 'input');
  // The format is read once and passed with -f: a raw image holding a qcow2 header is never reinterpreted.
  const inputFormat = await imageFormat(runner, input);
  const size = await virtualSize(runner, input, inputFormat);
  const sizeBytes = Math.ceil(size / SECTOR) * SECTOR;
  await rbd.create(ref, sizeBytes);
  const argv = ['qemu-img', 'convert', '-p', '-n', '--target-is-zero', '-f', inputFormat, '-O', 'raw', input, qemuRbdFilename(ref, rbd.client)];
  const feed = options.onProgress ? qemuProgressParser(options.onProgress) : undefined;
  const r = await runner.run(argv, { onOutput: feed ? (chunk, stream) => stream === 'stdout' && feed(chunk) : undefined });
  if (r.exitCode === 0) return { inputFormat, sizeBytes };
  const failed = commandError(runner, argv, r);
  // Ours alone (created just above): nothing half-written is left behind.
  await rbd.removeCreated(ref).catch(() => undefined);
  throw new ValidationError(`converting ${show(input)} into ${formatRbdRef(ref)} failed, and the new image was removed: ${lastLine(failed.stderr)}`, 'output');
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? 'no error message';
}
