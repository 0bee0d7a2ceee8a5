// What virt-iscsi reads from `virsh dumpxml` (live, or --inactive) of a domain: identity,
// whether it can hotplug (ACPI), its disks and controllers, and the marks virt-iscsi left
// in <metadata>. A running domain's document starts like this (trimmed):
//
//   <domain type='qemu' id='2'>                 <- id= only while it runs
//     <name>vit-cap-dom</name>
//     <uuid>2044877d-90df-49c4-84bf-139f4b530b79</uuid>
//     <metadata>
//       <vi:exports xmlns:vi="https://virt-iscsi.dev/xmlns/1">
//         <vi:export name="cap" dev="sda"/>
//       </vi:exports>
//     </metadata>
//     <os>
//       <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
//     </os>
//     <features>
//       <acpi/>
//       <apic/>
//     </features>
//     <devices>
//       <disk ...>...</disk>
//       <controller type='scsi' index='0' model='virtio-scsi'>
//         <alias name='scsi0'/>
//         <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
//       </controller>
//
// The model is partial on purpose: a domain is never written back from it. Changes go
// to libvirt as device fragments (buildDisk, buildController) through attach-device,
// and marks through `virsh metadata --uri VIRT_ISCSI_NS --key vi --set`.
import { ValidationError } from '../errors.js';
import { attr, buildXml, child, children, parseXml, text, ATTR, TEXT, type XmlNode } from './codec.js';
import { DISK_ARRAYS, readDisk, type DiskDef } from './disk.js';
import { compact, parseDecimal, requireInt, requireIscsiName, requireObjectName, requireOneOf, requirePattern, requireText, requireUuid } from './values.js';

/** Our namespace for <metadata>; libvirt keeps one element per namespace. */
export const VIRT_ISCSI_NS = 'https://virt-iscsi.dev/xmlns/1';
/** The prefix libvirt writes our metadata element with (virsh metadata --key). */
export const VIRT_ISCSI_NS_KEY = 'vi';

export const CONTROLLER_TYPES = ['scsi', 'ide', 'sata', 'usb', 'pci', 'virtio-serial', 'fdc', 'ccid', 'xenbus', 'isa'] as const;
export type ControllerType = (typeof CONTROLLER_TYPES)[number];

export interface ControllerDef {
  /** Any libvirt controller type when read; one of CONTROLLER_TYPES to build. */
  type: string;
  model?: string;
  index?: number;
}

/** What virt-iscsi records on a domain for each disk it attached, so teardown reads it back. */
export interface ExportMark {
  /** The export's name (what `virt-iscsi unexport NAME` takes). */
  name: string;
  /** The disk's target dev in the domain. */
  dev: string;
  target?: string;
  lun?: number;
  /** HOST:PORT as given to the command. */
  portal?: string;
  pool?: string;
}

/** A disk the partial disk model does not cover (rbd, nvme, ...): enough to keep its target dev taken. */
export interface OtherDisk {
  type?: string;
  device?: string;
  dev?: string;
  /** Why it was not read as a DiskDef. */
  problem: string;
}

export interface DomainInfo {
  /** kvm, qemu, ... */
  type: string;
  /** Present while the domain runs. */
  id?: number;
  name: string;
  uuid: string;
  arch?: string;
  machine?: string;
  /** Names of the <features> children (acpi, apic, ...). */
  features: string[];
  /** Without ACPI, QEMU cannot hotplug on pci.0. */
  acpi: boolean;
  disks: DiskDef[];
  otherDisks: OtherDisk[];
  controllers: ControllerDef[];
  marks: ExportMark[];
}

const elementNames = (node: XmlNode | undefined): string[] => Object.keys(node ?? {}).filter((k) => !k.startsWith(ATTR) && k !== TEXT);

/** `virsh dumpxml` output (live or --inactive). */
export function parseDomain(xml: string): DomainInfo {
  const root = child(parseXml(xml, [...DISK_ARRAYS, 'disk', 'controller']), 'domain');
  if (!root) throw new ValidationError('not a libvirt domain document: no <domain> element');
  const devices = child(root, 'devices');
  const features = elementNames(child(root, 'features'));
  const osType = child(child(root, 'os'), 'type');
  const id = attr(root, 'id');
  const disks: DiskDef[] = [];
  const otherDisks: OtherDisk[] = [];
  for (const d of children(devices, 'disk')) {
    try {
      disks.push(readDisk(d));
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      otherDisks.push(compact({ type: attr(d, 'type'), device: attr(d, 'device'), dev: attr(child(d, 'target'), 'dev'), problem: e.message }));
    }
  }
  return compact({
    type: requireText('domain type', attr(root, 'type')),
    id: id === undefined ? undefined : parseDecimal('domain id', id),
    name: requireText('domain name', text(root, 'name')),
    uuid: requireUuid('domain uuid', text(root, 'uuid')),
    arch: attr(osType, 'arch'),
    machine: attr(osType, 'machine'),
    features,
    acpi: features.includes('acpi'),
    disks,
    otherDisks,
    controllers: children(devices, 'controller').map((c) => {
      const index = attr(c, 'index');
      return compact({ type: requireText('controller type', attr(c, 'type')), model: attr(c, 'model'), index: index === undefined ? undefined : parseDecimal('controller index', index) });
    }),
    marks: readMarksIn(child(root, 'metadata')),
  });
}

/** Our element among <metadata>'s children: any prefix, bound to VIRT_ISCSI_NS. */
function readMarksIn(metadata: XmlNode | undefined): ExportMark[] {
  for (const key of elementNames(metadata)) {
    const [prefix, local] = key.split(':');
    if (local !== 'exports') continue;
    const el = child(metadata, key);
    if (attr(el, `xmlns:${prefix}`) === VIRT_ISCSI_NS) return children(el, `${prefix}:export`).map(readMark);
  }
  return [];
}

function readMark(node: XmlNode): ExportMark {
  const lun = attr(node, 'lun');
  return validateMark(
    compact({
      name: attr(node, 'name') ?? '',
      dev: attr(node, 'dev') ?? '',
      target: attr(node, 'target'),
      lun: lun === undefined ? undefined : parseDecimal('mark lun', lun),
      portal: attr(node, 'portal'),
      pool: attr(node, 'pool'),
    }),
  );
}

function validateMark(m: ExportMark): ExportMark {
  return compact({
    name: requireText('mark name', m.name),
    dev: requireText('mark dev', m.dev),
    target: m.target === undefined ? undefined : requireIscsiName('mark target', m.target),
    lun: m.lun === undefined ? undefined : requireInt('mark lun', m.lun, 0, 65535),
    portal: m.portal === undefined ? undefined : requireText('mark portal', m.portal),
    pool: m.pool === undefined ? undefined : requireObjectName('mark pool', m.pool),
  });
}

/**
 * The metadata element for `virsh metadata DOMAIN --uri VIRT_ISCSI_NS --key vi --set XML`
 * (unprefixed: libvirt adds the prefix and namespace). It replaces every earlier mark.
 */
export function buildMarks(marks: readonly ExportMark[]): string {
  const list = marks.map(validateMark);
  return buildXml({
    exports: {
      export: list.map((m) => compact({ '@name': m.name, '@dev': m.dev, '@target': m.target, '@lun': m.lun === undefined ? undefined : String(m.lun), '@portal': m.portal, '@pool': m.pool })),
    },
  });
}

/** `virsh metadata DOMAIN --uri VIRT_ISCSI_NS` output (our element, unprefixed); empty text: no marks. */
export function parseMarks(xml: string): ExportMark[] {
  if (xml.trim() === '') return [];
  const root = child(parseXml(xml, ['export']), 'exports');
  if (!root) throw new ValidationError('not virt-iscsi metadata: no <exports> element');
  return children(root, 'export').map(readMark);
}

/** A controller device fragment, e.g. `<controller type='scsi' model='virtio-scsi'/>` for attach-device. */
export function buildController(c: ControllerDef): string {
  return buildXml({ controller: controllerNode(c) });
}

export function controllerNode(c: ControllerDef): XmlNode {
  return compact({
    '@type': requireOneOf('controller type', c.type, CONTROLLER_TYPES),
    '@index': c.index === undefined ? undefined : String(requireInt('controller index', c.index, 0, 255)),
    '@model': c.model === undefined ? undefined : requirePattern('controller model', c.model, /^[a-z0-9-]+$/, 'a model name such as virtio-scsi'),
  }) as XmlNode;
}
