// Image sizes as people write them ("10G", "512M"), in powers of 1024 as qemu-img and
// truncate read them.
import { ValidationError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** SCSI disks are addressed in 512-byte blocks; a ragged tail would be unreachable. */
export const SECTOR = 512;

/** "10G", "1.5T", "512M", "1048576" (bytes) -> bytes; a multiple of 512, above 0. */
export function parseSize(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new ValidationError(`size ${JSON.stringify(text)} is not a size: expected a number with an optional K, M, G, T or P suffix (e.g. 10G)`, 'size');
  const bytes = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new ValidationError(`size ${JSON.stringify(text)} is not a whole, positive number of bytes`, 'size');
  }
  if (bytes % SECTOR !== 0) throw new ValidationError(`size ${JSON.stringify(text)} (${bytes} bytes) is not a multiple of ${SECTOR} bytes`, 'size');
  return bytes;
}

/** 10737418240 -> "10 GiB"; exact sizes keep their unit, others get one decimal. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}
