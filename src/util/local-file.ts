// Files on this machine that a user names (stack files, CHAP secret files): read only
// when they are regular files of a sane size. A FIFO would block the read forever,
// /dev/zero or a multi-gigabyte file would end in "Invalid string length", and a
// directory in EISDIR; each is refused here with one line naming the file instead.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { ValidationError } from '../errors.js';

const show = JSON.stringify;

/** What fstat says a path is, in words for the error. */
function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export const formatBytes = (n: number): string => (n % 1024 ** 2 === 0 ? `${n / 1024 ** 2} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`);

/**
 * The UTF-8 text of a regular file of at most `maxBytes`. `what` names it in errors
 * ("stack file", "--chap-secret-file"); `field` is the ValidationError's field.
 */
export async function readBoundedFile(path: string, maxBytes: number, what: string, field = 'file'): Promise<string> {
  const fail = (why: string): never => {
    throw new ValidationError(`${what} ${show(path)} ${why}`, field);
  };
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => fail(`cannot be read: ${e.code ?? e.message}`));
  try {
    const st = await fh.stat();
    if (!st.isFile()) fail(`is ${kindOf(st)}, not a regular file`);
    if (st.size > maxBytes) fail(`is ${st.size} bytes; the limit is ${formatBytes(maxBytes)}`);
    // Read one byte past the limit: a file that grew since fstat is still caught.
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let len = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
      if (bytesRead === 0) break;
      len += bytesRead;
      if (len === buf.length) {
        if (len > maxBytes) fail(`is more than ${formatBytes(maxBytes)}, the limit`);
        break;
      }
    }
    return buf.toString('utf8', 0, len);
  } catch (e) {
    if (e instanceof ValidationError) throw e;
    return fail(`cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    await fh.close();
  }
}

/** A CHAP secret is one short line: 4 KiB is far more than any target or initiator takes. */
export const SECRET_FILE_MAX_BYTES = 4096;

/**
 * A CHAP secret from a file on this machine, as every command and stack file reads one:
 * a regular file of at most 4 KiB; one trailing newline is the file's, not the secret's.
 */
export async function readSecretFile(what: string, path: string): Promise<string> {
  const text = await readBoundedFile(path, SECRET_FILE_MAX_BYTES, what, 'chap');
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new ValidationError(`${what} ${show(path)} is empty`, 'chap');
  if (/[\0\r\n]/.test(secret)) throw new ValidationError(`${what} ${show(path)} holds more than one line; a CHAP secret is one line`, 'chap');
  return secret;
}
