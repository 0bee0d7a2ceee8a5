// libvirt storage pools of type iscsi (the host's open-iscsi logs in; volumes are
// /dev/disk/by-path devices) and iscsi-direct (libiscsi inside libvirt/QEMU; needs an
// initiator IQN of its own). `virsh pool-dumpxml` of a running iscsi-direct pool:
//
//   <pool type='iscsi-direct'>
//     <name>vit-cap-direct</name>
//     <uuid>1f5b60c3-6139-4648-b774-0da0202015c4</uuid>
//     <capacity unit='bytes'>67108352</capacity>
//     <allocation unit='bytes'>67108352</allocation>
//     <available unit='bytes'>0</available>
//     <source>
//       <host name='127.0.0.1' port='48308'/>
//       <device path='iqn.2024-01.dev.virt-iscsi:capture'/>
//       <initiator>
//         <iqn name='iqn.2024-01.dev.virt-iscsi:capture-initiator'/>
//       </initiator>
//     </source>
//   </pool>
//
// An iscsi pool adds `<auth type='chap' username='U'><secret usage='NAME'/></auth>` to the
// source when CHAP is on, and `<target><path>/dev/disk/by-path</path></target>`.
import { ValidationError } from '../errors.js';
import { attr, buildXml, child, children, parseXml, text, type XmlNode } from './codec.js';
import { readSecretRef, secretRefAttrs, validateSecretRef, type SecretRef } from './secret.js';
import {
  compact,
  parseDecimal,
  requireChapUser,
  requireHost,
  requireInt,
  requireIscsiName,
  requireObjectName,
  requireOneOf,
  requirePath,
  requirePattern,
  requirePort,
  requireText,
  requireUuid,
  scaledToBytes,
} from './values.js';
import { parseRbdPoolName } from '../storage/rbd/ref.js';

export type PoolType = 'iscsi' | 'iscsi-direct';
export const POOL_TYPE_NAMES: readonly PoolType[] = ['iscsi', 'iscsi-direct'];

export interface PoolHost {
  name: string;
  port?: number;
}

/** CHAP credentials: the user name, and the libvirt secret holding the password. */
export interface PoolAuth {
  username: string;
  secret: SecretRef;
}

interface PoolCommon {
  name: string;
  uuid?: string;
  hosts: PoolHost[];
  /** The target IQN (`<device path=...>`). */
  device: string;
  auth?: PoolAuth;
  /** Sizes in bytes as pool-dumpxml reports them; libvirt ignores them on define. */
  capacity?: number;
  allocation?: number;
  available?: number;
}

export interface IscsiPoolDef extends PoolCommon {
  type: 'iscsi';
  /** Log in with this initiator IQN (libvirt makes an iface for it) instead of the host's. */
  initiator?: string;
  targetPath: string;
}

export interface IscsiDirectPoolDef extends PoolCommon {
  type: 'iscsi-direct';
  initiator: string;
}

export type PoolDef = IscsiPoolDef | IscsiDirectPoolDef;

/** A pool as read or given, before defaults and checks: anything may be missing. */
export interface PoolInput {
  type: PoolType;
  name?: string;
  uuid?: string;
  hosts?: PoolHost[];
  device?: string;
  initiator?: string;
  auth?: PoolAuth;
  targetPath?: string;
  capacity?: number;
  allocation?: number;
  available?: number;
}

export const DEFAULT_POOL_TARGET_PATH = '/dev/disk/by-path';

/**
 * What each pool type needs, in one place. Both backends take exactly one host
 * (libvirt: "Expected exactly 1 host for the storage pool"); iscsi-direct has no
 * target path and cannot work without its own initiator IQN.
 */
export const POOL_TYPES: Record<PoolType, { initiator: 'required' | 'optional'; targetPath?: string }> = {
  iscsi: { initiator: 'optional', targetPath: DEFAULT_POOL_TARGET_PATH },
  'iscsi-direct': { initiator: 'required' },
};

export function withPoolDefaults(p: PoolInput): PoolInput {
  const rule = POOL_TYPES[p.type];
  return rule.targetPath === undefined ? p : { ...p, targetPath: p.targetPath ?? rule.targetPath };
}

export function validatePool(p: PoolInput): PoolDef {
  const type = requireOneOf('pool type', p.type, POOL_TYPE_NAMES);
  const rule = POOL_TYPES[type];
  const hosts = p.hosts ?? [];
  if (hosts.length !== 1) throw new ValidationError(`a pool of type ${type} takes exactly one source host; got ${hosts.length}`, 'host');
  const common: PoolCommon = compact({
    name: requireObjectName('pool name', p.name),
    uuid: p.uuid === undefined ? undefined : requireUuid('pool uuid', p.uuid),
    hosts: hosts.map((h) => compact({ name: requireHost('pool host', h.name), port: h.port === undefined ? undefined : requirePort('pool host port', h.port) })),
    device: requireIscsiName('pool target', p.device),
    auth: p.auth && { username: requireChapUser('pool CHAP user', p.auth.username), secret: validateSecretRef('pool CHAP secret', p.auth.secret) },
    capacity: size('pool capacity', p.capacity),
    allocation: size('pool allocation', p.allocation),
    available: size('pool available', p.available),
  });
  if (rule.initiator === 'required' && p.initiator === undefined) {
    throw new ValidationError(`a pool of type ${type} needs an initiator IQN of its own`, 'initiator');
  }
  const initiator = p.initiator === undefined ? undefined : requireIscsiName('pool initiator', p.initiator);
  if (type === 'iscsi-direct') {
    if (p.targetPath !== undefined) throw new ValidationError('a pool of type iscsi-direct has no target path', 'targetPath');
    return { ...common, type, initiator: initiator! };
  }
  return compact({ ...common, type, initiator, targetPath: requirePath('pool target path', p.targetPath) });
}

function size(field: string, n: number | undefined): number | undefined {
  return n === undefined ? undefined : requireInt(field, n, 0, Number.MAX_SAFE_INTEGER);
}

/** Fill defaults, then check: the PoolDef a document or a set of flags describes. */
export function poolDef(p: PoolInput): PoolDef {
  return validatePool(withPoolDefaults(p));
}

export function buildPool(p: PoolDef): string {
  const v = validatePool(p);
  const bytes = (n: number | undefined) => (n === undefined ? undefined : { '@unit': 'bytes', '#text': String(n) });
  return buildXml({
    pool: {
      '@type': v.type,
      name: v.name,
      uuid: v.uuid,
      capacity: bytes(v.capacity),
      allocation: bytes(v.allocation),
      available: bytes(v.available),
      source: {
        host: v.hosts.map((h) => compact({ '@name': h.name, '@port': h.port === undefined ? undefined : String(h.port) })),
        device: { '@path': v.device },
        initiator: v.initiator === undefined ? undefined : { iqn: { '@name': v.initiator } },
        auth: v.auth && { '@type': 'chap', '@username': v.auth.username, secret: secretRefAttrs(v.auth.secret) },
      },
      target: v.type === 'iscsi' ? { path: v.targetPath } : undefined,
    },
  });
}

/** Reads the document as given; defaults and checks come after. */
export function readPool(root: XmlNode): PoolInput {
  const node = child(root, 'pool');
  if (!node) throw new ValidationError('not a libvirt storage pool document: no <pool> element');
  const type = requireOneOf('pool type', attr(node, 'type'), POOL_TYPE_NAMES);
  const source = child(node, 'source');
  const auth = child(source, 'auth');
  if (auth && attr(auth, 'type') !== 'chap') throw new ValidationError(`pool auth type ${JSON.stringify(attr(auth, 'type') ?? '')} is not chap`, 'auth');
  const sized = (name: string): number | undefined => {
    const el = child(node, name);
    return el && scaledToBytes(`pool ${name}`, text(node, name) ?? '', attr(el, 'unit'));
  };
  return compact({
    type,
    name: text(node, 'name'),
    uuid: text(node, 'uuid'),
    capacity: sized('capacity'),
    allocation: sized('allocation'),
    available: sized('available'),
    hosts: children(source, 'host').map((h) => {
      const port = attr(h, 'port');
      return compact({ name: attr(h, 'name') ?? '', port: port === undefined ? undefined : parseDecimal('pool host port', port) });
    }),
    device: attr(child(source, 'device'), 'path'),
    initiator: attr(child(child(source, 'initiator'), 'iqn'), 'name'),
    auth: auth && { username: attr(auth, 'username') ?? '', secret: readSecretRef(child(auth, 'secret'), 'pool CHAP secret') },
    targetPath: text(child(node, 'target'), 'path'),
  });
}

/** `virsh pool-dumpxml` output (or a pool file): read, fill defaults, validate. */
export function parsePool(xml: string): PoolDef {
  return poolDef(readPool(parseXml(xml, ['host'])));
}

// ---- rbd pools ------------------------------------------------------------------------------
//
// libvirt's rbd pool: each volume is an RBD image of one Ceph pool, opened by libvirt
// (librbd) and given to QEMU as an rbd network disk. Its source names a Ceph pool and
// the monitors instead of a target IQN and a portal, so it has a model of its own beside
// the iSCSI ones (PoolDef stays the iSCSI pool union). `virsh pool-dumpxml` (libvirt 9.0):
//
//   <pool type='rbd'>
//     <name>vit-rbd</name>
//     <uuid>...</uuid>
//     <capacity unit='bytes'>0</capacity>
//     <allocation unit='bytes'>0</allocation>
//     <available unit='bytes'>0</available>
//     <source>
//       <host name='127.0.0.1' port='6789'/>
//       <name>rbd</name>
//       <auth type='ceph' username='virt-iscsi'>
//         <secret usage='vit-ceph-key'/>
//       </auth>
//     </source>
//   </pool>

/** cephx: the client id (without "client.") and the libvirt secret (type ceph) holding its key. */
export interface RbdPoolAuth {
  username: string;
  secret: SecretRef;
}

export interface RbdPoolDef {
  type: 'rbd';
  name: string;
  uuid?: string;
  /** The Ceph pool whose images are the volumes (`<source><name>`). */
  cephPool: string;
  /** The monitors; libvirt needs at least one ("missing storage pool source host name"). */
  hosts: PoolHost[];
  auth?: RbdPoolAuth;
  capacity?: number;
  allocation?: number;
  available?: number;
}

/** An rbd pool as read or given, before checks. */
export type RbdPoolInput = Partial<Omit<RbdPoolDef, 'type'>> & { type?: 'rbd' };

const CEPH_ID = /^(?!client\.)[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Checks every field; one-line ValidationError naming the bad value. */
export function rbdPoolDef(p: RbdPoolInput): RbdPoolDef {
  if (p.type !== undefined && p.type !== 'rbd') throw new ValidationError(`pool type ${JSON.stringify(p.type)} is not rbd`, 'type');
  const hosts = p.hosts ?? [];
  if (hosts.length === 0) throw new ValidationError('an rbd pool needs at least one Ceph monitor host', 'host');
  let cephPool: string;
  try {
    cephPool = parseRbdPoolName(requireText('rbd pool source name', p.cephPool));
  } catch (e) {
    throw new ValidationError(`rbd pool source name: ${(e as Error).message}`, 'source');
  }
  return compact({
    type: 'rbd' as const,
    name: requireObjectName('pool name', p.name),
    uuid: p.uuid === undefined ? undefined : requireUuid('pool uuid', p.uuid),
    cephPool,
    hosts: hosts.map((h) => compact({ name: requireHost('pool host', h.name), port: h.port === undefined ? undefined : requirePort('pool host port', h.port) })),
    auth: p.auth && {
      username: requirePattern('pool cephx user', p.auth.username, CEPH_ID, "a Ceph id without \"client.\": letters, digits, '_', '.', '-'"),
      secret: validateSecretRef('pool cephx secret', p.auth.secret),
    },
    capacity: size('pool capacity', p.capacity),
    allocation: size('pool allocation', p.allocation),
    available: size('pool available', p.available),
  });
}

export function buildRbdPool(p: RbdPoolDef): string {
  const v = rbdPoolDef(p);
  const bytes = (n: number | undefined) => (n === undefined ? undefined : { '@unit': 'bytes', '#text': String(n) });
  return buildXml({
    pool: {
      '@type': 'rbd',
      name: v.name,
      uuid: v.uuid,
      capacity: bytes(v.capacity),
      allocation: bytes(v.allocation),
      available: bytes(v.available),
      source: {
        host: v.hosts.map((h) => compact({ '@name': h.name, '@port': h.port === undefined ? undefined : String(h.port) })),
        name: v.cephPool,
        auth: v.auth && { '@type': 'ceph', '@username': v.auth.username, secret: secretRefAttrs(v.auth.secret) },
      },
    },
  });
}

/** `virsh pool-dumpxml` of an rbd pool (or a pool file): read and check. */
export function parseRbdPool(xml: string): RbdPoolDef {
  const node = child(parseXml(xml, ['host']), 'pool');
  if (!node) throw new ValidationError('not a libvirt storage pool document: no <pool> element');
  if (attr(node, 'type') !== 'rbd') throw new ValidationError(`pool type ${JSON.stringify(attr(node, 'type') ?? '')} is not rbd`, 'type');
  const source = child(node, 'source');
  const auth = child(source, 'auth');
  if (auth && attr(auth, 'type') !== 'ceph') throw new ValidationError(`rbd pool auth type ${JSON.stringify(attr(auth, 'type') ?? '')} is not ceph`, 'auth');
  const sized = (name: string): number | undefined => {
    const el = child(node, name);
    return el && scaledToBytes(`pool ${name}`, text(node, name) ?? '', attr(el, 'unit'));
  };
  return rbdPoolDef(
    compact({
      type: 'rbd' as const,
      name: text(node, 'name'),
      uuid: text(node, 'uuid'),
      cephPool: text(source, 'name'),
      hosts: children(source, 'host').map((h) => {
        const port = attr(h, 'port');
        return compact({ name: attr(h, 'name') ?? '', port: port === undefined ? undefined : parseDecimal('pool host port', port) });
      }),
      auth: auth && { username: attr(auth, 'username') ?? '', secret: readSecretRef(child(auth, 'secret'), 'pool cephx secret') },
      capacity: sized('capacity'),
      allocation: sized('allocation'),
      available: sized('available'),
    }),
  );
}
