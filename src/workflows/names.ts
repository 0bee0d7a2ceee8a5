// The names one export gives the things it makes, all derived from the export's NAME so
// that teardown, status and a second run find them again from the name alone.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { posix } from 'node:path';
import { ValidationError } from '../errors.js';
import { generateIqn, parseIscsiName, toIqnIdentifier } from '../names/iscsi-name.js';

/** An export name: short, lower case, safe in an IQN, a libvirt name, a file name and a CHAP user. */
export const EXPORT_NAME = /^[a-z0-9][a-z0-9.-]{0,47}$/;

export function checkExportName(name: string): string {
  if (!EXPORT_NAME.test(name)) {
    throw new ValidationError(
      `export name ${JSON.stringify(name)} is not allowed: expected 1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit (give --name)`,
      'name',
    );
  }
  return name;
}

/** disk.img -> disk, "Debian 12.iso" -> debian-12: the default export name. */
export function defaultExportName(image: string): string {
  return toIqnIdentifier(posix.parse(image).name);
}

/** ISO images are CD-ROMs unless told otherwise. */
export const looksLikeIso = (image: string): boolean => /\.iso$/i.test(image);

export const poolName = (name: string): string => `virt-iscsi-${name}`;
export const secretUsage = (name: string): string => `virt-iscsi-${name}`;
/** A user alias (`ua-`): libvirt keeps it in both configurations, so it marks the disk as ours. */
export const diskAlias = (name: string): string => `ua-virt-iscsi-${name}`;
/** CHAP user names take no '.', and export names take no '_': the mapping stays one to one. */
export const chapUser = (name: string): string => `virt-iscsi-${name.replace(/\./g, '_')}`;
export const secretDescription = (name: string): string => `virt-iscsi: CHAP for export ${name}`;
export const cephSecretDescription = (name: string): string => `virt-iscsi: cephx key for export ${name}`;

/**
 * The naming authority of a host from `hostname -f` (e.g. "stor1.example.com"). A name
 * without a dot is not a domain: it becomes HOST.localdomain. Characters a DNS label
 * cannot hold become '-'.
 */
export function hostAuthority(fqdn: string): string {
  const clean = fqdn
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .split('.')
    .map((l) => l.replace(/^-+|-+$/g, ''))
    .filter(Boolean)
    .join('.');
  if (clean === '') return 'localhost.localdomain';
  return clean.includes('.') ? clean : `${clean}.localdomain`;
}

/** iqn.YYYY-MM.<reversed storage host domain>:NAME, e.g. iqn.2026-11.com.example.stor1:disk1. */
export function exportTargetIqn(authority: string, name: string, now = new Date()): string {
  return generateIqn({ authority, suffix: name, now });
}

/**
 * The initiator name a hypervisor without /etc/iscsi/initiatorname.iscsi uses for
 * iscsi-direct pools and network disks: the same for every export from that host (it
 * hashes the host's /etc/machine-id, or its host name), under virt-iscsi's own authority.
 */
export function generatedInitiator(hostname: string, machineId: string | undefined): string {
  const label = toIqnIdentifier(hostname.split('.')[0] ?? '').replace(/[.:]/g, '-').slice(0, 32) || 'host';
  const hash = createHash('sha256')
    .update(machineId?.trim() || hostname)
    .digest('hex')
    .slice(0, 8);
  return parseIscsiName(`iqn.2024-01.dev.virt-iscsi:initiator.${label}.${hash}`, 'generated initiator name');
}

/** A SCSI serial for the LUN: what the hypervisor checks it got (a reused LUN number can show a stale device). */
export function newSerial(): string {
  return `VI${randomBytes(6).toString('hex').toUpperCase()}`;
}

const SECRET_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** 16 characters (the most initiators accept), no look-alikes. */
export function newChapSecret(): string {
  return Array.from({ length: 16 }, () => SECRET_ALPHABET[randomInt(SECRET_ALPHABET.length)]).join('');
}
