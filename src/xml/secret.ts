// libvirt secret XML for CHAP passwords and Ceph (cephx) keys, as `virsh secret-dumpxml`
// prints it:
//
//   <secret ephemeral='no' private='yes'>
//     <uuid>8b95b1f6-bedc-48a8-bfbf-58546192f4d2</uuid>
//     <description>CHAP for vit capture</description>
//     <usage type='iscsi'>
//       <target>vit-cap-chap</target>
//     </usage>
//   </secret>
//   <secret ephemeral='no' private='yes'>        <- libvirt 9.0, a cephx key
//     <uuid>...</uuid>
//     <usage type='ceph'>
//       <name>vit-ceph-key</name>
//     </usage>
//   </secret>
//
// Pools and disks point at a secret by usage name or UUID (SecretRef). The value itself
// never appears in XML: it is set with `virsh secret-set-value --file` (a ceph secret's
// value is the key as `ceph auth get-key` prints it, base64).
import { ValidationError } from '../errors.js';
import { attr, buildXml, child, parseXml, text, type XmlNode } from './codec.js';
import { compact, optionalYesNo, requireObjectName, requireOneOf, requireText, requireUuid, yesNo } from './values.js';

/** What a secret is for: an iSCSI CHAP password, or a Ceph client's cephx key. */
export interface IscsiSecretUsage {
  type: 'iscsi';
  /** The usage name pools and disks refer to (`<secret usage='...'/>`). */
  target: string;
}

/** A cephx key for rbd pools and disks (`<auth username='ID'><secret type='ceph' usage='NAME'/>`). */
export interface CephSecretUsage {
  type: 'ceph';
  /** The usage name pools and disks refer to; libvirt's examples use "client.ID secret". */
  name: string;
}
export type SecretUsage = IscsiSecretUsage | CephSecretUsage;
export type SecretUsageType = SecretUsage['type'];

/** Per usage type: the element that holds the usage name. */
const USAGE_ELEMENT: Record<SecretUsageType, 'target' | 'name'> = { iscsi: 'target', ceph: 'name' };
const USAGE_TYPES = Object.keys(USAGE_ELEMENT) as SecretUsageType[];

/** The usage name, whatever the type. */
export function secretUsageName(u: SecretUsage): string {
  return u.type === 'iscsi' ? u.target : u.name;
}

export interface SecretDef {
  /** Kept only in memory, never on disk. libvirt's default: false. */
  ephemeral: boolean;
  /** The value cannot be read back through the API. libvirt's default: false. */
  private: boolean;
  uuid?: string;
  description?: string;
  usage: SecretUsage;
}

/** A secret as read or given, before defaults: ephemeral/private may be left out. */
export type SecretInput = Omit<SecretDef, 'ephemeral' | 'private'> & Partial<Pick<SecretDef, 'ephemeral' | 'private'>>;

/** A reference to a secret from a pool's or disk's `<auth>`. */
export type SecretRef = { usage: string } | { uuid: string };

/** The secret we create for a CHAP password: persistent, and private so it cannot be read back. */
export function iscsiChapSecret(o: { usage: string; description?: string; uuid?: string }): SecretDef {
  return validateSecret(compact({ ephemeral: false, private: true, uuid: o.uuid, description: o.description, usage: { type: 'iscsi' as const, target: o.usage } }));
}

/** The secret we create for a Ceph client's key: persistent, and private so it cannot be read back. */
export function cephKeySecret(o: { usage: string; description?: string; uuid?: string }): SecretDef {
  return validateSecret(compact({ ephemeral: false, private: true, uuid: o.uuid, description: o.description, usage: { type: 'ceph' as const, name: o.usage } }));
}

export function withSecretDefaults(s: SecretInput): SecretDef {
  return { ...s, ephemeral: s.ephemeral ?? false, private: s.private ?? false };
}

export function validateSecret(s: SecretDef): SecretDef {
  return compact({
    ephemeral: s.ephemeral,
    private: s.private,
    uuid: s.uuid === undefined ? undefined : requireUuid('secret uuid', s.uuid),
    description: s.description === undefined ? undefined : requireText('secret description', s.description),
    usage: validateUsage(s.usage),
  });
}

function validateUsage(u: SecretUsage): SecretUsage {
  const type = requireOneOf('secret usage type', u.type, USAGE_TYPES);
  const name = requireObjectName('secret usage', secretUsageName(u));
  return type === 'iscsi' ? { type, target: name } : { type, name };
}

export function buildSecret(s: SecretDef): string {
  const v = validateSecret(s);
  return buildXml({
    secret: {
      '@ephemeral': yesNo(v.ephemeral),
      '@private': yesNo(v.private),
      uuid: v.uuid,
      description: v.description,
      usage: { '@type': v.usage.type, [USAGE_ELEMENT[v.usage.type]]: secretUsageName(v.usage) },
    },
  });
}

/** Reads the document as given; defaults and checks come after. */
export function readSecret(root: XmlNode): SecretInput {
  const node = child(root, 'secret');
  if (!node) throw new ValidationError('not a libvirt secret document: no <secret> element');
  const usage = child(node, 'usage');
  const type = attr(usage, 'type');
  if (type !== 'iscsi' && type !== 'ceph') {
    throw new ValidationError(`secret usage type ${JSON.stringify(type ?? '')} is not iscsi or ceph; only iSCSI and Ceph secrets are modelled`, 'usage');
  }
  const name = text(usage, USAGE_ELEMENT[type]) ?? '';
  return compact({
    ephemeral: optionalYesNo('secret ephemeral', attr(node, 'ephemeral')),
    private: optionalYesNo('secret private', attr(node, 'private')),
    uuid: text(node, 'uuid'),
    description: text(node, 'description'),
    usage: type === 'iscsi' ? { type, target: name } : { type, name },
  });
}

/** Parse, fill libvirt's defaults, validate. */
export function parseSecret(xml: string): SecretDef {
  return validateSecret(withSecretDefaults(readSecret(parseXml(xml))));
}

export function readSecretRef(node: XmlNode | undefined, field: string): SecretRef {
  const usage = attr(node, 'usage');
  const uuid = attr(node, 'uuid');
  if (usage !== undefined && uuid !== undefined) throw new ValidationError(`${field} names both a usage and a uuid; give one`, field);
  if (usage !== undefined) return { usage };
  if (uuid !== undefined) return { uuid };
  throw new ValidationError(`${field} has neither a usage nor a uuid`, field);
}

export function validateSecretRef(field: string, ref: SecretRef): SecretRef {
  return 'usage' in ref ? { usage: requireObjectName(`${field} usage`, ref.usage) } : { uuid: requireUuid(`${field} uuid`, ref.uuid) };
}

/** The `<secret>` attributes for a reference. */
export function secretRefAttrs(ref: SecretRef): Record<string, string> {
  return 'usage' in ref ? { '@usage': ref.usage } : { '@uuid': ref.uuid };
}
