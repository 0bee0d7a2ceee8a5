// libvirt secret XML for CHAP passwords, as `virsh secret-dumpxml` prints it:
//
//   <secret ephemeral='no' private='yes'>
//     <uuid>8b95b1f6-bedc-48a8-bfbf-58546192f4d2</uuid>
//     <description>CHAP for vit capture</description>
//     <usage type='iscsi'>
//       <target>vit-cap-chap</target>
//     </usage>
//   </secret>
//
// Pools and disks point at a secret by usage name or UUID (SecretRef). The value itself
// never appears in XML: it is set with `virsh secret-set-value --file`.
import { ValidationError } from '../errors.js';
import { attr, buildXml, child, parseXml, text, type XmlNode } from './codec.js';
import { compact, optionalYesNo, requireObjectName, requireText, requireUuid, yesNo } from './values.js';

/** What a secret is for. Only iSCSI CHAP secrets are modelled. */
export interface IscsiSecretUsage {
  type: 'iscsi';
  /** The usage name pools and disks refer to (`<secret usage='...'/>`). */
  target: string;
}
export type SecretUsage = IscsiSecretUsage;

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

export function withSecretDefaults(s: SecretInput): SecretDef {
  return { ...s, ephemeral: s.ephemeral ?? false, private: s.private ?? false };
}

export function validateSecret(s: SecretDef): SecretDef {
  return compact({
    ephemeral: s.ephemeral,
    private: s.private,
    uuid: s.uuid === undefined ? undefined : requireUuid('secret uuid', s.uuid),
    description: s.description === undefined ? undefined : requireText('secret description', s.description),
    usage: { type: s.usage.type, target: requireObjectName('secret usage', s.usage.target) },
  });
}

export function buildSecret(s: SecretDef): string {
  const v = validateSecret(s);
  return buildXml({
    secret: {
      '@ephemeral': yesNo(v.ephemeral),
      '@private': yesNo(v.private),
      uuid: v.uuid,
      description: v.description,
      usage: { '@type': v.usage.type, target: v.usage.target },
    },
  });
}

/** Reads the document as given; defaults and checks come after. */
export function readSecret(root: XmlNode): SecretInput {
  const node = child(root, 'secret');
  if (!node) throw new ValidationError('not a libvirt secret document: no <secret> element');
  const usage = child(node, 'usage');
  const type = attr(usage, 'type');
  if (type !== 'iscsi') throw new ValidationError(`secret usage type ${JSON.stringify(type ?? '')} is not iscsi; only iSCSI secrets are modelled`, 'usage');
  return compact({
    ephemeral: optionalYesNo('secret ephemeral', attr(node, 'ephemeral')),
    private: optionalYesNo('secret private', attr(node, 'private')),
    uuid: text(node, 'uuid'),
    description: text(node, 'description'),
    usage: { type, target: text(usage, 'target') ?? '' },
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
