// A domain's `<disk>` device, as `virsh attach-device` takes it and `virsh dumpxml` shows
// it. From a running domain (libvirt adds index=, the alias and the address):
//
//   <disk type='network' device='disk'>
//     <driver name='qemu' type='raw' cache='none'/>
//     <source protocol='iscsi' name='iqn.2024-01.dev.virt-iscsi:capture/1' index='4'>
//       <host name='127.0.0.1' port='48308'/>
//       <initiator>
//         <iqn name='iqn.2024-01.dev.virt-iscsi:capture-initiator'/>
//       </initiator>
//     </source>
//     <target dev='sda' bus='scsi'/>
//     <serial>0012</serial>
//     <alias name='ua-lun1'/>
//     <address type='drive' controller='0' bus='0' target='0' unit='0'/>
//   </disk>
//   <disk type='network' device='disk'>         <- an RBD image, QEMU's rbd driver (libvirt 9.0)
//     <driver name='qemu' type='raw' cache='none'/>
//     <auth username='virt-iscsi'>
//       <secret type='ceph' usage='vit-ceph-key'/>
//     </auth>
//     <source protocol='rbd' name='rbd/vm1-disk' index='2'>
//       <host name='127.0.0.1' port='6789'/>
//     </source>
//     <target dev='sdb' bus='scsi'/>
//   </disk>
//   <disk type='file' device='cdrom'>          <- an empty drive: no <source>
//     <driver name='qemu'/>
//     <target dev='hdc' bus='ide'/>
//     <readonly/>
//     <alias name='ide0-1-0'/>
//     <address type='drive' controller='0' bus='1' target='0' unit='0'/>
//   </disk>
//
// The partial model covers what virt-iscsi writes and reads; other elements are left
// out on parse, so a disk is never written back from a dumpxml wholesale.
import { ValidationError } from '../errors.js';
import { attr, buildXml, child, children, parseXml, text, type XmlNode } from './codec.js';
import { parseRbdImageSpec } from '../storage/rbd/ref.js';
import { readSecretRef, secretRefAttrs, validateSecretRef, type SecretRef } from './secret.js';
import {
  compact,
  hex,
  parseDecimal,
  parseHexOrDecimal,
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
} from './values.js';

export type DiskDevice = 'disk' | 'cdrom' | 'lun' | 'floppy';
export type DiskBus = 'scsi' | 'virtio' | 'sata' | 'ide' | 'usb' | 'fdc';
export type DiskCache = 'default' | 'none' | 'writethrough' | 'writeback' | 'directsync' | 'unsafe';
export type DiskIo = 'threads' | 'native' | 'io_uring';

export const DISK_DEVICES: readonly DiskDevice[] = ['disk', 'cdrom', 'lun', 'floppy'];
export const DISK_BUSES: readonly DiskBus[] = ['scsi', 'virtio', 'sata', 'ide', 'usb', 'fdc'];
const CACHES: readonly DiskCache[] = ['default', 'none', 'writethrough', 'writeback', 'directsync', 'unsafe'];
const IOS: readonly DiskIo[] = ['threads', 'native', 'io_uring'];

export interface NetworkHost {
  name: string;
  port?: number;
}

/** CHAP for QEMU's own iSCSI login: the user, and the libvirt secret (type iscsi) with the password. */
export interface DiskAuth {
  username: string;
  secret: SecretRef;
}

/** A host block device, e.g. /dev/disk/by-path/ip-...-lun-1. No dev: an empty cdrom/floppy drive. */
export interface BlockSource {
  type: 'block';
  dev?: string;
}

/** A file (an ISO as cdrom media). No file: an empty cdrom/floppy drive. */
export interface FileSource {
  type: 'file';
  file?: string;
}

/** QEMU logs in to the target itself (libiscsi): `<source protocol='iscsi' name='IQN/LUN'>`. */
export interface IscsiNetworkSource {
  type: 'network';
  protocol: 'iscsi';
  target: string;
  lun: number;
  hosts: NetworkHost[];
  initiator?: string;
  auth?: DiskAuth;
}

/** A volume of a libvirt pool (unit:0:0:N of an iscsi-direct pool, or a by-path volume). */
export interface VolumeSource {
  type: 'volume';
  pool: string;
  volume: string;
  /** For iscsi pools: use the host's device (host) or let QEMU log in (direct). */
  mode?: 'host' | 'direct';
}

/** cephx for QEMU's rbd driver: the client id (without "client."), and the libvirt secret (type ceph) with its key. */
export interface RbdAuth {
  username: string;
  secret: SecretRef;
}

/**
 * QEMU opens an RBD image itself (librbd), no iSCSI in the data path:
 * `<source protocol='rbd' name='POOL/IMAGE'>` with the cluster's monitors as hosts.
 */
export interface RbdNetworkSource {
  type: 'network';
  protocol: 'rbd';
  /** POOL/IMAGE (rbdImageSpec of an rbd:POOL/IMAGE reference). */
  name: string;
  /** The monitors; none: QEMU reads them from the host's /etc/ceph/ceph.conf. */
  hosts: NetworkHost[];
  auth?: RbdAuth;
}

export type NetworkSource = IscsiNetworkSource | RbdNetworkSource;
export type NetworkProtocol = NetworkSource['protocol'];
export type DiskSource = BlockSource | FileSource | NetworkSource | VolumeSource;
export type DiskSourceType = DiskSource['type'];

export interface DiskDriver {
  name?: string;
  type?: string;
  cache?: DiskCache;
  io?: DiskIo;
}

export interface DiskTarget {
  dev: string;
  bus?: DiskBus;
}

export interface DriveAddress {
  type: 'drive';
  controller: number;
  bus: number;
  target: number;
  unit: number;
}

export interface PciAddress {
  type: 'pci';
  domain: number;
  bus: number;
  slot: number;
  function: number;
}

export type DiskAddress = DriveAddress | PciAddress;

export interface DiskDef {
  device: DiskDevice;
  source: DiskSource;
  driver?: DiskDriver;
  target: DiskTarget;
  /** true or left out. */
  readonly?: boolean;
  /** true or left out. */
  shareable?: boolean;
  serial?: string;
  /** A user alias (`ua-...`), usable with `virsh detach-device-alias`. */
  alias?: string;
  address?: DiskAddress;
  /** The alias libvirt gave the disk in a running domain (scsi0-0-0-1); read only, never written. */
  liveAlias?: string;
}

/**
 * What each device kind takes, in one place (libvirt's domain_validate.c / qemu_validate.c):
 * which source types, which buses, and whether it may be an empty drive. A lun passes SCSI
 * commands through, so it needs a real SCSI device: a block device or an iSCSI LUN.
 */
export const DEVICE_RULES: Record<DiskDevice, { sources: readonly DiskSourceType[]; buses: readonly DiskBus[]; mayBeEmpty: boolean }> = {
  disk: { sources: ['block', 'file', 'network', 'volume'], buses: DISK_BUSES, mayBeEmpty: false },
  cdrom: { sources: ['block', 'file', 'network', 'volume'], buses: ['scsi', 'sata', 'ide', 'usb'], mayBeEmpty: true },
  lun: { sources: ['block', 'network', 'volume'], buses: ['scsi', 'virtio'], mayBeEmpty: false },
  floppy: { sources: ['block', 'file', 'volume'], buses: ['fdc'], mayBeEmpty: true },
};

const TARGET_DEV = /^(fd|hd|sd|vd|xvd|ubd)[a-zA-Z0-9_]+$/; // domaincommon.rng diskTargetDev
const SERIAL = /^[A-Za-z0-9_.+\- ]+$/; // domaincommon.rng diskSerial
const USER_ALIAS = /^ua-[A-Za-z0-9_.-]+$/; // "ua-" + domaincommon.rng aliasName
export const MAX_LUN = 65535;

/** A cdrom: read-only always (media cannot be written), raw, with the source given (or none: empty). */
export function cdromDisk(o: { source: DiskSource; target: DiskTarget; alias?: string }): DiskDef {
  return validateDisk(compact({ device: 'cdrom' as const, source: o.source, driver: { name: 'qemu', type: 'raw' }, target: o.target, readonly: true, alias: o.alias }));
}

export function validateDisk(d: DiskDef): DiskDef {
  const device = requireOneOf('disk device', d.device, DISK_DEVICES);
  const rule = DEVICE_RULES[device];
  if (!rule.sources.includes(d.source.type)) {
    throw new ValidationError(`a ${device} cannot have a ${d.source.type} source; it takes ${rule.sources.join(', ')}`, 'source');
  }
  const source = validateSource(d.source, rule.mayBeEmpty ? device : undefined);
  const bus = d.target.bus === undefined ? undefined : requireOneOf('disk target bus', d.target.bus, DISK_BUSES);
  if (bus !== undefined && !rule.buses.includes(bus)) throw new ValidationError(`a ${device} cannot be on bus ${bus}; it takes ${rule.buses.join(', ')}`, 'bus');
  if (d.alias !== undefined && !USER_ALIAS.test(d.alias)) {
    throw new ValidationError(`disk alias ${JSON.stringify(d.alias)} is not a user alias: "ua-" and letters, digits, '_', '.', '-'`, 'alias');
  }
  return compact({
    device,
    source,
    driver: d.driver && validateDriver(d.driver),
    target: compact({ dev: requirePattern('disk target dev', d.target.dev, TARGET_DEV, 'fd/hd/sd/vd/xvd/ubd and a letter or number, e.g. sdb'), bus }),
    readonly: d.readonly === true ? true : undefined,
    shareable: d.shareable === true ? true : undefined,
    serial: d.serial === undefined ? undefined : requirePattern('disk serial', d.serial, SERIAL, "letters, digits, spaces, '_', '.', '+', '-'"),
    alias: d.alias,
    address: d.address && validateAddress(d.address),
    liveAlias: d.liveAlias === undefined ? undefined : requireText('disk live alias', d.liveAlias),
  });
}

/** `emptyDevice` names the device when it may have no source path (cdrom, floppy). */
function validateSource(s: DiskSource, emptyDevice: string | undefined): DiskSource {
  const path = (field: string, value: string | undefined): string | undefined => {
    if (value === undefined && emptyDevice) return undefined;
    if (value === undefined) throw new ValidationError(`${field} is missing; only a cdrom or floppy drive may be empty`, field);
    return requirePath(field, value);
  };
  switch (s.type) {
    case 'block':
      return compact({ type: s.type, dev: path('disk source dev', s.dev) });
    case 'file':
      return compact({ type: s.type, file: path('disk source file', s.file) });
    case 'volume':
      return compact({
        type: s.type,
        pool: requireObjectName('disk source pool', s.pool),
        volume: requirePattern('disk source volume', s.volume, /^(?!\.\.?$)[^/]+$/, "a volume name without '/' (and not . or ..)"),
        mode: s.mode === undefined ? undefined : requireOneOf('disk source mode', s.mode, ['host', 'direct'] as const),
      });
    case 'network':
      return validateNetworkSource(s);
  }
}

const hostsOf = (field: string, hosts: readonly NetworkHost[]): NetworkHost[] =>
  hosts.map((h) => compact({ name: requireHost(field, h.name), port: h.port === undefined ? undefined : requirePort(`${field} port`, h.port) }));

function validateNetworkSource(s: NetworkSource): NetworkSource {
  switch (s.protocol) {
    case 'iscsi':
      // libvirt's schema and QEMU's iSCSI driver take exactly one host per source.
      if (s.hosts.length !== 1) throw new ValidationError(`an iSCSI network disk takes exactly one source host; got ${s.hosts.length}`, 'host');
      return compact({
        type: s.type,
        protocol: s.protocol,
        target: requireIscsiName('disk source target', s.target),
        lun: requireInt('disk source LUN', s.lun, 0, MAX_LUN),
        hosts: hostsOf('disk source host', s.hosts),
        initiator: s.initiator === undefined ? undefined : requireIscsiName('disk source initiator', s.initiator),
        auth: s.auth && { username: requireChapUser('disk CHAP user', s.auth.username), secret: validateSecretRef('disk CHAP secret', s.auth.secret) },
      });
    case 'rbd': {
      let ref;
      try {
        ref = parseRbdImageSpec(s.name);
      } catch (e) {
        throw new ValidationError(`disk source name ${JSON.stringify(s.name)} is not POOL/IMAGE of an RBD image: ${(e as Error).message}`, 'name');
      }
      // Monitors: any number (none: QEMU reads them from the hypervisor's ceph.conf).
      return compact({
        type: s.type,
        protocol: s.protocol,
        name: `${ref.pool}/${ref.image}`,
        hosts: hostsOf('disk source host', s.hosts),
        auth: s.auth && {
          username: requirePattern('disk cephx user', s.auth.username, CEPH_USER, "a Ceph id without \"client.\": letters, digits, '_', '.', '-'"),
          secret: validateSecretRef('disk cephx secret', s.auth.secret),
        },
      });
    }
    default:
      throw new ValidationError(`disk source protocol ${JSON.stringify((s as { protocol: unknown }).protocol)} is not iscsi or rbd`, 'protocol');
  }
}

/** cephx ids as Ceph takes them (no "client." prefix). */
const CEPH_USER = /^(?!client\.)[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

function validateDriver(d: DiskDriver): DiskDriver {
  return compact({
    name: d.name === undefined ? undefined : requirePattern('disk driver name', d.name, /^[a-z0-9_]+$/, 'a driver name such as qemu'),
    type: d.type === undefined ? undefined : requirePattern('disk driver type', d.type, /^[a-z0-9]+$/, 'an image format such as raw or qcow2'),
    cache: d.cache === undefined ? undefined : requireOneOf('disk driver cache', d.cache, CACHES),
    io: d.io === undefined ? undefined : requireOneOf('disk driver io', d.io, IOS),
  });
}

function validateAddress(a: DiskAddress): DiskAddress {
  if (a.type === 'drive') {
    const n = (field: keyof Omit<DriveAddress, 'type'>) => requireInt(`disk address ${field}`, a[field], 0, 65535);
    return { type: 'drive', controller: n('controller'), bus: n('bus'), target: n('target'), unit: n('unit') };
  }
  return {
    type: 'pci',
    domain: requireInt('disk address domain', a.domain, 0, 0xffff),
    bus: requireInt('disk address bus', a.bus, 0, 0xff),
    slot: requireInt('disk address slot', a.slot, 0, 0x1f),
    function: requireInt('disk address function', a.function, 0, 7),
  };
}

/** The `<disk>` element as a codec tree (for wrapping several devices in one document). */
export function diskNode(d: DiskDef): XmlNode {
  const v = validateDisk(d);
  return compact({
    '@type': v.source.type,
    '@device': v.device,
    driver: v.driver && compact({ '@name': v.driver.name, '@type': v.driver.type, '@cache': v.driver.cache, '@io': v.driver.io }),
    source: sourceNode(v.source),
    target: compact({ '@dev': v.target.dev, '@bus': v.target.bus }),
    readonly: v.readonly ? '' : undefined,
    shareable: v.shareable ? '' : undefined,
    serial: v.serial,
    alias: v.alias === undefined ? undefined : { '@name': v.alias },
    address: v.address && addressNode(v.address),
  }) as XmlNode;
}

function sourceNode(s: DiskSource): XmlNode | undefined {
  switch (s.type) {
    case 'block':
      return s.dev === undefined ? undefined : { '@dev': s.dev };
    case 'file':
      return s.file === undefined ? undefined : { '@file': s.file };
    case 'volume':
      return compact({ '@pool': s.pool, '@volume': s.volume, '@mode': s.mode });
    case 'network':
      if (s.protocol === 'rbd') {
        return compact({
          '@protocol': s.protocol,
          '@name': s.name,
          host: s.hosts.map((h) => compact({ '@name': h.name, '@port': h.port === undefined ? undefined : String(h.port) })),
          auth: s.auth && { '@username': s.auth.username, secret: { '@type': 'ceph', ...secretRefAttrs(s.auth.secret) } },
        }) as XmlNode;
      }
      return compact({
        '@protocol': s.protocol,
        '@name': `${s.target}/${s.lun}`,
        host: s.hosts.map((h) => compact({ '@name': h.name, '@port': h.port === undefined ? undefined : String(h.port) })),
        auth: s.auth && { '@username': s.auth.username, secret: { '@type': 'iscsi', ...secretRefAttrs(s.auth.secret) } },
        initiator: s.initiator === undefined ? undefined : { iqn: { '@name': s.initiator } },
      }) as XmlNode;
  }
}

function addressNode(a: DiskAddress): XmlNode {
  if (a.type === 'drive') return { '@type': 'drive', '@controller': String(a.controller), '@bus': String(a.bus), '@target': String(a.target), '@unit': String(a.unit) };
  return { '@type': 'pci', '@domain': hex(a.domain, 4), '@bus': hex(a.bus, 2), '@slot': hex(a.slot, 2), '@function': hex(a.function, 1) };
}

/** The `<disk>` device XML for `virsh attach-device` / `detach-device` / `update-device`. */
export function buildDisk(d: DiskDef): string {
  return buildXml({ disk: diskNode(d) });
}

/** Element names under `<disk>` that repeat; parseXml must see them as arrays. */
export const DISK_ARRAYS = ['host'] as const;

/** Reads one `<disk>` element and checks it (no defaults to fill: libvirt's stay implicit). */
export function readDisk(node: XmlNode): DiskDef {
  const device = requireOneOf('disk device', attr(node, 'device') ?? 'disk', DISK_DEVICES);
  const sourceEl = child(node, 'source');
  const targetEl = child(node, 'target');
  const driverEl = child(node, 'driver');
  const aliasName = attr(child(node, 'alias'), 'name');
  const userAlias = aliasName !== undefined && aliasName.startsWith('ua-');
  return validateDisk(
    compact({
      device,
      source: readSource(attr(node, 'type') ?? 'file', sourceEl, node),
      driver: driverEl && compact({ name: attr(driverEl, 'name'), type: attr(driverEl, 'type'), cache: attr(driverEl, 'cache') as DiskCache, io: attr(driverEl, 'io') as DiskIo }),
      target: compact({ dev: attr(targetEl, 'dev') ?? '', bus: attr(targetEl, 'bus') as DiskBus | undefined }),
      readonly: child(node, 'readonly') ? true : undefined,
      shareable: child(node, 'shareable') ? true : undefined,
      serial: text(node, 'serial'),
      alias: userAlias ? aliasName : undefined,
      liveAlias: userAlias ? undefined : aliasName,
      address: readAddress(child(node, 'address')),
    }),
  );
}

function readSource(type: string, s: XmlNode | undefined, disk: XmlNode): DiskSource {
  switch (type) {
    case 'block':
      return compact({ type, dev: attr(s, 'dev') });
    case 'file':
      return compact({ type, file: attr(s, 'file') });
    case 'volume':
      return compact({ type, pool: attr(s, 'pool') ?? '', volume: attr(s, 'volume') ?? '', mode: attr(s, 'mode') as VolumeSource['mode'] });
    case 'network': {
      const protocol = attr(s, 'protocol');
      if (protocol !== 'iscsi' && protocol !== 'rbd') {
        throw new ValidationError(`disk source protocol ${JSON.stringify(protocol ?? '')} is not iscsi or rbd; only iSCSI and RBD network disks are modelled`, 'protocol');
      }
      const hosts = children(s, 'host').map((h) => {
        const port = attr(h, 'port');
        return compact({ name: attr(h, 'name') ?? '', port: port === undefined ? undefined : parseDecimal('disk source host port', port) });
      });
      if (protocol === 'rbd') {
        const rbdAuth = child(s, 'auth') ?? child(disk, 'auth');
        return compact({
          type,
          protocol,
          name: attr(s, 'name') ?? '',
          hosts,
          auth: rbdAuth && { username: attr(rbdAuth, 'username') ?? '', secret: readSecretRef(child(rbdAuth, 'secret'), 'disk cephx secret') },
        });
      }
      // name='IQN/LUN'; libvirt reads a name without '/LUN' as LUN 0.
      const name = attr(s, 'name') ?? '';
      const slash = name.lastIndexOf('/');
      // Older libvirt wrote <auth> beside <source>, newer inside it; read both.
      const auth = child(s, 'auth') ?? child(disk, 'auth');
      return compact({
        type,
        protocol,
        target: slash < 0 ? name : name.slice(0, slash),
        lun: slash < 0 ? 0 : parseDecimal('disk source LUN', name.slice(slash + 1)),
        hosts,
        initiator: attr(child(child(s, 'initiator'), 'iqn'), 'name'),
        auth: auth && { username: attr(auth, 'username') ?? '', secret: readSecretRef(child(auth, 'secret'), 'disk CHAP secret') },
      });
    }
    default:
      throw new ValidationError(`disk type ${JSON.stringify(type)} is not block, file, network or volume`, 'type');
  }
}

function readAddress(a: XmlNode | undefined): DiskAddress | undefined {
  if (!a) return undefined;
  const type = attr(a, 'type');
  const dec = (name: string) => parseDecimal(`disk address ${name}`, attr(a, name) ?? '0');
  const num = (name: string) => parseHexOrDecimal(`disk address ${name}`, attr(a, name) ?? '0');
  if (type === 'drive') return { type, controller: dec('controller'), bus: dec('bus'), target: dec('target'), unit: dec('unit') };
  if (type === 'pci') return { type, domain: num('domain'), bus: num('bus'), slot: num('slot'), function: num('function') };
  throw new ValidationError(`disk address type ${JSON.stringify(type ?? '')} is not drive or pci`, 'address');
}

/** One `<disk>` document (attach-device XML): read and check. */
export function parseDisk(xml: string): DiskDef {
  const node = child(parseXml(xml, DISK_ARRAYS), 'disk');
  if (!node) throw new ValidationError('not a libvirt disk document: no <disk> element');
  return readDisk(node);
}
