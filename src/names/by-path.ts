// /dev/disk/by-path names of iSCSI LUNs, as udev's path_id builds them from the
// session's sysfs attributes: `ip-<persistent_address>:<port>-iscsi-<target>-lun-<N>`.
// The kernel prints an IPv6 persistent_address without brackets, so udev's link is
// `ip-fe80::1:3260-iscsi-...` (seen in democratic-csi #353); and the address is always
// an IP, never a host name, so a portal given by name must be resolved first.
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';
import { checkIscsiName, parseIscsiName } from './iscsi-name.js';
import type { Portal } from './portal.js';

export const BY_PATH_DIR = '/dev/disk/by-path';

export interface ByPathId {
  /** An IP address (v4 or v6). */
  address: string;
  port: number;
  iqn: string;
  lun: number;
}

export function byPathName(id: ByPathId): string {
  if (isIP(id.address) === 0) {
    throw new ValidationError(`by-path names use the portal's IP address; ${JSON.stringify(id.address)} is not one (resolve it first)`, 'portal');
  }
  if (!Number.isInteger(id.port) || id.port < 1 || id.port > 65535) {
    throw new ValidationError(`port ${String(id.port)} is not an integer from 1 to 65535`, 'port');
  }
  if (!Number.isInteger(id.lun) || id.lun < 0 || id.lun > 65535) {
    throw new ValidationError(`LUN ${String(id.lun)} is not an integer from 0 to 65535`, 'lun');
  }
  return `ip-${id.address}:${id.port}-iscsi-${parseIscsiName(id.iqn, 'target')}-lun-${id.lun}`;
}

export function byPathDevice(id: ByPathId): string {
  return `${BY_PATH_DIR}/${byPathName(id)}`;
}

export function byPathFor(portal: Portal, iqn: string, lun: number): string {
  return byPathDevice({ address: portal.host, port: portal.port, iqn, lun });
}

/**
 * Reads a by-path name (or full path) back; undefined when it is not an iSCSI LUN's.
 * The address is the shortest prefix followed by `:PORT-iscsi-`: an address never holds
 * "-iscsi-", while a target name may (iqn.2001-04.com.example:1-iscsi-x).
 */
export function parseByPath(text: string): ByPathId | undefined {
  const name = text.startsWith(`${BY_PATH_DIR}/`) ? text.slice(BY_PATH_DIR.length + 1) : text;
  const m = /^ip-(.+?):(\d{1,5})-iscsi-(.+)-lun-(\d{1,5})$/.exec(name);
  if (!m || isIP(m[1]!) === 0) return undefined;
  const port = Number(m[2]);
  const lun = Number(m[4]);
  const iqn = checkIscsiName(m[3]!);
  if (port < 1 || port > 65535 || lun > 65535 || !iqn.ok) return undefined;
  return { address: m[1]!, port, iqn: iqn.name, lun };
}
