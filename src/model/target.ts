// What a target is made of, as data: the LUNs, who may log in, CHAP. Every backend
// (tgt, LIO, IET) and every configuration file model (targets.conf, ietd.conf) takes
// this shape, so it sits below both.

/** One LUN to export. LUN 0 is the target's controller and never a user LUN. */
export interface LunSpec {
  lun: number;
  /** Image file or block device on the storage host. */
  path: string;
  /** Serve as an MMC (CD-ROM) device; always read-only. */
  cdrom?: boolean;
  readonly?: boolean;
  /** SCSI serial (tgt scsi_sn / LIO wwn): lets the initiator check it got this LUN. */
  serial?: string;
  /**
   * tgt's scsi_id: the hex digits its NAA designator (the WWID dm-multipath names maps by)
   * is built from; tgt's default repeats across targets (see storage/wwid.ts).
   */
  scsiId?: string;
  vendorId?: string;
  productId?: string;
  /**
   * How the backend reads the file (tgt --bstype: rdwr, aio, ...); the backend's default
   * when unset. `rbd` (tgt only): `path` is POOL/IMAGE of an RBD image (see rbdLun).
   */
  bsType?: string;
  /** Options of the backing store (tgt --bsopts), e.g. "conf=FILE;id=USER" for rbd. */
  bsOpts?: string;
}

/** CHAP: `user`/`secret` authenticate the initiator; `mutual*` authenticate the target back. */
export interface ChapSpec {
  user: string;
  secret: string;
  mutualUser?: string;
  mutualSecret?: string;
}

export interface TargetSpec {
  iqn: string;
  luns: LunSpec[];
  /** Who may log in: IPv4/IPv6 address, CIDR, initiator IQN, or 'ALL'. Empty: nobody. */
  allow: string[];
  chap?: ChapSpec;
  /** Also write the target to the backend's configuration so it survives a restart. */
  persist: boolean;
  /** tgt's target id; a free one is picked when unset. Other backends ignore it. */
  tid?: number;
  /**
   * The export that makes the target (its name), noted where the backend records the target
   * (tgt: its conf.d file), so an export's target left behind can be told from one made
   * with `target create`. Backends without such a place ignore it.
   */
  export?: string;
}
