// One interface for every iSCSI target implementation (tgt, LIO, IET). Each backend
// works through a Runner, so a storage host reached over SSH is the same code path.
import type { ChapSpec, LunSpec, TargetSpec } from '../model/target.js';
import type { ImageInfo } from './image.js';
import type { Portal } from '../names/portal.js';

export type { ChapSpec, LunSpec, TargetSpec };

export interface CreateOptions {
  /** Accept CHAP secrets outside the 12-16 characters most initiators require. */
  anySecretLength?: boolean;
  /** The LUNs' images as the caller has just checked them (checkServableImage), in LUN order: not looked at again. */
  images?: readonly ImageInfo[];
}

export interface DeleteOptions {
  /** Cut off initiators still logged in. */
  force?: boolean;
  /**
   * The caller made this target (its export record or crash journal says so), even if the
   * backend's own record of it was never written (a run killed half-way): delete it, and
   * these CHAP accounts made for it, unless another target uses them.
   */
  ours?: { accounts: readonly string[] };
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
  /** The export that made it, as the backend's record of it says (TargetSpec.export). */
  export?: string;
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

/** Whether the target software is installed, and its daemon (or kernel side) answers. */
export type DaemonStatus = 'running' | 'stopped' | 'not-installed';

/** What a backend can and cannot do, where workflows must choose another way. */
export interface BackendCapabilities {
  /** A LUN can be made to report a grown backing's size while the target serves it (growLun). */
  growLunInPlace: boolean;
  /**
   * growLun closes the LUN's backing and opens it again (tgt): requests in flight must be
   * drained first, by pausing the domains whose disk it is.
   */
  growClosesLun: boolean;
  /** CHAP secrets reach the target software other than on a command line (`ps` shows argv). */
  secretOffArgv: boolean;
  /** Initiators can be allowed by address as well as by name. */
  addressAcls: boolean;
}

export interface GrowOptions {
  /** The size the LUN's backing has now (grown first): what the target must report after. */
  sizeBytes: number;
  /** The LUN's backing as the caller knows it (its record): used when the target shows none, after a reopen that failed. */
  path?: string;
  /**
   * Where the backend closes the LUN (capabilities.growClosesLun), called right around that
   * moment, so the caller pauses the initiators' I/O for as short a time as it can: `after`
   * runs whether the change worked or not.
   */
  drain?: { before(): Promise<void>; after(): Promise<void> };
}

export interface GrowResult {
  /** What the target reports for the LUN now (what it was asked to, under a dry run). */
  sizeBytes: number;
  /** How it was done, for people: "tgtd reopened /srv/a.img". */
  how: string;
}

export interface TargetBackend {
  readonly name: 'tgt' | 'lio' | 'iet';
  readonly capabilities: BackendCapabilities;
  /** Read-only: installed? running? */
  status(): Promise<DaemonStatus>;
  /** The target is in the backend's own configuration, so it would come back at the next start. */
  persisted(iqn: string): Promise<boolean>;
  /** The secret of `user`'s CHAP account on the target, from the backend's configuration (daemons never show secrets). */
  storedChapSecret(iqn: string, user: string): Promise<string | undefined>;
  /** Makes sure the target daemon/kernel side runs; says what to install when it cannot. */
  ensureRunning(): Promise<void>;
  list(): Promise<TargetState[]>;
  show(iqn: string): Promise<TargetState | undefined>;
  /** Creates target, LUNs, ACLs and CHAP; a failed step undoes the earlier ones. */
  create(spec: TargetSpec, options?: CreateOptions): Promise<TargetState>;
  /** Removes the target and what came with it. Already gone is success. Refuses live sessions unless forced. */
  delete(iqn: string, options?: DeleteOptions): Promise<void>;
  /**
   * Sets the initiator names the target allows to exactly `initiators`, live and in its
   * persisted configuration (a hypervisor added to or removed from an export). Sessions of
   * initiators that stay allowed are not touched.
   */
  allowInitiators?(iqn: string, initiators: readonly string[]): Promise<void>;
  /**
   * Makes the target report the size the LUN's backing has grown to (`o.sizeBytes`),
   * keeping its serial, identifiers and mapping; its persistent configuration follows.
   * Refuses in one line where the backend cannot (capabilities.growLunInPlace).
   */
  growLun(iqn: string, lun: number, o: GrowOptions): Promise<GrowResult>;
  /** The command that brings back a target that is in the configuration but not live (after a daemon restart). */
  restoreHint(): string;
  /** Compares live targets with the backend's persistent configuration and repairs what it can. */
  sync?(options?: SyncOptions): Promise<SyncItem[]>;
  /**
   * Adds to the live target what `spec` has and it lacks (a LUN, an allowed initiator, a
   * CHAP account, its persistent configuration), never removing or changing what is there
   * (a LUN number serving another file stays as it is). One line per change, for people.
   * Unset: the backend cannot change a live target piece by piece.
   */
  complete?(spec: TargetSpec, options?: CreateOptions): Promise<string[]>;
  /**
   * Where the target daemon listens, daemon-wide (tgt); unset where each target carries its
   * own portals (LIO: the `portals` backend option).
   */
  listening?(): Promise<Portal[]>;
  /** Listens on one more portal, daemon-wide; `unlisten` takes it back. */
  listen?(portal: Portal): Promise<void>;
  unlisten?(portal: Portal): Promise<void>;
  /** The targets in the backend's own configuration, live or not, with the export that made each when it says so. */
  configured?(): Promise<Array<{ iqn: string; export?: string }>>;
  /** CHAP accounts the target software keeps that no target is bound to (tgt keeps accounts apart from targets). */
  unboundAccounts?(): Promise<string[]>;
  /** Removes a CHAP account; already gone is success. */
  deleteAccount?(user: string): Promise<void>;
}
