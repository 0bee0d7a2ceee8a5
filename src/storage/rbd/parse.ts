// Parsers for the rbd CLI's JSON output (`--format json`), each under a sample of what
// the tool printed (rbd 16.2.15 pacific, Debian 12). Fields we do not use are ignored;
// missing or mistyped fields we use are a one-line ValidationError, never a silent 0.
import { ValidationError } from '../../errors.js';

/** What `rbd info` says of an image, in the units we use. */
export interface RbdImageInfo {
  name: string;
  /** The image's internal id (rbd_data.ID objects). */
  id: string;
  sizeBytes: number;
  objectSizeBytes: number;
  /** RBD image format: 2 for every image made since Ceph 0.94 (format 1 cannot be cloned or locked). */
  format: number;
  features: string[];
}

/** A client that has the image open (QEMU, tgtd, `rbd map`...). */
export interface RbdWatcher {
  /** "IP:PORT/NONCE" of the client's messenger. */
  address: string;
  /** The client's global id, as in `client.4125`. */
  client: number;
}

function parseJson(what: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const first = text.trim().split('\n')[0] ?? '';
    throw new ValidationError(`${what} printed ${JSON.stringify(first.slice(0, 80))}, not JSON`, 'rbd');
  }
}

function field<T>(what: string, o: Record<string, unknown>, key: string, type: 'string' | 'number' | 'array'): T {
  const v = o[key];
  const ok = type === 'array' ? Array.isArray(v) : typeof v === type && (type !== 'number' || Number.isSafeInteger(v));
  if (!ok) throw new ValidationError(`${what}: field "${key}" is ${JSON.stringify(v) ?? 'missing'}, not a ${type}`, 'rbd');
  return v as T;
}

function object(what: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ValidationError(`${what} is not a JSON object`, 'rbd');
  return v as Record<string, unknown>;
}

/**
 * `rbd info --format json POOL/IMAGE`:
 *   {"name":"t1","id":"101ba2a9f870","size":67108864,"objects":16,"order":22,
 *    "object_size":4194304,"snapshot_count":0,"block_name_prefix":"rbd_data.101ba2a9f870",
 *    "format":2,"features":["layering","exclusive-lock","object-map","fast-diff","deep-flatten"],
 *    "op_features":[],"flags":[],"create_timestamp":"Wed Dec  2 05:52:31 2026",
 *    "access_timestamp":"Wed Dec  2 05:52:31 2026","modify_timestamp":"Wed Dec  2 05:52:31 2026"}
 */
export function parseRbdInfo(text: string): RbdImageInfo {
  const what = 'rbd info';
  const o = object(what, parseJson(what, text));
  const features = field<unknown[]>(what, o, 'features', 'array');
  if (!features.every((f) => typeof f === 'string')) throw new ValidationError(`${what}: "features" holds a value that is not a string`, 'rbd');
  return {
    name: field<string>(what, o, 'name', 'string'),
    id: field<string>(what, o, 'id', 'string'),
    sizeBytes: field<number>(what, o, 'size', 'number'),
    objectSizeBytes: field<number>(what, o, 'object_size', 'number'),
    format: field<number>(what, o, 'format', 'number'),
    features: features as string[],
  };
}

/**
 * `rbd status --format json POOL/IMAGE`, with tgtd holding the image open:
 *   {"watchers":[{"address":"127.0.0.1:0/4124354882","client":4125,"cookie":140707088438272}]}
 * and `{"watchers":[]}` when nobody has it open.
 */
export function parseRbdStatus(text: string): RbdWatcher[] {
  const what = 'rbd status';
  const o = object(what, parseJson(what, text));
  return field<unknown[]>(what, o, 'watchers', 'array').map((w) => {
    const e = object(`${what} watcher`, w);
    return { address: field<string>(what, e, 'address', 'string'), client: field<number>(what, e, 'client', 'number') };
  });
}

/** `rbd ls --format json POOL`: `["sz","t1"]`, or `[]` for an empty pool. */
export function parseRbdLs(text: string): string[] {
  const what = 'rbd ls';
  const v = parseJson(what, text);
  if (!Array.isArray(v) || !v.every((n) => typeof n === 'string')) throw new ValidationError(`${what} did not print a JSON list of names`, 'rbd');
  return v as string[];
}

/**
 * `ceph auth get-key client.ID` prints the key alone, base64 without a newline:
 *   AQAvsg9r9fjgFRAAp5XDZ8HC2u6dfaCJKGbHSg==
 * The key is never echoed back in an error.
 */
export function parseCephKey(text: string, user: string): string {
  const key = text.trim();
  if (!/^[A-Za-z0-9+/]{20,}={0,2}$/.test(key)) throw new ValidationError(`ceph auth get-key ${user} printed something that is not a base64 key`, 'ceph');
  return key;
}

export interface CephMonitor {
  host: string;
  port: number;
}

/**
 * `ceph mon dump --format json` (Ceph 16.2.15), abridged:
 *   {"epoch":1,"fsid":"337b...","mons":[{"rank":0,"name":"a","public_addrs":{"addrvec":[
 *     {"type":"v2","addr":"127.0.0.1:24005","nonce":0},{"type":"v1","addr":"127.0.0.1:27575","nonce":0}]},
 *     "addr":"127.0.0.1:27575/0",...}],"quorum":[0]}
 *   dumped monmap epoch 1          (on stderr)
 * Each monitor's v1 address when it has one (what QEMU's rbd driver and libvirt's <host>
 * take most widely), else its v2 one. IPv6 addresses come bracketed: "[::1]:6789".
 */
export function parseMonDump(text: string): CephMonitor[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ValidationError('ceph mon dump printed something that is not JSON', 'ceph');
  }
  const mons = (doc as { mons?: unknown }).mons;
  if (!Array.isArray(mons)) throw new ValidationError('ceph mon dump lists no monitors', 'ceph');
  const out: CephMonitor[] = [];
  for (const m of mons) {
    const vec = ((m as { public_addrs?: { addrvec?: unknown } }).public_addrs?.addrvec ?? []) as Array<{ type?: unknown; addr?: unknown }>;
    const pick = (Array.isArray(vec) ? vec : []).find((a) => a.type === 'v1') ?? (Array.isArray(vec) ? vec : []).find((a) => a.type === 'v2');
    const addr = typeof pick?.addr === 'string' ? pick.addr : undefined;
    const hp = addr === undefined ? null : /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+|[A-Za-z0-9.-]+)):(\d{1,5})$/.exec(addr);
    if (!hp) throw new ValidationError(`ceph mon dump gives monitor ${JSON.stringify((m as { name?: unknown }).name)} no address we can read (${JSON.stringify(addr)})`, 'ceph');
    out.push({ host: (hp[1] ?? hp[2])!, port: Number(hp[3]) });
  }
  if (out.length === 0) throw new ValidationError('ceph mon dump lists no monitors', 'ceph');
  return out;
}
