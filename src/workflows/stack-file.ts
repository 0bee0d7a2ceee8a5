// Stack files (`virt-iscsi apply -f STACK.yaml`): a name, defaults, the exports to have
// and the pools to have, in YAML 1.2 (or JSON, which is YAML) and checked into typed
// specs. Every error is one line, `FILE:LINE:COL: ENTRY: why`, naming the bad value;
// unknown keys are refused (with the nearest known one), so a misspelt key never
// silently means "the default". The keys, their kinds and the JSON Schema editors use
// (schema/stack.schema.json) come from one table, stack-keys.ts.
//
//   stack: lab                       # required; the records of what apply makes carry it
//   defaults:                        # optional; any export key but image and name
//     storage: ssh://root@stor1
//     mode: direct
//   exports:
//     - image: /srv/iscsi/web1.img   # required (relative: to the stack file, local storage only)
//       vm: web1                     # required (here or in defaults)
//       name: web1-data              # default: the image name without extension
//   pools:                           # libvirt pools over existing targets
//     - name: nas-vol1
//       type: iscsi-direct
//       portal: 192.0.2.10
//       target: iqn.2004-04.com.example:nas.vol1
//       initiator: iqn.2024-01.com.example:kvm1
//       chap-user: kvm1
//       chap-secret-file: nas-vol1.secret   # on this machine; relative: to the stack file
import { dirname, isAbsolute, posix, resolve as resolvePath } from 'node:path';
import { ValidationError } from '../errors.js';
import { DEFAULT_LIBVIRT_URI } from '../hypervisor/virsh.js';
import { readBoundedFile, readSecretFile } from '../util/local-file.js';
import { at, readYamlTree, type Pos, type TreeEntry, type TreeNode } from '../util/yaml-tree.js';
import type { PoolType } from '../xml/pool.js';
import { defaultExportName, EXPORT_NAME, looksLikeIso } from './names.js';
import type { StackExportSettings } from './stack-keys.js';
export type { StackExportSettings };
import {
  EXCLUSIVE_KEYS,
  EXPORT_KEYS,
  isRbdImage,
  KeyError,
  MAX_STACK_ENTRIES,
  nearestKey,
  PAIRED_POOL_KEYS,
  POOL_KEYS,
  TOP_KEYS,
  type ExportKey,
  type KeyDef,
  type PoolKey,
  type StackMode,
} from './stack-keys.js';

export { STACK_MODES, type StackMode } from './stack-keys.js';

/** Stack files larger than this are refused before they are read. */
export const MAX_STACK_FILE_BYTES = 4 * 1024 * 1024;
/** Collections inside collections; a stack file needs 4. */
export const MAX_STACK_DEPTH = 32;


export interface StackExport {
  /** "exports[2] (web1-data)": where it is in the file, for messages. */
  entry: string;
  settings: StackExportSettings;
}

export interface StackPool {
  entry: string;
  name: string;
  hypervisor: string;
  connect: string;
  type: PoolType;
  /** HOST:PORT (normalised). */
  portal: string;
  target: string;
  initiator?: string;
  /** The CHAP user and the file (on this machine) holding its password. */
  chap?: { user: string; secretFile: string };
  autostart: boolean;
}

export interface StackSpec {
  file: string;
  name: string;
  /** Where exports go unless they say otherwise: also where apply looks for ones it made that are no longer declared. */
  defaults: { storage: string; hostRecordDir?: string };
  exports: StackExport[];
  pools: StackPool[];
}

const show = JSON.stringify;

/** A key's checked value with where it was written (defaults' values keep their own place). */
interface Given {
  value: unknown;
  pos: Pos;
}
type Values = Map<string, Given>;

class Checker {
  constructor(readonly file: string) {}

  fail(pos: Pos | undefined, where: string, why: string): never {
    throw new ValidationError(at(this.file, pos, `${where ? `${where}: ` : ''}${why}`), 'stack');
  }

  mapping(where: string, node: TreeNode, what = 'a mapping of key: value lines'): TreeEntry[] {
    if (node.t !== 'map') this.fail(node.pos, where, `expected ${what}, got ${node.t === 'seq' ? 'a list' : show(node.v)}`);
    return node.entries;
  }

  list(where: string, node: TreeNode | undefined): TreeNode[] {
    if (node === undefined || (node.t === 'scalar' && node.v === null)) return [];
    if (node.t !== 'seq') this.fail(node.pos, where, `expected a list ("- " items), got ${node.t === 'map' ? 'a mapping' : show(node.v)}`);
    return node.items;
  }

  unknown(where: string, e: TreeEntry, known: readonly string[], extra = ''): never {
    const near = nearestKey(e.key, known);
    const hint = e.key === '<<' ? '; YAML merge keys are not read: put shared settings in defaults' : near ? `; did you mean ${near}?` : `; expected one of ${known.join(', ')}`;
    return this.fail(e.keyPos, where, `key ${show(e.key)} is not known${extra}${hint}`);
  }

  /** Checks every entry of a mapping against a key table; `allowed` narrows it (defaults). */
  values(where: string, entries: readonly TreeEntry[], keys: Record<string, KeyDef>, allowed = Object.keys(keys)): Values {
    const out: Values = new Map();
    for (const e of entries) {
      if (!allowed.includes(e.key)) {
        this.unknown(where, e, allowed, Object.hasOwn(keys, e.key) ? ' here' : '');
      }
      if (e.value.t === 'scalar' && e.value.v === null) this.fail(e.value.pos, where, `${e.key} has no value; give one, or leave the key out`);
      try {
        out.set(e.key, { value: keys[e.key]!.kind.read(e.value, e.key), pos: e.value.pos });
      } catch (err) {
        if (err instanceof KeyError) this.fail(err.pos, where, err.message);
        throw err;
      }
    }
    for (const [a, b] of EXCLUSIVE_KEYS) {
      if (out.has(a) && out.has(b)) this.fail(out.get(b)!.pos, where, `${a} and ${b} exclude each other; give one`);
    }
    return out;
  }
}

/** An export's own values over the defaults'; an export's `portal` also drops the defaults' `portals` (and so on). */
function merged(defaults: Values, own: Values): Values {
  const out = new Map(defaults);
  for (const [a, b] of EXCLUSIVE_KEYS) {
    if (own.has(a) || own.has(b)) {
      out.delete(a);
      out.delete(b);
    }
  }
  for (const [k, v] of own) out.set(k, v);
  return out;
}

const get = <T>(v: Values, k: ExportKey | PoolKey): T | undefined => v.get(k)?.value as T | undefined;

function exportEntry(c: Checker, dir: string, index: number, node: TreeNode, defaults: Values): StackExport {
  const at = `exports[${index + 1}]`;
  const entries = c.mapping(at, node);
  // The entry's name for messages, before its values are checked.
  const raw = (k: string): unknown => {
    const n = entries.find((e) => e.key === k)?.value;
    return n?.t === 'scalar' ? n.v : undefined;
  };
  const rawName = raw('name');
  const rawImage = raw('image');
  const named = typeof rawName === 'string' ? rawName : typeof rawImage === 'string' ? defaultExportName(rawImage) : undefined;
  const where = named ? `${at} (${named})` : at;
  const own = c.values(where, entries, EXPORT_KEYS);
  const v = merged(defaults, own);
  const pos = (k: ExportKey): Pos => v.get(k)?.pos ?? node.pos;
  const image0 = get<string>(v, 'image');
  if (image0 === undefined) c.fail(node.pos, where, 'has no image: give the image file (or block device, or rbd:POOL/IMAGE) on the storage host');
  const vm = get<string>(v, 'vm');
  if (vm === undefined) c.fail(node.pos, where, 'has no vm: give the domain here or in defaults');
  const storage = get<string>(v, 'storage') ?? 'local';
  const hypervisors = get<string[]>(v, 'hypervisors') ?? [get<string>(v, 'hypervisor') ?? 'local'];
  const rbd = isRbdImage(image0);
  let image = image0;
  if (!rbd && !posix.isAbsolute(image)) {
    if (storage !== 'local') c.fail(pos('image'), where, `image ${show(image)} is a relative path; give its absolute path on ${storage}`);
    image = resolvePath(dir, image);
  }
  const name = get<string>(v, 'name') ?? defaultExportName(image);
  if (!EXPORT_NAME.test(name)) {
    c.fail(pos('image'), where, `export name ${show(name)} (from the image's file name) is not allowed: expected 1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit; give name`);
  }
  const cdrom = get<boolean>(v, 'cdrom') ?? looksLikeIso(image);
  if (cdrom && get<boolean>(v, 'readonly') === false) c.fail(pos('readonly'), where, 'readonly false with a CD-ROM: a CD-ROM is always read-only');
  const mode = get<StackMode>(v, 'mode');
  if (mode === 'rbd' && !rbd) c.fail(pos('mode'), where, `mode rbd needs an image rbd:POOL/IMAGE, not ${show(image0)}`);
  for (const k of ['ceph-conf', 'ceph-id'] as const) {
    if (own.has(k) && !rbd) c.fail(pos(k), where, `${k} is for an image rbd:POOL/IMAGE, not ${show(image0)}`);
  }
  const portals = get<string[]>(v, 'portals');
  const minPaths = get<number>(v, 'min-paths');
  if (minPaths !== undefined && minPaths > (portals?.length ?? 1)) {
    c.fail(pos('min-paths'), where, `min-paths ${minPaths} is more than the ${portals?.length ?? 1} portal${(portals?.length ?? 1) === 1 ? '' : 's'} given; list them in portals`);
  }
  /** A path on the hosts: relative ones are the stack file's, when every host is this one. */
  const hostPath = (k: ExportKey, hosts: string): string | undefined => {
    const p = get<string>(v, k);
    if (p === undefined || isAbsolute(p)) return p;
    if (hosts !== 'local') c.fail(pos(k), where, `${k} ${show(p)} is a relative path; give an absolute path on ${hosts}`);
    return resolvePath(dir, p);
  };
  const settings: StackExportSettings = {
    image,
    vm,
    name,
    storage,
    hypervisor: hypervisors[0]!,
    hypervisors,
    connect: get<string>(v, 'connect') ?? DEFAULT_LIBVIRT_URI,
    cdrom,
    readonly: cdrom || (get<boolean>(v, 'readonly') ?? false),
    chap: get<boolean>(v, 'chap') ?? false,
    persist: get<boolean>(v, 'persist') ?? true,
  };
  // Keys that go to a field as they are (paths made absolute first): from the table.
  const remote = [storage, ...hypervisors].find((h) => h !== 'local') ?? 'local';
  for (const [k, d] of Object.entries(EXPORT_KEYS) as Array<[ExportKey, KeyDef]>) {
    if (!d.field || !v.has(k)) continue;
    const value = d.hostPath ? hostPath(k, d.hostPath === 'storage' ? storage : remote) : v.get(k)!.value;
    (settings as unknown as Record<string, unknown>)[d.field] = value;
  }
  return { entry: `${at} (${name})`, settings };
}

function poolEntry(c: Checker, dir: string, index: number, node: TreeNode): StackPool {
  const at = `pools[${index + 1}]`;
  const entries = c.mapping(at, node);
  const rawName = entries.find((e) => e.key === 'name' && e.value.t === 'scalar')?.value;
  const where = rawName?.t === 'scalar' && typeof rawName.v === 'string' ? `${at} (${rawName.v})` : at;
  const v = c.values(where, entries, POOL_KEYS);
  for (const [k, d] of Object.entries(POOL_KEYS)) if (d.required && !v.has(k)) c.fail(node.pos, where, `has no ${k}`);
  for (const [a, b] of PAIRED_POOL_KEYS) {
    if (v.has(a) !== v.has(b)) c.fail(v.get(a)?.pos ?? v.get(b)?.pos, where, `${a} and ${b} go together: give both, or neither`);
  }
  const type = get<PoolType>(v, 'type') ?? 'iscsi';
  const pool: StackPool = {
    entry: where,
    name: get<string>(v, 'name')!,
    hypervisor: get<string>(v, 'hypervisor') ?? 'local',
    connect: get<string>(v, 'connect') ?? DEFAULT_LIBVIRT_URI,
    type,
    portal: get<string>(v, 'portal')!,
    target: get<string>(v, 'target')!,
    autostart: get<boolean>(v, 'autostart') ?? true,
  };
  const initiator = get<string>(v, 'initiator');
  if (initiator !== undefined) pool.initiator = initiator;
  if (type === 'iscsi-direct' && initiator === undefined) c.fail(v.get('type')!.pos, where, 'type iscsi-direct needs an initiator: libvirt logs in with an initiator name of its own');
  const user = get<string>(v, 'chap-user');
  const secretFile = get<string>(v, 'chap-secret-file');
  if (user !== undefined && secretFile !== undefined) pool.chap = { user, secretFile: resolvePath(dir, secretFile) };
  return pool;
}

/** Reads and checks a stack document; `file` names it in errors and anchors relative paths. */
export function parseStack(text: string, file: string): StackSpec {
  const c: Checker = new Checker(file);
  const root = readYamlTree(text, file, { maxDepth: MAX_STACK_DEPTH });
  const top = new Map<string, TreeEntry>();
  for (const e of c.mapping('', root, 'a mapping with stack, defaults, exports and pools')) {
    if (!(TOP_KEYS as readonly string[]).includes(e.key)) c.unknown('', e, TOP_KEYS);
    top.set(e.key, e);
  }
  const nameNode = top.get('stack')?.value;
  const name = nameNode?.t === 'scalar' && typeof nameNode.v === 'string' && EXPORT_NAME.test(nameNode.v) ? nameNode.v : undefined;
  if (name === undefined) {
    const shown = nameNode === undefined ? 'null' : nameNode.t === 'scalar' ? show(nameNode.v) : `(a ${nameNode.t === 'seq' ? 'list' : 'mapping'})`;
    c.fail(nameNode?.pos ?? root.pos, '', `stack ${shown} is not a stack name: expected 1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit`);
  }
  const defaultsNode = top.get('defaults')?.value;
  const defaultKeys = Object.keys(EXPORT_KEYS).filter((k) => !EXPORT_KEYS[k as ExportKey].perExport);
  const defaults: Values = defaultsNode === undefined || (defaultsNode.t === 'scalar' && defaultsNode.v === null) ? new Map() : c.values('defaults', c.mapping('defaults', defaultsNode), EXPORT_KEYS, defaultKeys);
  const exportNodes = c.list('exports', top.get('exports')?.value);
  const poolNodes = c.list('pools', top.get('pools')?.value);
  if (exportNodes.length + poolNodes.length > MAX_STACK_ENTRIES) {
    c.fail(top.get(exportNodes.length ? 'exports' : 'pools')!.keyPos, '', `${exportNodes.length} exports and ${poolNodes.length} pools: a stack file declares at most ${MAX_STACK_ENTRIES}; split it`);
  }
  const dir = dirname(resolvePath(file));
  const exports = exportNodes.map((n, i) => exportEntry(c, dir, i, n, defaults));
  const pools = poolNodes.map((n, i) => poolEntry(c, dir, i, n));

  // Duplicates, in one pass each: a map from what must be unique to the first entry that has it.
  const names = new Map<string, string>();
  const images = new Map<string, string>();
  exports.forEach((x, i) => {
    const s = x.settings;
    const p = exportNodes[i]!.pos;
    const before = names.get(s.name);
    if (before) c.fail(p, x.entry, `export name ${show(s.name)} is declared twice (also ${before})`);
    names.set(s.name, x.entry);
    const imageKey = `${isRbdImage(s.image) ? '' : s.storage}\0${s.image}`;
    const also = images.get(imageKey);
    if (also) c.fail(p, x.entry, `image ${show(s.image)}${isRbdImage(s.image) ? '' : ` on ${s.storage}`} is already exported by ${also}`);
    images.set(imageKey, x.entry);
  });
  const pooled = new Map<string, string>();
  pools.forEach((p, i) => {
    const key = `${p.hypervisor}\0${p.connect}\0${p.name}`;
    const before = pooled.get(key);
    if (before) c.fail(poolNodes[i]!.pos, p.entry, `pool ${show(p.name)} on ${p.hypervisor} is declared twice (also ${before})`);
    pooled.set(key, p.entry);
  });
  const storage = get<string>(defaults, 'storage') ?? 'local';
  const records = get<string>(defaults, 'host-records');
  if (records !== undefined && !isAbsolute(records) && storage !== 'local') c.fail(defaults.get('host-records')!.pos, 'defaults', `host-records ${show(records)} is a relative path; give an absolute path on ${storage}`);
  const hostRecordDir = records === undefined ? undefined : resolvePath(dir, records);
  return { file, name, defaults: { storage, ...(hostRecordDir ? { hostRecordDir } : {}) }, exports, pools };
}

/** Reads a stack file from this machine (a regular file of at most 4 MiB) and checks it. */
export async function readStackFile(file: string): Promise<StackSpec> {
  return parseStack(await readBoundedFile(file, MAX_STACK_FILE_BYTES, 'stack file'), file);
}

/** A pool's CHAP secret, read from its chap-secret-file as every secret file is read (regular, at most 4 KiB). */
export async function readPoolSecret(spec: StackSpec, pool: StackPool): Promise<string | undefined> {
  if (!pool.chap) return undefined;
  try {
    return await readSecretFile('chap-secret-file', pool.chap.secretFile);
  } catch (e) {
    if (e instanceof ValidationError) throw new ValidationError(`${spec.file}: ${pool.entry}: ${e.message}`, 'stack');
    throw e;
  }
}
