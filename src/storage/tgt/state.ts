// tgtd's live view of a target (show-parser) as the backend-neutral TargetState.
import type { LunState, TargetState } from '../backend.js';
import type { TgtRecord } from './records.js';
import type { TgtShowTarget } from './show-parser.js';

/**
 * `sizes` holds exact byte sizes of regular files by path; other LUNs (block devices)
 * get tgt's own figure, which it prints in whole megabytes of 10^6 bytes.
 */
export function toTargetState(t: TgtShowTarget, rec: TgtRecord | undefined, sizes: ReadonlyMap<string, number>): TargetState {
  const luns: LunState[] = t.luns
    .filter((l) => l.lun !== 0)
    .map((l) => {
      const s: LunState = {
        lun: l.lun,
        path: l.backingPath ?? '',
        type: l.type,
        sizeBytes: (l.backingPath !== undefined ? sizes.get(l.backingPath) : undefined) ?? l.sizeMB * 1_000_000,
        readonly: l.readonly,
        online: l.online,
        blockSize: l.blockSize,
        backingType: l.backingType,
      };
      if (l.scsiSn) s.serial = l.scsiSn;
      return s;
    });
  const state: TargetState = {
    iqn: t.iqn,
    tid: t.tid,
    luns,
    sessions: t.nexuses.map((n) => ({ initiator: n.initiator, ...(n.connections[0]?.address ? { address: n.connections[0].address } : {}) })),
    acls: [...t.acls],
    accounts: t.accounts.map((a) => a.user),
    persisted: rec?.kind === 'persistent',
    managed: rec !== undefined,
    ...(rec?.export !== undefined ? { export: rec.export } : {}),
  };
  const out = t.accounts.find((a) => a.outgoing);
  if (out) state.outgoingAccount = out.user;
  return state;
}

/**
 * `stat -L -c '%s|%F|%n' -- PATH...` prints one "SIZE|TYPE|PATH" line per path it can
 * stat, e.g. "67108864|regular file|/srv/images/disk1.img" (exit 1 when one is missing,
 * which keeps the others). Paths are the rest of the line.
 */
export function parseSizes(stdout: string): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const m = /^(\d+)\|(regular file|regular empty file)\|(.+)$/.exec(line);
    if (m) sizes.set(m[3]!, Number(m[1]));
  }
  return sizes;
}
