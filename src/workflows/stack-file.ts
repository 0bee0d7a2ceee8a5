// Stack files (`virt-iscsi apply -f STACK.yaml`): a name, defaults, the exports to have
// and the pools to have, read with the strict YAML subset (or JSON) and checked into
// typed specs. Every error is one line naming the file, the entry and the bad value;
// unknown keys are refused, so a misspelt key never silently means "the default".
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
//       hypervisor: local
//       type: iscsi-direct
//       portal: 192.0.2.10
//       target: iqn.2004-04.com.example:nas.vol1
//       initiator: iqn.2024-01.com.example:kvm1
//       chap-user: kvm1
//       chap-secret-file: nas-vol1.secret   # on this machine; relative: to the stack file
//       autostart: true
import { dirname, isAbsolute, posix, resolve as resolvePath } from 'node:path';
import { ValidationError } from '../errors.js';
import { DEFAULT_LIBVIRT_URI } from '../hypervisor/virsh.js';
import { parseIscsiName } from '../names/iscsi-name.js';
import { formatPortal, parsePortal } from '../names/portal.js';
import { parseHostUri } from '../runner/host-uri.js';
import { BACKEND_NAMES, type BackendName } from '../storage/backends.js';
import { parseYamlSubset, type YamlValue } from '../util/yaml-subset.js';
import { POOL_TYPE_NAMES, type PoolType } from '../xml/pool.js';
import { checkExportName, defaultExportName, EXPORT_NAME, looksLikeIso } from './names.js';
import { EXPORT_MODES, type ExportMode } from './records.js';

/** What one declared export asks for; undefined: export's own default (or the earlier run's choice). */
export interface StackExportSettings {
  image: string;
  vm: string;
  name: string;
  storage: string;
  hypervisor: string;
  connect: string;
  portal?: string;
  mode?: ExportMode;
  cdrom: boolean;
  readonly: boolean;
  chap: boolean;
  persist: boolean;
  backend?: BackendName;
  controlPort?: number;
  confDir?: string;
  hostRecordDir?: string;
}

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
  /** HOST[:PORT] as given (checked). */
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

type Kind = 'string' | 'boolean' | 'uri' | 'mode' | 'backend' | 'port' | 'portal' | 'path';

/** Export keys as written in the file (the CLI's flag names), with what each holds. */
const EXPORT_KEYS: Record<string, Kind> = {
  image: 'path',
  name: 'string',
  vm: 'string',
  storage: 'uri',
  hypervisor: 'uri',
  connect: 'string',
  portal: 'portal',
  mode: 'mode',
  cdrom: 'boolean',
  readonly: 'boolean',
  chap: 'boolean',
  persist: 'boolean',
  backend: 'backend',
  'control-port': 'port',
  'conf-dir': 'path',
  'host-records': 'path',
};
const PER_EXPORT_ONLY = ['image', 'name'];

const POOL_KEYS: Record<string, Kind> = {
  name: 'string',
  hypervisor: 'uri',
  connect: 'string',
  type: 'string',
  portal: 'portal',
  target: 'string',
  initiator: 'string',
  'chap-user': 'string',
  'chap-secret-file': 'path',
  autostart: 'boolean',
};

const TOP_KEYS = ['stack', 'defaults', 'exports', 'pools'];

const show = JSON.stringify;
type Entries = { [key: string]: YamlValue };

class Checker {
  constructor(readonly file: string) {}

  fail(where: string, why: string): never {
    throw new ValidationError(`${this.file}: ${where ? `${where}: ` : ''}${why}`, 'stack');
  }

  /** Runs a check that throws our own one-line errors, prefixed with file and entry. */
  wrap<T>(where: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ValidationError) this.fail(where, e.message);
      throw e;
    }
  }

  map(where: string, v: YamlValue | undefined, allowed?: readonly string[]): Entries {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(where, `expected a mapping of key: value lines, got ${show(v)}`);
    if (allowed) this.known(where, v, allowed);
    return v;
  }

  known(where: string, m: Entries, allowed: readonly string[]): void {
    for (const key of Object.keys(m)) {
      if (!allowed.includes(key)) this.fail(where, `key ${show(key)} is not known; expected one of ${allowed.join(', ')}`);
    }
  }

  list(where: string, v: YamlValue | undefined): YamlValue[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(where, `expected a list ("- " items), got ${show(v)}`);
    return v;
  }

  /** A value of one kind; paths relative to the stack file's directory. */
  value(where: string, key: string, kind: Kind, v: YamlValue): string | number | boolean {
    const at = `${key} ${show(v)}`;
    switch (kind) {
      case 'boolean':
        if (typeof v !== 'boolean') this.fail(where, `${at} is not true or false`);
        return v;
      case 'port':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) this.fail(where, `${at} is not a port number (1-65535)`);
        return v;
      default:
        break;
    }
    if (typeof v !== 'string' || v.trim() === '') this.fail(where, `${at} is not a non-empty string`);
    switch (kind) {
      case 'uri':
        this.wrap(where, () => parseHostUri(v));
        return v;
      case 'mode':
        if (!(EXPORT_MODES as readonly string[]).includes(v)) this.fail(where, `${at} is not one of ${EXPORT_MODES.join(', ')}`);
        return v;
      case 'backend':
        if (!(BACKEND_NAMES as readonly string[]).includes(v)) this.fail(where, `${at} is not one of ${BACKEND_NAMES.join(', ')}`);
        return v;
      case 'portal':
        return formatPortal(this.wrap(where, () => parsePortal(v)));
      case 'path':
        return v;
      default:
        return v;
    }
  }

  values(where: string, m: Entries, keys: Record<string, Kind>): Record<string, string | number | boolean> {
    const out: Record<string, string | number | boolean> = {};
    for (const [key, v] of Object.entries(m)) {
      if (v === null) continue; // "key:" with nothing: as if not given
      out[key] = this.value(where, key, keys[key]!, v);
    }
    return out;
  }
}

const str = (v: string | number | boolean | undefined): string | undefined => (v === undefined ? undefined : String(v));
const bool = (v: string | number | boolean | undefined): boolean | undefined => (v === undefined ? undefined : v === true);

function exportEntry(c: Checker, dir: string, index: number, raw: YamlValue, defaults: Record<string, string | number | boolean>): StackExport {
  const at = `exports[${index + 1}]`;
  const m = c.map(at, raw);
  const named = typeof m.name === 'string' ? m.name : typeof m.image === 'string' ? defaultExportName(m.image) : undefined;
  const entry = named ? `${at} (${named})` : at;
  c.known(entry, m, Object.keys(EXPORT_KEYS));
  const v = { ...defaults, ...c.values(entry, m, EXPORT_KEYS) };
  if (v.image === undefined) c.fail(entry, 'has no image: give the image file (or block device) on the storage host');
  if (v.vm === undefined) c.fail(entry, 'has no vm: give the domain here or in defaults');
  const storage = str(v.storage) ?? 'local';
  let image = String(v.image);
  if (!posix.isAbsolute(image)) {
    if (storage !== 'local') c.fail(entry, `image ${show(image)} is a relative path; give its absolute path on ${storage}`);
    image = resolvePath(dir, image);
  }
  const name = c.wrap(entry, () => checkExportName(str(v.name) ?? defaultExportName(image)));
  const cdrom = bool(v.cdrom) ?? looksLikeIso(image);
  if (cdrom && v.readonly === false) c.fail(entry, 'readonly false with a CD-ROM: a CD-ROM is always read-only');
  const local = (p: string | number | boolean | undefined): string | undefined => {
    if (p === undefined) return undefined;
    const s = String(p);
    if (isAbsolute(s)) return s;
    if (storage !== 'local') c.fail(entry, `${show(s)} is a relative path; give an absolute path on ${storage}`);
    return resolvePath(dir, s);
  };
  const settings: StackExportSettings = {
    image,
    vm: String(v.vm),
    name,
    storage,
    hypervisor: str(v.hypervisor) ?? 'local',
    connect: str(v.connect) ?? DEFAULT_LIBVIRT_URI,
    cdrom,
    readonly: cdrom || (bool(v.readonly) ?? false),
    chap: bool(v.chap) ?? false,
    persist: bool(v.persist) ?? true,
  };
  if (v.portal !== undefined) settings.portal = String(v.portal);
  if (v.mode !== undefined) settings.mode = v.mode as ExportMode;
  if (v.backend !== undefined) settings.backend = v.backend as BackendName;
  if (v['control-port'] !== undefined) settings.controlPort = Number(v['control-port']);
  if (v['conf-dir'] !== undefined) settings.confDir = local(v['conf-dir']);
  if (v['host-records'] !== undefined) settings.hostRecordDir = local(v['host-records']);
  return { entry: `${at} (${name})`, settings };
}

function poolEntry(c: Checker, dir: string, index: number, raw: YamlValue): StackPool {
  const at = `pools[${index + 1}]`;
  const m = c.map(at, raw);
  const entry = typeof m.name === 'string' ? `${at} (${m.name})` : at;
  c.known(entry, m, Object.keys(POOL_KEYS));
  const v = c.values(entry, m, POOL_KEYS);
  for (const key of ['name', 'portal', 'target']) if (v[key] === undefined) c.fail(entry, `has no ${key}`);
  const type = str(v.type) ?? 'iscsi';
  if (!(POOL_TYPE_NAMES as readonly string[]).includes(type)) c.fail(entry, `type ${show(type)} is not one of ${POOL_TYPE_NAMES.join(', ')}`);
  const name = String(v.name);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/.test(name)) c.fail(entry, `name ${show(name)} is not a pool name: expected 1 to 64 of A-Z, a-z, 0-9, '_', '.', '+' and '-'`);
  const pool: StackPool = {
    entry,
    name,
    hypervisor: str(v.hypervisor) ?? 'local',
    connect: str(v.connect) ?? DEFAULT_LIBVIRT_URI,
    type: type as PoolType,
    portal: String(v.portal),
    target: c.wrap(entry, () => parseIscsiName(String(v.target), 'target')),
    autostart: bool(v.autostart) ?? true,
  };
  if (v.initiator !== undefined) pool.initiator = c.wrap(entry, () => parseIscsiName(String(v.initiator), 'initiator'));
  if (type === 'iscsi-direct' && pool.initiator === undefined) c.fail(entry, 'type iscsi-direct needs an initiator: libvirt logs in with an initiator name of its own');
  const user = str(v['chap-user']);
  const secretFile = str(v['chap-secret-file']);
  if ((user === undefined) !== (secretFile === undefined)) c.fail(entry, 'chap-user and chap-secret-file go together: give both, or neither');
  if (user !== undefined && secretFile !== undefined) pool.chap = { user, secretFile: resolvePath(dir, secretFile) };
  return pool;
}

/** Reads and checks a stack document; `file` names it in errors and anchors relative paths. */
export function parseStack(text: string, file: string): StackSpec {
  const c: Checker = new Checker(file);
  const top = c.map('', parseYamlSubset(text, file), TOP_KEYS);
  const name = top.stack;
  if (typeof name !== 'string' || !EXPORT_NAME.test(name)) {
    c.fail('', `stack ${show(name ?? null)} is not a stack name: expected 1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit`);
  }
  const defaultKeys = Object.keys(EXPORT_KEYS).filter((k) => !PER_EXPORT_ONLY.includes(k));
  const defaults = top.defaults === undefined || top.defaults === null ? {} : c.values('defaults', c.map('defaults', top.defaults, defaultKeys), EXPORT_KEYS);
  const dir = dirname(resolvePath(file));
  const exports = c.list('exports', top.exports).map((raw, i) => exportEntry(c, dir, i, raw, defaults));
  const pools = c.list('pools', top.pools).map((raw, i) => poolEntry(c, dir, i, raw));

  const seen = new Map<string, string>();
  for (const x of exports) {
    const s = x.settings;
    const before = seen.get(s.name);
    if (before) c.fail(x.entry, `export name ${show(s.name)} is declared twice (also ${before})`);
    seen.set(s.name, x.entry);
    const sameImage = exports.find((y) => y !== x && y.settings.image === s.image && y.settings.storage === s.storage);
    if (sameImage && exports.indexOf(sameImage) < exports.indexOf(x)) c.fail(x.entry, `image ${show(s.image)} on ${s.storage} is already exported by ${sameImage.entry}`);
  }
  const pooled = new Map<string, string>();
  for (const p of pools) {
    const key = `${p.hypervisor} ${p.connect} ${p.name}`;
    const before = pooled.get(key);
    if (before) c.fail(p.entry, `pool ${show(p.name)} on ${p.hypervisor} is declared twice (also ${before})`);
    pooled.set(key, p.entry);
  }
  const hostRecordDir = defaults['host-records'] === undefined ? undefined : resolvePath(dir, String(defaults['host-records']));
  return { file, name, defaults: { storage: str(defaults.storage) ?? 'local', ...(hostRecordDir ? { hostRecordDir } : {}) }, exports, pools };
}
