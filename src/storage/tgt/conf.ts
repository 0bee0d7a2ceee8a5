// Reading a target block we wrote (src/config/tgt-conf.ts targetSpecToTgtConf makes it)
// back into the LUNs it sets up, with the target-wide options applied.
import type { TgtTarget } from '../../config/tgt-conf.js';
import { ValidationError } from '../../errors.js';

/** One LUN of a block with the target-wide options applied, as tgt-admin applies them. */
export interface ResolvedLun {
  lun: number;
  path: string;
  deviceType: 'disk' | 'cd';
  readonly: boolean;
  scsiSn?: string;
  scsiId?: string;
  vendorId?: string;
  productId?: string;
  bsType?: string;
  bsOpts?: string;
}

/** The LUNs of a block we wrote (each backing-store with its number). */
export function resolveLuns(t: TgtTarget): ResolvedLun[] {
  const where = `target ${JSON.stringify(t.iqn)}`;
  return t.luns.map((l) => {
    const lun = l.lun ?? t.lun;
    if (lun === undefined) throw new ValidationError(`${where}: ${l.kind} ${JSON.stringify(l.path)} has no lun number`, 'lun');
    const deviceType = l.deviceType ?? t.deviceType ?? 'disk';
    if (deviceType !== 'disk' && deviceType !== 'cd') {
      throw new ValidationError(`${where}: device-type ${JSON.stringify(deviceType)} is not one virt-iscsi sets up (disk or cd)`, 'device-type');
    }
    const r: ResolvedLun = { lun, path: l.path, deviceType, readonly: (l.readonly ?? t.readonly) === true };
    for (const k of ['scsiSn', 'scsiId', 'vendorId', 'productId', 'bsType', 'bsOpts'] as const) {
      const v = l[k] ?? t[k];
      if (v !== undefined) r[k] = v;
    }
    return r;
  });
}
