// One interface for every iSCSI target implementation (tgt, LIO, IET). Each backend
// works through a Runner, so a storage host reached over SSH is the same code path.
import type { ImageInfo } from './image.js';

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
}

export interface CreateOptions {
  /** Accept CHAP secrets outside the 12-16 characters most initiators require. */
  anySecretLength?: boolean;
  /** The LUNs' images as the caller has just checked them (checkServableImage), in LUN order: not looked at again. */
  images?: readonly ImageInfo[];
}

export interface LunState {
  lun: number;
  path: string;
  type: string;
  sizeBytes: number;
  readonly: boolean;
  online: boolean;
  serial?: string;
  blockSize?: number;
  /** How the backend reads the path (tgt: rdwr, aio, mmc...). */
  backingType?: string;
}

/** A logged-in initiator (tgt's I_T nexus). */
export interface SessionInfo {
  initiator: string;
  address?: string;
}

export interface TargetState {
  iqn: string;
  /** tgt's target id; other backends leave it unset. */
  tid?: number;
  luns: LunState[];
  sessions: SessionInfo[];
  /** Bound initiator addresses / names. */
  acls: string[];
  /** CHAP user names (never secrets). */
  accounts: string[];
  /** Whether the target is in the backend's persistent configuration. */
  persisted?: boolean;
  /** Whether virt-iscsi created it (it keeps a record of the targets it made). */
  managed?: boolean;
  /** The mutual-CHAP (outgoing) user, when one is bound. Also listed in `accounts`. */
  outgoingAccount?: string;
}

/** What `sync` found for one target, and what it did about it. */
export interface SyncItem {
  iqn: string;
  status: 'in-sync' | 'restored' | 'repaired' | 'drift' | 'stale-record' | 'unmanaged' | 'unreadable' | 'failed';
  /** Each difference or action, for people. */
  details: string[];
}

export interface SyncOptions {
  /** Also repair targets that have initiators logged in (their sessions may see LUNs change). */
  force?: boolean;
}

export interface TargetBackend {
  readonly name: 'tgt' | 'lio' | 'iet';
  /** Makes sure the target daemon/kernel side runs; says what to install when it cannot. */
  ensureRunning(): Promise<void>;
  list(): Promise<TargetState[]>;
  show(iqn: string): Promise<TargetState | undefined>;
  /** Creates target, LUNs, ACLs and CHAP; a failed step undoes the earlier ones. */
  create(spec: TargetSpec, options?: CreateOptions): Promise<TargetState>;
  /** Removes the target and what came with it. Already gone is success. Refuses live sessions unless forced. */
  delete(iqn: string, options?: { force?: boolean }): Promise<void>;
  /** Compares live targets with the backend's persistent configuration and repairs what it can. */
  sync?(options?: SyncOptions): Promise<SyncItem[]>;
}
