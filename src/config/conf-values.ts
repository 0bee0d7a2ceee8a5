// Checks shared by the targets.conf and ietd.conf models: a value is refused before it
// is written when the file format (or the tool that reads it) would take it apart.
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';

/** JSON-quoted so newlines and control characters show up readably in the one-line error. */
export function show(value: string): string {
  return JSON.stringify(value);
}

/** Throws when `value` does not match `pattern`; `expected` says what would be accepted. */
export function requireMatch(field: string, value: string, pattern: RegExp, expected: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ValidationError(`${field} is empty; expected ${expected}`, field);
  }
  if (!pattern.test(value)) {
    throw new ValidationError(`${field} ${show(value)} is not allowed here; expected ${expected}`, field);
  }
}

/** An integer within [min, max]. */
export function requireInt(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(`${field} ${String(value)} is not allowed; expected an integer from ${min} to ${max}`, field);
  }
}

/** Parses a decimal integer token from a config file, or says which line holds a bad one. */
export function parseIntToken(field: string, token: string, where: string): number {
  if (!/^[0-9]{1,9}$/.test(token)) {
    throw new ValidationError(`${where}: ${field} ${show(token)} is not a number`, field);
  }
  return Number(token);
}

/** The kinds of value TargetSpec.allow may hold. */
export type AllowKind = 'all' | 'address' | 'name';

/** ALL, an IPv4/IPv6 address or CIDR, or an iSCSI name (iqn./eui./naa.). */
export function classifyAllow(value: string): AllowKind {
  if (value === 'ALL') return 'all';
  const slash = value.indexOf('/');
  const addr = slash < 0 ? value : value.slice(0, slash);
  const family = isIP(addr);
  if (family !== 0) {
    if (slash < 0) return 'address';
    const bits = value.slice(slash + 1);
    if (/^[0-9]{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)) return 'address';
  }
  if (/^(iqn\.|eui\.|naa\.)/i.test(value) && /^[a-zA-Z0-9.:-]+$/.test(value)) return 'name';
  throw new ValidationError(
    `allowed initiator ${show(value)} is neither ALL, an IP address, a CIDR (ADDR/BITS) nor an iSCSI name (iqn./eui./naa.)`,
    'allow',
  );
}
