// iSCSI names (RFC 3720 §3.2.6, RFC 7143 §4.2.7, RFC 3980 for naa.).
//
//   iqn.2001-04.com.example:storage.disk2.sys1.xyz   iqn + date the authority owned the domain
//   eui.02004567A425678D                               IEEE EUI-64, 16 hex digits
//   naa.52004567BA64678D                               T11 NAA, 16 or 32 hex digits
//
// Names are case-insensitive: stringprep (RFC 3722) maps them to lower case, so we
// normalise to lower case. RFC 3722 also admits some non-ASCII characters, but target
// implementations (tgt, targetcli, ietd) do not, so we accept ASCII letters, digits,
// '.', '-' and ':' only. At most 223 bytes.
import { ValidationError } from '../errors.js';

export type IscsiNameKind = 'iqn' | 'eui' | 'naa';

export type NameCheck = { ok: true; name: string; kind: IscsiNameKind } | { ok: false; problem: string };

export const MAX_NAME_BYTES = 223;

const LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;

/** Checks an iSCSI name; the problem, when there is one, is the first found, in words. */
export function checkIscsiName(raw: string): NameCheck {
  const bad = (problem: string): NameCheck => ({ ok: false, problem });
  if (raw.length === 0) return bad('it is empty');
  // Look for odd characters before lower-casing: toLowerCase can turn one character into
  // two (U+0130), which would shift the reported position.
  const odd = /[^A-Za-z0-9.:-]/u.exec(raw);
  if (odd) {
    const ch = odd[0];
    const what = ch === ' ' ? 'a space' : /[\0-\x1f\x7f]/.test(ch) ? 'a control character' : JSON.stringify(ch);
    return bad(`it contains ${what} at position ${[...raw.slice(0, odd.index)].length + 1}; only letters, digits, '.', '-' and ':' are allowed`);
  }
  const name = raw.toLowerCase();
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return bad(`it is ${Buffer.byteLength(name)} bytes long; the limit is ${MAX_NAME_BYTES}`);
  if (name.startsWith('eui.')) {
    return /^eui\.[0-9a-f]{16}$/.test(name) ? { ok: true, name, kind: 'eui' } : bad('an eui. name is "eui." and exactly 16 hex digits');
  }
  if (name.startsWith('naa.')) {
    return /^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$/.test(name) ? { ok: true, name, kind: 'naa' } : bad('a naa. name is "naa." and 16 or 32 hex digits');
  }
  if (!name.startsWith('iqn.')) return bad('it must start with "iqn.", "eui." or "naa."');
  const m = /^iqn\.(\d{4})-(\d{2})(?:\.|$)/.exec(name);
  if (!m) return bad('an iqn. name continues with the date YYYY-MM and a dot, e.g. iqn.2001-04.com.example');
  const month = Number(m[2]);
  if (month < 1 || month > 12) return bad(`the month in ${m[1]}-${m[2]} is not 01 to 12`);
  const rest = name.slice(m[0].length);
  const colon = rest.indexOf(':');
  const authority = colon < 0 ? rest : rest.slice(0, colon);
  if (authority === '') return bad('an iqn. name needs a reversed domain name after the date, e.g. iqn.2001-04.com.example');
  for (const label of authority.split('.')) {
    if (!LABEL.test(label)) {
      return bad(`the reversed domain name ${JSON.stringify(authority)} has an invalid label ${JSON.stringify(label)} (letters, digits and inner '-' only)`);
    }
  }
  if (colon >= 0 && colon === rest.length - 1) return bad('nothing follows the ":" (leave the ":" out, or add an identifier)');
  return { ok: true, name, kind: 'iqn' };
}

/** The normalised name, or a ValidationError naming the field, the value and the problem. */
export function parseIscsiName(raw: string, field = 'iSCSI name'): string {
  const r = checkIscsiName(raw);
  if (!r.ok) throw new ValidationError(`${field} ${JSON.stringify(raw)} is not a valid iSCSI name: ${r.problem}`, field);
  return r.name;
}

/** `example.com` -> `com.example`; refuses what is not a domain name. */
export function reverseAuthority(domain: string): string {
  const labels = domain.toLowerCase().replace(/\.$/, '').split('.');
  if (domain === '' || !labels.every((l) => LABEL.test(l))) {
    throw new ValidationError(`authority ${JSON.stringify(domain)} is not a domain name (e.g. example.com)`, 'authority');
  }
  return labels.reverse().join('.');
}

/** Turns free text (an image file name, a VM name) into an identifier an iqn. name can end with. */
export function toIqnIdentifier(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9.:-]+/g, '-')
    .replace(/^[-.:]+|[-.:]+$/g, '')
    .replace(/-{2,}/g, '-');
}

export interface GenerateIqnOptions {
  /** YYYY-MM the authority owned the domain; defaults to the current month. */
  date?: string;
  /** Domain name, e.g. example.com; defaults to "localdomain". */
  authority?: string;
  /** What follows the ':'; made safe with toIqnIdentifier. */
  suffix?: string;
  now?: Date;
}

/** `iqn.YYYY-MM.<reversed authority>[:<suffix>]`, validated. */
export function generateIqn(o: GenerateIqnOptions = {}): string {
  const now = o.now ?? new Date();
  const date = o.date ?? `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(date)) throw new ValidationError(`date ${JSON.stringify(date)} is not YYYY-MM`, 'date');
  const authority = reverseAuthority(o.authority ?? 'localdomain');
  const suffix = o.suffix === undefined ? '' : toIqnIdentifier(o.suffix);
  if (o.suffix !== undefined && suffix === '') {
    throw new ValidationError(`suffix ${JSON.stringify(o.suffix)} has no letters or digits to build an identifier from`, 'suffix');
  }
  return parseIscsiName(`iqn.${date}.${authority}${suffix ? `:${suffix}` : ''}`, 'generated name');
}

/** iSCSI names compare without regard to case (RFC 3722 folds them to lower case). */
export function sameIqn(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
