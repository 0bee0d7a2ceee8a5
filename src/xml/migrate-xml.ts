// The domain a live migration sends (`virsh migrate --xml` / `--persistent-xml`), with the
// iSCSI initiator name of chosen network disks changed to the destination's.
//
// A network disk carries the initiator name QEMU logs in with:
//   <disk type='network' device='disk'>
//     <source protocol='iscsi' name='iqn.2026-12.localdomain.vm:web/1'>
//       <host name='10.0.0.5' port='3260'/>
//       <initiator><iqn name='iqn.1993-08.org.debian:01:aaaa'/></initiator>
//     </source>
//     <alias name='ua-virt-iscsi-web'/>
// Migrated unchanged, the destination's QEMU would log in as the source: the target's ACL
// would have to keep the source's name for as long as the VM lives elsewhere, and removing
// the source from the export would cut the VM off at its next login. libvirt lets a
// migration change a disk's source (it is not guest ABI), so the destination's name goes in.
//
// The document is handed back whole, so it is parsed with its order kept and only the
// `iqn` element's name attribute of the disks named by alias is touched.
import { buildOrdered, parseOrdered, ATTR, type OrderedNode } from './codec.js';
import { requireIscsiName } from './values.js';

const ATTRS = ':@';

/** The child elements of an ordered node's element `tag` (its children list), else []. */
function kids(node: OrderedNode, tag: string): OrderedNode[] {
  const v = node[tag];
  return Array.isArray(v) ? (v as OrderedNode[]) : [];
}

function elements(list: readonly OrderedNode[], tag: string): OrderedNode[] {
  return list.filter((n) => Object.prototype.hasOwnProperty.call(n, tag));
}

export interface InitiatorChange {
  alias: string;
  from: string;
  to: string;
}

/**
 * `xml` (a domain, from `virsh dumpxml --migratable`) with each disk whose alias is a key of
 * `initiators` logging in as that name. Disks without an <initiator> are left as they are.
 */
export function withDiskInitiators(xml: string, initiators: ReadonlyMap<string, string>): { xml: string; changes: InitiatorChange[] } {
  const want = new Map([...initiators].map(([alias, iqn]) => [alias, requireIscsiName('destination initiator', iqn)]));
  const doc = parseOrdered(xml);
  const changes: InitiatorChange[] = [];
  for (const domain of elements(doc, 'domain')) {
    for (const devices of elements(kids(domain, 'domain'), 'devices')) {
      for (const disk of elements(kids(devices, 'devices'), 'disk')) {
        const alias = elements(kids(disk, 'disk'), 'alias')[0]?.[ATTRS]?.[`${ATTR}name`];
        const to = alias === undefined ? undefined : want.get(alias);
        if (to === undefined) continue;
        for (const source of elements(kids(disk, 'disk'), 'source')) {
          for (const initiator of elements(kids(source, 'source'), 'initiator')) {
            for (const iqn of elements(kids(initiator, 'initiator'), 'iqn')) {
              const attrs = (iqn[ATTRS] ??= {});
              const from = attrs[`${ATTR}name`] ?? '';
              if (from !== to) changes.push({ alias: alias!, from, to });
              attrs[`${ATTR}name`] = to;
            }
          }
        }
      }
    }
  }
  return { xml: changes.length > 0 ? buildOrdered(doc) : xml, changes };
}
