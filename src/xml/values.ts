// Checks and conversions shared by the libvirt XML models (pool, disk, secret, domain).
// A value must come back from parseXml exactly as it went into buildXml: XML 1.0 cannot
// carry most control characters, and the codec trims attribute and text values, so values
// with either are refused here instead of silently changing on the way through.
import { ValidationError } from '../errors.js';
import { parseIscsiName } from '../names/iscsi-name.js';
import { isHost } from '../names/portal.js';

const show = (v: unknown): string => JSON.stringify(v);

/** A required value: present, no control characters, no leading/trailing whitespace. */
export function requireText(field: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new ValidationError(`${field} is missing`, field);
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new ValidationError(`${field} ${show(value)} contains a control character; XML cannot carry it`, field);
  }
  if (value.trim() !== value) throw new ValidationError(`${field} ${show(value)} starts or ends with whitespace, which XML parsers drop`, field);
  return value;
}

/** requireText, then a pattern (anchored by the caller) with words for what it allows. */
export function requirePattern(field: string, value: string | undefined, pattern: RegExp, expected: string): string {
  const v = requireText(field, value);
  if (!pattern.test(v)) throw new ValidationError(`${field} ${show(v)} is not allowed; expected ${expected}`, field);
  return v;
}

/** One of a fixed set of words. */
export function requireOneOf<T extends string>(field: string, value: string | undefined, allowed: readonly T[]): T {
  if (value === undefined) throw new ValidationError(`${field} is missing; expected one of ${allowed.join(', ')}`, field);
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ValidationError(`${field} ${show(value)} is not one of ${allowed.join(', ')}`, field);
  }
  return value as T;
}

export function requireInt(field: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ValidationError(`${field} ${String(value)} is not an integer from ${min} to ${max}`, field);
  }
  return value;
}

/** An absolute path (hostile characters are fine: the codec escapes them). */
export function requirePath(field: string, value: string | undefined): string {
  return requirePattern(field, value, /^\//, 'an absolute path');
}

/** A libvirt object name (pool, secret usage, volume): no '/' (basictypes.rng objectName). */
export function requireObjectName(field: string, value: string | undefined): string {
  return requirePattern(field, value, /^[^/]+$/, "a name without '/'");
}

const UUID_PATTERN = /^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})$/;

export function requireUuid(field: string, value: string | undefined): string {
  return requirePattern(field, value, UUID_PATTERN, 'a UUID (32 hex digits, dashes optional as 8-4-4-4-12)');
}

/** An iSCSI name, normalised to lower case. */
export function requireIscsiName(field: string, value: string | undefined): string {
  return parseIscsiName(requireText(field, value), field);
}

/** A host name or IP address (no brackets: XML carries IPv6 bare). */
export function requireHost(field: string, value: string | undefined): string {
  const v = requireText(field, value);
  if (!isHost(v)) throw new ValidationError(`${field} ${show(v)} is not a host name or IP address`, field);
  return v;
}

export function requirePort(field: string, value: number): number {
  return requireInt(field, value, 1, 65535);
}

/** CHAP user names as libvirt's disk schema takes them (genericName). */
export function requireChapUser(field: string, value: string | undefined): string {
  return requirePattern(field, value, /^[A-Za-z0-9_+-]+$/, "letters, digits, '_', '+' and '-'");
}

/** A decimal attribute/text value, e.g. port='3260'. */
export function parseDecimal(field: string, text: string): number {
  if (!/^[0-9]{1,15}$/.test(text)) throw new ValidationError(`${field} ${show(text)} is not a decimal number`, field);
  return Number(text);
}

/** A number libvirt writes in hex (0x00) or decimal, as PCI addresses are. */
export function parseHexOrDecimal(field: string, text: string): number {
  if (/^0x[0-9a-f]{1,8}$/i.test(text)) return Number.parseInt(text.slice(2), 16);
  return parseDecimal(field, text);
}

export function hex(value: number, digits: number): string {
  return `0x${value.toString(16).padStart(digits, '0')}`;
}

// libvirt's scaled integers (virScaleInteger): b/bytes, k/KiB = 1024, KB = 1000, and so on up to E.
const POWERS = 'kmgtpe';

/** `<capacity unit='KiB'>4</capacity>` -> 4096. Units as virsh writes and reads them. */
export function scaledToBytes(field: string, value: string, unit = 'bytes'): number {
  const n = parseDecimal(field, value);
  let scale: number;
  const m = /^([kmgtpe])(i?b)?$/i.exec(unit);
  if (/^b(ytes?)?$/i.test(unit)) scale = 1;
  else if (m) scale = (m[2]?.toLowerCase() === 'b' ? 1000 : 1024) ** (POWERS.indexOf(m[1]!.toLowerCase()) + 1);
  else throw new ValidationError(`${field} unit ${show(unit)} is not a libvirt size unit (bytes, KiB, MiB, GiB, KB, MB...)`, field);
  const bytes = n * scale;
  if (!Number.isSafeInteger(bytes)) throw new ValidationError(`${field} ${value} ${unit} is too large`, field);
  return bytes;
}

/** libvirt's yes/no attributes; undefined when absent (the defaults step fills it). */
export function optionalYesNo(field: string, text: string | undefined): boolean | undefined {
  return text === undefined ? undefined : requireOneOf(field, text, ['yes', 'no']) === 'yes';
}

export const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** The same object without its undefined keys, so a parsed model deep-equals a built one. */
export function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
