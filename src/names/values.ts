// Checks for values that come from flags, stack files and records alike: a record read
// back from another host is checked exactly like the flag that first gave the value.
import { posix } from 'node:path';
import { ValidationError } from '../errors.js';

const CONTROL = /[\x00-\x1f\x7f]/;

/** An absolute path, normalised, without control characters (a newline in a path would be a new line in every plan we print). */
export function checkAbsolutePath(what: string, path: string, field = 'path'): string {
  if (typeof path !== 'string' || path === '') throw new ValidationError(`${what} is empty; expected an absolute path`, field);
  if (CONTROL.test(path)) throw new ValidationError(`${what} ${JSON.stringify(path)} contains control characters; expected an absolute path`, field);
  if (!posix.isAbsolute(path)) throw new ValidationError(`${what} ${JSON.stringify(path)} is not an absolute path`, field);
  return posix.normalize(path);
}

/**
 * A libvirt domain name (or UUID) as users give it: libvirt takes almost any text, so only
 * what would break a line we print or a command line is refused. It reaches virsh after
 * `--domain`, so even a name like `--help` is a name, not an option.
 */
export function checkDomainName(vm: string, what = 'domain name'): string {
  if (typeof vm !== 'string' || vm === '') throw new ValidationError(`${what} is empty; give the domain's name`, 'vm');
  if (CONTROL.test(vm) || vm.length > 255) throw new ValidationError(`${what} ${JSON.stringify(vm)} is not a domain name: expected up to 255 characters without control characters`, 'vm');
  return vm;
}

/** Any text shown to people in one line (step titles, plan comments): control characters escaped. */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}
