// The typed options of the export workflow and the shape of its steps.
import type { PlanEvent, Step } from '../plan/plan.js';
import type { BackendName } from '../storage/backends.js';
import type { ExportMode } from './records.js';

/** Where the workflow's files live (both default to the documented places). */
export interface RecordDirs {
  /** Records on the machine running the command; default $XDG_STATE_HOME/virt-iscsi/exports. */
  stateDir?: string;
  /** Records on the storage host; default /var/lib/virt-iscsi/exports. */
  hostRecordDir?: string;
}

/** How a changing workflow's run is watched and stopped, whatever it changes. */
export interface RunControl {
  /** Aborting (SIGINT/SIGTERM/SIGHUP through withInterrupts): each workflow says what it does then. */
  signal?: AbortSignal;
  /** Called with the plan once it is built, before its first step runs. */
  onPlan?: (steps: readonly WorkflowStep[]) => void;
  onEvent?: (e: PlanEvent) => void;
}

/** For tests only: a way to make each step fail in turn (never reachable from the CLI). */
export interface WorkflowHooks {
  beforeApply?(stepId: StepId | string): void | Promise<void>;
}

export interface ExportOptions extends RecordDirs, RunControl {
  /** Image file or block device on the storage host (relative: to this directory, local storage only). */
  image: string;
  /** Domain name (or UUID) on the hypervisor. */
  vm: string;
  /** Default: the image's base name without extension. */
  name?: string;
  /** Host URIs; default `local`. */
  storage?: string;
  hypervisor?: string;
  /** Several hypervisors (each gets what the mode needs; the disk goes where the domain is defined). Takes precedence over `hypervisor`. */
  hypervisors?: string[];
  /** The hypervisors may differ from an earlier run's (`export NAME --add-hypervisor`): the export is extended, not refused. */
  changeHypervisors?: boolean;
  /** libvirt URI on the hypervisor; default qemu:///system. */
  connect?: string;
  /** HOST[:PORT] the hypervisor dials; default 127.0.0.1 when both are one host, else the storage host's address. */
  portal?: string;
  /**
   * Several portals of the storage host (IP[:PORT] each), one path each: mode multipath.
   * Two or more; takes the place of `portal`.
   */
  portals?: string[];
  /** Multipath: the paths that must be up before the disk goes to the VM; default all of them. */
  minPaths?: number;
  /** Default: the best the hypervisor can do (pool, then direct, then network); multipath with several portals. */
  mode?: ExportMode;
  /** Default: true for *.iso. A CD-ROM is always read-only. */
  cdrom?: boolean;
  readonly?: boolean;
  /** Require CHAP: a generated secret in the target's account and a libvirt secret. */
  chap?: boolean;
  /** false: attach to the running domain only (--no-persist). Default true. */
  persist?: boolean;
  /** For rbd:POOL/IMAGE images: how the storage host reaches the cluster (conf, client id, keyring). */
  ceph?: { conf?: string; id?: string; keyring?: string };
  /** Target software; default: detected on the storage host. */
  backend?: BackendName;
  /** tgt: a private tgtd's control port (and it listens on `portal` when virt-iscsi starts it). */
  controlPort?: number;
  /** tgt: where target records go; default /etc/tgt/conf.d. */
  confDir?: string;
  /** The stack (`apply -f`) declaring this export; default: the earlier run's. */
  stack?: string;
  /** How long to wait for another run's lock on the storage host; default 60 s. */
  lockTimeoutMs?: number;
  /** Install tgt when it is missing. */
  install?: boolean;
  /**
   * open-iscsi session recovery, seconds, in the modes whose host logs in (pool, block):
   * default the mode's (single path: 120, 5, 5); refused in the others (QEMU logs in).
   */
  replacementTimeout?: number;
  noopOutInterval?: number;
  noopOutTimeout?: number;
  /** How long to wait for LUNs/devices to appear; default 30 s. */
  waitTimeoutMs?: number;
  /** Told what a second Ctrl-C leaves behind (withInterrupts prints it). Aborting rolls back what was done. */
  setLeftHint?: (hint: () => string | undefined) => void;
  hooks?: WorkflowHooks;
  /** The clock for the IQN's date (tests). */
  now?: Date;
}

export type StepId =
  | 'daemon'
  | 'node-settings'
  | 'session-timeout'
  | 'image'
  | 'suspend'
  | 'resume'
  | 'rescan'
  | 'pool-refresh'
  | 'blockresize'
  | 'target'
  | 'acl'
  | 'storage-record'
  | 'secret'
  | 'pool-define'
  | 'pool-start'
  | 'pool-autostart'
  | 'volume'
  | 'node'
  | 'node-chap'
  | 'login'
  | 'device'
  | 'attach'
  | 'local-record'
  | 'detach'
  | 'controller'
  | 'pool-stop'
  | 'pool-undefine'
  | 'logout'
  | 'node-delete'
  | 'portal'
  | 'paths'
  | 'multipath-conf'
  | 'multipath-wwid'
  | 'multipath-map'
  | 'multipath-flush'
  | 'scsi-delete';

/** A step with its id (a StepId): what hooks, journals and plan documents know it by. */
export interface WorkflowStep extends Step {
  id: string;
}
