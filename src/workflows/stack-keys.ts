// Every key a stack file takes, in one table per section: what kind of value it holds
// (which says both how the reader checks it and what the JSON Schema says of it), where
// it may be given and what it means. A new key is one line here; the reader
// (stack-file.ts) and schema/stack.schema.json (scripts/gen-schema.ts) both follow.
import { ValidationError } from '../errors.js';
import { checkIscsiName } from '../names/iscsi-name.js';
import { checkLibvirtUri, LIBVIRT_URI } from '../names/libvirt-uri.js';
import { formatPortal, parsePortal } from '../names/portal.js';
import { parseHostUri } from '../runner/host-uri.js';
import { BACKEND_NAMES, type BackendName } from '../storage/backends.js';
import type { Pos, TreeNode } from '../util/yaml-tree.js';
import { POOL_TYPE_NAMES } from '../xml/pool.js';
import { EXPORT_NAME } from './names.js';

/** What one declared export asks for; undefined: export's own default (or the earlier run's choice). */
export interface StackExportSettings {
  /** A path on the storage host, or rbd:POOL/IMAGE (not a path: never resolved). */
  image: string;
  vm: string;
  name: string;
  storage: string;
  /** The first of `hypervisors`, for code that knows one. */
  hypervisor: string;
  /** Every hypervisor the VM may run on: `hypervisors`, or `[hypervisor]`; at least one. */
  hypervisors: string[];
  connect: string;
  /** HOST:PORT (normalised) when `portal` is given. */
  portal?: string;
  /** HOST:PORT of each path when `portals` is given (multipath). */
  portals?: string[];
  minPaths?: number;
  /** One of STACK_MODES (export's modes). */
  mode?: ExportMode;
  cdrom: boolean;
  readonly: boolean;
  chap: boolean;
  persist: boolean;
  backend?: BackendName;
  controlPort?: number;
  confDir?: string;
  hostRecordDir?: string;
  /** open-iscsi session recovery, seconds. */
  replacementTimeout?: number;
  noopOutInterval?: number;
  noopOutTimeout?: number;
  cephConf?: string;
  cephId?: string;
}
import { EXPORT_MODES, type ExportMode } from './records.js';

/** Every way an export can reach its VM: export's own modes, in their order. */
export const STACK_MODES = EXPORT_MODES;
export type StackMode = (typeof STACK_MODES)[number];

/** How many exports and pools a stack file may declare, together. */
export const MAX_STACK_ENTRIES = 20_000;

export type JsonSchema = { [key: string]: unknown };

/** Where a check failed: the node, and why in words (the caller adds file, line and entry). */
export class KeyError extends Error {
  constructor(
    readonly pos: Pos,
    message: string,
  ) {
    super(message);
  }
}

/** A kind of value: its JSON Schema, and the check that turns a node into a typed value. */
export interface Kind<T> {
  schema: JsonSchema;
  read(node: TreeNode, key: string): T;
}

const show = JSON.stringify;
const described = (n: TreeNode): string => (n.t === 'seq' ? 'a list' : n.t === 'map' ? 'a mapping' : show(n.v));

/** A scalar's value; a list or mapping where a scalar belongs is refused. */
function scalar(node: TreeNode, key: string, expected: string): string | number | boolean | null {
  if (node.t !== 'scalar') throw new KeyError(node.pos, `${key} is ${described(node)}, not ${expected}`);
  return node.v;
}

/** Runs a check of ours that throws a ValidationError, as a KeyError at the node. */
function wrapped<T>(node: TreeNode, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ValidationError) throw new KeyError(node.pos, e.message);
    throw e;
  }
}

// No control characters (a NUL or newline in a path or name only ever hides something), not blank.
const TEXT = '^(?=[\\s\\S]*\\S)[^\\u0000-\\u001f\\u007f]+$';
const TEXT_RE = new RegExp(TEXT, 'u');

function text(node: TreeNode, key: string): string {
  const v = scalar(node, key, 'a string');
  if (typeof v !== 'string' || !TEXT_RE.test(v)) throw new KeyError(node.pos, `${key} ${show(v)} is not a non-empty string${typeof v === 'string' && /[\u0000-\u001f\u007f]/u.test(v) ? ' without control characters' : ''}`);
  return v;
}

function matching(schema: JsonSchema, check: (v: string, node: TreeNode, key: string) => string): Kind<string> {
  return { schema: { type: 'string', ...schema }, read: (node, key) => check(text(node, key), node, key) };
}

const STRING: Kind<string> = { schema: { type: 'string', pattern: TEXT }, read: text };

const PATH: Kind<string> = { schema: { type: 'string', pattern: TEXT }, read: text };

const BOOLEAN: Kind<boolean> = {
  schema: { type: 'boolean' },
  read(node, key) {
    const v = scalar(node, key, 'true or false');
    if (typeof v !== 'boolean') throw new KeyError(node.pos, `${key} ${show(v)} is not true or false`);
    return v;
  },
};

function integer(min: number, max: number, what: string): Kind<number> {
  return {
    schema: { type: 'integer', minimum: min, maximum: max },
    read(node, key) {
      const v = scalar(node, key, what);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new KeyError(node.pos, `${key} ${show(v)} is not ${what}`);
      return v;
    },
  };
}

function oneOf<T extends string>(names: readonly T[]): Kind<T> {
  return {
    schema: { type: 'string', enum: [...names] },
    read(node, key) {
      const v = scalar(node, key, `one of ${names.join(', ')}`);
      if (typeof v !== 'string' || !(names as readonly string[]).includes(v)) throw new KeyError(node.pos, `${key} ${show(v)} is not one of ${names.join(', ')}`);
      return v as T;
    },
  };
}

/** A list of one kind: at least one item, no two the same (after each item's own normalising). */
function listOf(item: Kind<string>, what: string): Kind<string[]> {
  return {
    schema: { type: 'array', items: item.schema, minItems: 1, uniqueItems: true },
    read(node, key) {
      if (node.t !== 'seq') throw new KeyError(node.pos, `${key} is ${described(node)}, not a list of ${what} ([a, b] or "- " items)`);
      if (node.items.length === 0) throw new KeyError(node.pos, `${key} is an empty list; give at least one ${what.replace(/s$/, '')}`);
      const out: string[] = [];
      const seen = new Set<string>();
      node.items.forEach((n, i) => {
        const v = item.read(n, `${key}[${i + 1}]`);
        if (seen.has(v)) throw new KeyError(n.pos, `${key}[${i + 1}] ${show(v)} is given twice`);
        seen.add(v);
        out.push(v);
      });
      return out;
    },
  };
}

// Approximations for editors of what parseHostUri and parsePortal take; the reader's
// checks are the word (see the schema test for what only the reader can tell).
const PORT_RE = '(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})';
const IPV4_BYTE = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const IPV4_RE = `(?:${IPV4_BYTE}\\.){3}${IPV4_BYTE}`;
const LABEL_RE = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
// The last label is not all digits, so that 256.1.1.1 is not a host name.
const DNS_RE = `(?:${LABEL_RE}\\.)*(?![0-9]+(?::|$))${LABEL_RE}`;
const IPV6_RE = '[0-9A-Fa-f]*:[0-9A-Fa-f:.]*';

const HOST_URI: Kind<string> = matching(
  {
    pattern: `^(?:local|ssh://(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}@)?(?:\\[${IPV6_RE}\\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)(?::${PORT_RE})?/?)$`,
    description: 'local, or ssh://[user@]host[:port]',
  },
  (v, node) => wrapped(node, () => (parseHostUri(v), v)),
);

const PORTAL: Kind<string> = matching(
  { pattern: `^(?:(?:${IPV4_RE}|${DNS_RE})(?::${PORT_RE})?|\\[${IPV6_RE}\\](?::${PORT_RE})?|${IPV6_RE})$`, description: 'HOST[:PORT], [IPV6][:PORT] or a bare IPv6 address; port 3260 by default' },
  (v, node) => wrapped(node, () => formatPortal(parsePortal(v))),
);

const LIBVIRT: Kind<string> = matching({ pattern: LIBVIRT_URI.source, description: 'a libvirt URI on the hypervisor: qemu:///system, or qemu+ssh|tls|tcp://[user@]host[:port]/system without parameters that run a program' }, (v, node) => wrapped(node, () => checkLibvirtUri(v)));

const IQN_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const ISCSI_NAME: Kind<string> = matching(
  {
    pattern: `^(?:[iI][qQ][nN]\\.[0-9]{4}-(?:0[1-9]|1[0-2])\\.${IQN_LABEL}(?:\\.${IQN_LABEL})*(?::[A-Za-z0-9.:-]*[A-Za-z0-9.-][A-Za-z0-9.:-]*)?|[eE][uU][iI]\\.[0-9A-Fa-f]{16}|[nN][aA][aA]\\.(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32}))$`,
    maxLength: 223,
    description: 'an iSCSI name: iqn.YYYY-MM.reversed.domain[:id], eui. or naa.',
  },
  (v, node, key) => {
    const r = checkIscsiName(v);
    if (!r.ok) throw new KeyError(node.pos, `${key} ${show(v)} is not a valid iSCSI name: ${r.problem}`);
    return r.name;
  },
);

const EXPORT_NAME_KIND: Kind<string> = matching({ pattern: EXPORT_NAME.source, description: "1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit" }, (v, node, key) => {
  if (!EXPORT_NAME.test(v)) throw new KeyError(node.pos, `${key === 'name' ? 'export name' : key} ${show(v)} is not allowed: expected 1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit`);
  return v;
});

export const POOL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;
const POOL_NAME_KIND: Kind<string> = matching({ pattern: POOL_NAME.source }, (v, node) => {
  if (!POOL_NAME.test(v)) throw new KeyError(node.pos, `name ${show(v)} is not a pool name: expected 1 to 64 of A-Z, a-z, 0-9, '_', '.', '+' and '-'`);
  return v;
});

/** `rbd:POOL/IMAGE`: a Ceph RBD image, not a path (no snapshot: exports write to it). */
export const RBD_IMAGE = /^rbd:(?!\.{1,2}\/)[A-Za-z0-9_.-]+\/(?!\.{1,2}$)[A-Za-z0-9_.-]+$/;
export const isRbdImage = (image: string): boolean => image.startsWith('rbd:');

const IMAGE: Kind<string> = matching(
  { pattern: `^(?:rbd:(?!\\.{1,2}/)[A-Za-z0-9_.-]+/(?!\\.{1,2}$)[A-Za-z0-9_.-]+|(?!rbd:)(?=[\\s\\S]*\\S)[^\\u0000-\\u001f\\u007f]+)$`, description: 'a path on the storage host (relative: to the stack file, local storage only), or rbd:POOL/IMAGE' },
  (v, node) => {
    if (isRbdImage(v) && !RBD_IMAGE.test(v)) {
      throw new KeyError(node.pos, `image ${show(v)} is not rbd:POOL/IMAGE: pool and image names are A-Z, a-z, 0-9, '_', '.' and '-' (no @snapshot)`);
    }
    return v;
  },
);

const CEPH_ID: Kind<string> = matching({ pattern: '^[A-Za-z0-9_.-]{1,64}$', description: "the Ceph user, without 'client.'" }, (v, node) => {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(v)) throw new KeyError(node.pos, `ceph-id ${show(v)} is not a Ceph user name: expected 1 to 64 of A-Z, a-z, 0-9, '_', '.' and '-'`);
  return v;
});

const SECONDS = integer(1, 2 ** 31 - 1, 'a whole number of seconds, 1 or more');

/** Each section's keys: kind, where they may be given, and what they mean (the schema's descriptions). */
export interface KeyDef {
  kind: Kind<unknown>;
  doc: string;
  /** Only in an export, not in defaults (the image, and the name derived from it). */
  perExport?: boolean;
  required?: boolean;
  /**
   * The StackExportSettings field the value goes to as it is, when it is given (the rest
   * have defaults or meaning the reader works out: paths, hypervisors, cdrom...).
   */
  field?: keyof StackExportSettings;
  /** A path on the hosts: relative ones are the stack file's, and only when every host is this one. */
  hostPath?: 'storage' | 'any';
}

const key = <T>(kind: Kind<T>, doc: string, more: Omit<KeyDef, 'kind' | 'doc'> = {}): KeyDef => ({ kind: kind as Kind<unknown>, doc, ...more });

/** Export keys, as written in the file (the CLI's flag names). */
export const EXPORT_KEYS = {
  image: key(IMAGE, 'the image file or block device on the storage host, or rbd:POOL/IMAGE', { perExport: true, required: true }),
  name: key(EXPORT_NAME_KIND, "the export's name; default: the image name without extension", { perExport: true }),
  vm: key(STRING, 'the libvirt domain that gets the disk (here or in defaults)'),
  storage: key(HOST_URI, 'where the image is and the target runs: local or ssh://[user@]host[:port]'),
  hypervisor: key(HOST_URI, 'where libvirt runs: local or ssh://[user@]host[:port]'),
  hypervisors: key(listOf(HOST_URI, 'host URIs'), 'several hypervisors the VM may run on (instead of hypervisor)'),
  connect: key(LIBVIRT, 'the libvirt URI on the hypervisor (default qemu:///system)'),
  portal: key(PORTAL, 'the address the hypervisor dials, HOST[:PORT]', { field: 'portal' }),
  portals: key(listOf(PORTAL, 'portals'), 'several portals, one path each, for multipath (instead of portal)', { field: 'portals' }),
  'min-paths': key(integer(1, 64, 'a number of paths from 1 to 64'), 'multipath: the paths that must be up before the disk is given to the VM', { field: 'minPaths' }),
  mode: key(oneOf(STACK_MODES), 'how the VM reaches the LUN; default: the best the hypervisor can do', { field: 'mode' }),
  cdrom: key(BOOLEAN, 'a read-only CD-ROM (default: true for .iso images)'),
  readonly: key(BOOLEAN, 'served and attached read-only'),
  chap: key(BOOLEAN, 'require CHAP, with a generated secret'),
  persist: key(BOOLEAN, "also in the domain's persistent definition (default true)"),
  backend: key(oneOf(BACKEND_NAMES), 'the target software on the storage host; default: the one found there', { field: 'backend' }),
  'control-port': key(integer(1, 65535, 'a port number (1-65535)'), 'tgt: the control port of a tgtd of its own (tgtadm -C)', { field: 'controlPort' }),
  'conf-dir': key(PATH, 'tgt: where target records go (default /etc/tgt/conf.d)', { field: 'confDir', hostPath: 'storage' }),
  'host-records': key(PATH, 'export records on the storage host (default /var/lib/virt-iscsi/exports)', { field: 'hostRecordDir', hostPath: 'storage' }),
  'replacement-timeout': key(SECONDS, 'open-iscsi: seconds I/O waits for a lost session before failing (node.session.timeo.replacement_timeout)', { field: 'replacementTimeout' }),
  'noop-out-interval': key(SECONDS, 'open-iscsi: seconds between NOP-Out pings on a session (node.conn[0].timeo.noop_out_interval)', { field: 'noopOutInterval' }),
  'noop-out-timeout': key(SECONDS, 'open-iscsi: seconds a NOP-Out may go unanswered before the path counts as down (node.conn[0].timeo.noop_out_timeout)', { field: 'noopOutTimeout' }),
  'ceph-conf': key(PATH, 'rbd: the ceph.conf to read (on the storage host, and on the hypervisor in rbd mode)', { field: 'cephConf', hostPath: 'any' }),
  'ceph-id': key(CEPH_ID, "rbd: the Ceph user to act as, without 'client.'", { field: 'cephId' }),
} satisfies Record<string, KeyDef>;
export type ExportKey = keyof typeof EXPORT_KEYS;

/** Pool keys: libvirt pools over targets that exist already. */
export const POOL_KEYS = {
  name: key(POOL_NAME_KIND, 'the libvirt pool name', { required: true }),
  hypervisor: key(HOST_URI, 'where libvirt runs: local or ssh://[user@]host[:port]'),
  connect: key(LIBVIRT, 'the libvirt URI on the hypervisor (default qemu:///system)'),
  type: key(oneOf(POOL_TYPE_NAMES), 'iscsi (the host logs in with open-iscsi) or iscsi-direct (libvirt logs in itself)'),
  portal: key(PORTAL, 'HOST[:PORT] serving the target', { required: true }),
  target: key(ISCSI_NAME, "the target's iSCSI name", { required: true }),
  initiator: key(ISCSI_NAME, 'the initiator name libvirt logs in as (required for iscsi-direct)'),
  'chap-user': key(STRING, 'the CHAP user (with chap-secret-file)'),
  'chap-secret-file': key(PATH, 'the file on this machine holding the CHAP password (relative: to the stack file)'),
  autostart: key(BOOLEAN, 'start the pool with libvirtd (default true)'),
} satisfies Record<string, KeyDef>;
export type PoolKey = keyof typeof POOL_KEYS;

/** Keys of which an export (or defaults) gives at most one; the export's one replaces the defaults' one. */
export const EXCLUSIVE_KEYS: ReadonlyArray<readonly [ExportKey, ExportKey]> = [
  ['hypervisor', 'hypervisors'],
  ['portal', 'portals'],
];

/** Keys that go together in a pool: both, or neither. */
export const PAIRED_POOL_KEYS: ReadonlyArray<readonly [PoolKey, PoolKey]> = [['chap-user', 'chap-secret-file']];

export const TOP_KEYS = ['stack', 'defaults', 'exports', 'pools'] as const;

/** The JSON Schema (draft 2020-12) of stack files, from the tables above. */
export function stackSchema(): JsonSchema {
  const props = (keys: Record<string, KeyDef>, pick: (k: KeyDef) => boolean): JsonSchema =>
    Object.fromEntries(
      Object.entries(keys)
        .filter(([, d]) => pick(d))
        .map(([k, d]) => [k, { ...d.kind.schema, description: d.doc }]),
    );
  const exclusive = EXCLUSIVE_KEYS.map(([a, b]) => ({ not: { type: 'object', required: [a, b] } }));
  const required = (keys: Record<string, KeyDef>): string[] => Object.entries(keys).filter(([, d]) => d.required).map(([k]) => k);
  const exportProps = props(EXPORT_KEYS, () => true);
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'virt-iscsi stack file',
    description: 'What `virt-iscsi apply -f FILE` converges to: exports of images to VMs over iSCSI, and libvirt pools over existing targets. Generated from src/workflows/stack-keys.ts by scripts/gen-schema.ts.',
    type: 'object',
    additionalProperties: false,
    required: ['stack'],
    properties: {
      stack: { ...EXPORT_NAME_KIND.schema, description: 'the name of this stack; the records of what apply makes carry it' },
      defaults: { type: ['object', 'null'], description: 'any export key but image and name, for every export', additionalProperties: false, properties: props(EXPORT_KEYS, (d) => !d.perExport), allOf: exclusive },
      exports: { type: ['array', 'null'], maxItems: MAX_STACK_ENTRIES, items: { $ref: '#/$defs/export' } },
      pools: { type: ['array', 'null'], maxItems: MAX_STACK_ENTRIES, items: { $ref: '#/$defs/pool' } },
    },
    // vm is required in each export unless defaults has one.
    if: { not: { type: 'object', required: ['defaults'], properties: { defaults: { type: 'object', required: ['vm'] } } } },
    then: { type: 'object', properties: { exports: { type: ['array', 'null'], items: { type: 'object', required: ['vm'] } } } },
    $defs: {
      export: {
        type: 'object',
        additionalProperties: false,
        required: required(EXPORT_KEYS),
        properties: exportProps,
        allOf: [
          ...exclusive,
          // A CD-ROM is always read-only.
          { if: { type: 'object', required: ['cdrom'], properties: { cdrom: { const: true } } }, then: { not: { type: 'object', required: ['readonly'], properties: { readonly: { const: false } } } } },
          // mode rbd reads an rbd: image.
          { if: { type: 'object', required: ['mode'], properties: { mode: { const: 'rbd' } } }, then: { type: 'object', properties: { image: { type: 'string', pattern: '^rbd:' } } } },
        ],
      },
      pool: {
        type: 'object',
        additionalProperties: false,
        required: required(POOL_KEYS),
        properties: props(POOL_KEYS, () => true),
        dependentRequired: Object.fromEntries(PAIRED_POOL_KEYS.flatMap(([a, b]) => [[a, [b]], [b, [a]]])),
        if: { type: 'object', required: ['type'], properties: { type: { const: 'iscsi-direct' } } },
        then: { type: 'object', required: ['initiator'] },
      },
    },
  };
}

/** The known key nearest to a misspelt one (edit distance), when it is near enough to be meant. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const near = lower.length <= 3 ? 1 : lower.length <= 6 ? 2 : 3;
  let best: string | undefined;
  let bestD = near + 1;
  for (const k of known) {
    // "chap-secret" for chap-secret-file: a known key that starts with what was written.
    if (lower.length >= 4 && k.startsWith(lower)) return k;
    const d = editDistance(lower, k, near);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/** Optimal string alignment distance (a swap of two neighbours is one edit), or more than `cap`. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}
