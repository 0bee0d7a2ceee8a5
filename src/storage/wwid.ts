// The WWID each backend gives a LUN, from the LUN's serial: dm-multipath names its map by
// the WWID and merges every path that shows the same one, so two LUNs must never share it.
//
// tgt 1.0.85 builds the LUN's NAA-6 designator (VPD page 0x83), which udev and multipath
// take as the WWID, from the hex digits of the LUN's scsi_id (its last 31, right-aligned,
// other characters read as 0). Its default scsi_id is "IET     TTTTLLLL" (target id, LUN):
// the same WWID for the same tid and LUN on every tgtd, and again for the next target that
// reuses a tid. So every LUN an export makes gets a scsi_id of 24 hex digits of its own,
// hashed from its serial (random per export, kept in the record): the WWID is then '36'
// and those digits zero-padded to 31, e.g. scsi_id f1c7a0e5b2d94c38a6e1d0b7 ->
// 360000000f1c7a0e5b2d94c38a6e1d0b7.
//
// LIO (kernel 6.1, target_core_spc.c) makes an NAA-6 IEEE Registered Extended designator:
// company id 0x001405 then up to 25 hex digits taken from the unit serial (wwn), skipping
// other characters, the rest zero: serial VI3F2A9C01B7D4 -> 360014053f2a9c01b7d40000000000000.
import { createHash } from 'node:crypto';
import type { BackendName } from './backends.js';

/** The scsi_id of a LUN with this serial: 24 hex digits (tgt builds the WWID from it; the other backends do not read it). */
export function lunScsiId(serial: string): string {
  return createHash('sha256').update(`virt-iscsi scsi_id ${serial}`).digest('hex').slice(0, 24);
}

/** The WWID tgt gives a LUN with this scsi_id: '36' and its last 31 hex digits, zero-padded. */
export function tgtWwid(scsiId: string): string {
  return `36${[...scsiId.toLowerCase()].map((c) => (/[0-9a-f]/.test(c) ? c : '0')).join('').slice(-31).padStart(31, '0')}`;
}

const hexDigits = (s: string): string => s.toLowerCase().replace(/[^0-9a-f]/g, '');

const WWIDS: Readonly<Record<BackendName, ((serial: string) => string) | undefined>> = {
  tgt: (serial) => tgtWwid(lunScsiId(serial)),
  lio: (serial) => `36001405${hexDigits(serial).slice(0, 25).padEnd(25, '0')}`,
  // IET's ScsiId is 16 bytes at most: not enough for a WWID of its own (multipath refuses it).
  iet: undefined,
};

/** The WWID of a LUN with this serial on this backend; undefined when the backend cannot give each LUN its own. */
export function lunWwid(backend: BackendName, serial: string): string | undefined {
  return WWIDS[backend]?.(serial);
}
