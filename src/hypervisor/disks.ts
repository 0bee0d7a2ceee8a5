// The disk sources virt-iscsi hands to a domain, checked against the hypervisor before
// anything changes: a by-path block device must exist there, a pool volume must be in its
// (running) pool, a CHAP secret must be defined. Also reads a domain's two configurations.
import { isDeepStrictEqual } from 'node:util';
import { ValidationError } from '../errors.js';
import { byPathFor } from '../names/by-path.js';
import { DEFAULT_ISCSI_PORT, formatPortal, type Portal } from '../names/portal.js';
import { buildDisk, cdromDisk, validateDisk, type DiskAuth, type DiskDef, type DiskSource } from '../xml/disk.js';
import { Iscsiadm } from './iscsiadm.js';
import type { DiskSlot, DomainView } from './placement.js';
import { NotFoundError } from './virsh-errors.js';
import type { Virsh } from './virsh.js';

export type SourceSpec =
  /** A block device on the hypervisor, e.g. /dev/disk/by-path/ip-...-lun-1 after an iscsiadm login. */
  | { mode: 'block'; dev: string }
  /** QEMU logs in to the target itself. */
  | { mode: 'network'; portal: Portal; target: string; lun: number; initiator?: string; auth?: DiskAuth }
  /** A volume of a libvirt pool (unit:0:0:N of an iscsi-direct pool). */
  | { mode: 'volume'; pool: string; volume: string };

/**
 * The domain's running configuration (when it runs) and its persistent one. Both dumps are
 * asked for at once: `dumpxml` of a domain that is not active is its definition, without
 * the id= that an active domain's document carries.
 */
export async function readView(virsh: Virsh, domain: string): Promise<DomainView> {
  const [current, inactive] = await Promise.all([virsh.domainXml(domain), virsh.domainXml(domain, true)]);
  const live = current.id !== undefined ? current : undefined;
  if (!live) return { name: domain, inactive };
  // Only a running domain can be transient; libvirt then shows its running configuration as the "inactive" one.
  return (await virsh.domPersistent(domain)) ? { name: domain, live, inactive } : { name: domain, live, inactive, transient: true };
}

/**
 * The by-path device of a LUN as udev names it on the hypervisor: the portal's host is
 * resolved to an IP there first (udev never puts a host name in it).
 */
export async function byPathSource(virsh: Virsh, portal: Portal, target: string, lun: number): Promise<SourceSpec> {
  const resolved = await new Iscsiadm(virsh.runner).resolvePortal(portal);
  return { mode: 'block', dev: byPathFor(resolved, target, lun) };
}

/** Checks the source exists where the domain will look for it; the disk source for it. */
export async function resolveSource(virsh: Virsh, spec: SourceSpec): Promise<DiskSource> {
  switch (spec.mode) {
    case 'block': {
      const r = await virsh.runner.run(['test', '-b', spec.dev], { query: true });
      if (r.exitCode !== 0) {
        throw new ValidationError(
          `block device ${JSON.stringify(spec.dev)} does not exist on ${virsh.runner.host}; log in to its target first (virt-iscsi login), or attach with --mode network`,
          'by-path',
        );
      }
      return { type: 'block', dev: spec.dev };
    }
    case 'volume': {
      const info = await virsh.poolInfo(spec.pool);
      if (!info) throw new NotFoundError('pool', spec.pool, virsh.where, 'virt-iscsi pool list shows the pools');
      if (info.state !== 'running') throw new ValidationError(`pool ${JSON.stringify(spec.pool)} on ${virsh.where} is ${info.state}; start it first (virsh pool-start ${spec.pool})`, 'pool');
      const vols = await virsh.volList(spec.pool);
      if (!vols.some((v) => v.name === spec.volume)) {
        const has = vols.map((v) => v.name).join(', ') || 'no volumes';
        throw new ValidationError(`pool ${JSON.stringify(spec.pool)} has no volume ${JSON.stringify(spec.volume)}; it has ${has}`, 'volume');
      }
      return { type: 'volume', pool: spec.pool, volume: spec.volume };
    }
    case 'network': {
      const ref = spec.auth?.secret;
      if (ref) {
        const found = 'usage' in ref ? await virsh.secretByUsage(ref.usage) : await virsh.secretDumpXml(ref.uuid);
        if (!found) {
          const name = 'usage' in ref ? `with usage ${JSON.stringify(ref.usage)}` : JSON.stringify(ref.uuid);
          throw new ValidationError(`no libvirt secret ${name} on ${virsh.where} for the CHAP password; define it first (virt-iscsi xml secret, virsh secret-set-value)`, 'chap');
        }
      }
      const source: DiskSource = { type: 'network', protocol: 'iscsi', target: spec.target, lun: spec.lun, hosts: [{ name: spec.portal.host, port: spec.portal.port }] };
      if (spec.initiator !== undefined) source.initiator = spec.initiator;
      if (spec.auth) source.auth = spec.auth;
      return source;
    }
  }
}

/** A raw disk (read-only when asked) or a cdrom (always read-only) with this source and slot. */
export function diskFor(source: DiskSource, device: 'disk' | 'cdrom', target: DiskSlot, readonly = false): DiskDef {
  if (device === 'cdrom') return cdromDisk({ source, target });
  return validateDisk({ device: 'disk', source, driver: { name: 'qemu', type: 'raw' }, target, ...(readonly ? { readonly: true } : {}) });
}

/** For people: "LUN 1 of IQN at HOST:PORT", "volume V of pool P", the device path. */
export function describeSource(s: DiskSource): string {
  switch (s.type) {
    case 'block':
      return s.dev ?? 'no media';
    case 'file':
      return s.file ?? 'no media';
    case 'volume':
      return `volume ${s.volume} of pool ${s.pool}`;
    case 'network':
      if (s.protocol === 'rbd') return `RBD image rbd:${s.name}${s.hosts.length ? ` at ${s.hosts.map((h) => (h.port === undefined ? h.name : `${h.name}:${h.port}`)).join(',')}` : ''}`;
      return `LUN ${s.lun} of ${s.target} at ${s.hosts.map((h) => formatPortal({ host: h.name, port: h.port ?? DEFAULT_ISCSI_PORT })).join(',')}`;
  }
}

/** The device XML for a disk read from dumpxml: what libvirt added while running left out. */
export function deviceXml(d: DiskDef): string {
  const { liveAlias: _alias, ...rest } = d;
  return buildDisk(rest);
}

/** Both validated (validateDisk): same kind, same place. */
export function sameSource(a: DiskSource, b: DiskSource): boolean {
  return isDeepStrictEqual(a, b);
}
