// The export modes as one table: what each needs from a hypervisor, where its CHAP secret
// goes, who holds the iSCSI session, and the builders that make the LUN visible, take it
// away and look at it. Every workflow (export, unexport, status, apply) reads the entry;
// none compares mode names. A new mode is a new row.
import type { Portal } from '../names/portal.js';
import type { Step } from '../plan/plan.js';
import { MULTIPATH_SESSION, SINGLE_PATH_SESSION, type SessionSettings } from '../hypervisor/session-settings.js';
import type { Virsh } from '../hypervisor/virsh.js';
import type { PoolType } from '../xml/pool.js';
import type { HypervisorFacts } from './probe.js';
import { inspectMultipath, multipathResize, multipathTeardown, multipathVisibility } from './multipath-visibility.js';
import { EXPORT_MODES, type ExportMode, type ExportRecord } from './records.js';
import {
  inspectDevice,
  inspectNothing,
  inspectPool,
  loginResize,
  loginVisibility,
  logoutTeardown,
  noResize,
  networkVisibility,
  noTeardown,
  poolResize,
  poolTeardown,
  poolVisibility,
  rbdVisibility,
  type HypervisorLeftovers,
  type ResizeContext,
  type VisibilityContext,
  type VisibilityHealth,
} from './visibility.js';

export interface ModeEntry {
  readonly name: ExportMode;
  /** For --help and errors. */
  readonly summary: string;
  /** The hypervisor's own open-iscsi logs in: it needs iscsiadm, the iscsi_tcp module and its InitiatorName file. */
  readonly hostLogin: boolean;
  /** One session per portal, assembled by dm-multipath: the hypervisor needs multipath-tools, the export two or more portals. */
  readonly multipath?: boolean;
  /** A libvirt pool of this type holds the LUN (named after the export). */
  readonly pool?: PoolType;
  /** The data path: an iSCSI target on the storage host, or QEMU's own rbd driver straight to Ceph. */
  readonly transport: 'iscsi' | 'rbd';
  /** Where the hypervisor keeps the CHAP password: a libvirt secret, or open-iscsi's node record. */
  readonly chapIn: 'libvirt-secret' | 'node-record';
  /** The session recovery settings the host's sessions get unless told (modes whose host logs in). */
  readonly sessionSettings?: Readonly<SessionSettings>;
  /** Who the target sees logged in: the host always, or QEMU only while the VM runs with the disk. */
  readonly session: 'host' | 'qemu';
  /**
   * The disk is the device one host session makes: a new login (after the session was lost)
   * makes a new device, and a running domain must be given the disk again to open it.
   * Not multipath: its map outlives its paths, so QEMU's open map stays good.
   */
  readonly replugAfterLogin?: boolean;
  /** Chosen without --mode in this order, where the hypervisor can (lower first). */
  readonly autoRank?: number;
  /** Why this hypervisor cannot do the mode, or undefined when it can. */
  unavailable(f: HypervisorFacts, host: string): string | undefined;
  /** Steps that make the LUN visible on one hypervisor and fill in the disk's source. */
  visible(c: VisibilityContext): Step[];
  /** Steps that take it away from one hypervisor (after the disk is detached). */
  teardown(virsh: Virsh, r: ExportRecord, portal: Portal, found: HypervisorLeftovers): Step[];
  /** Steps after the target reports a grown LUN, until this hypervisor's host sees it too (QEMU is told after). */
  resize(c: ResizeContext): Step[];
  /** Status: the hypervisor's side of the LUN. */
  inspect(virsh: Virsh, r: ExportRecord, portal: Portal): Promise<VisibilityHealth>;
}

const needsLogin = (mode: ExportMode) => (f: HypervisorFacts, host: string): string | undefined => {
  if (f.iscsiadm && f.iscsiTcp !== 'missing') return undefined;
  const why = f.iscsiadm ? 'the iscsi_tcp kernel module is not available there' : 'iscsiadm (open-iscsi) is not installed there';
  return `mode ${mode} needs open-iscsi to log in on ${host}, but ${why}; use --mode direct or --mode network`;
};

const needsMultipath = (f: HypervisorFacts, host: string): string | undefined =>
  needsLogin('multipath')(f, host) ??
  (f.multipathTools ? undefined : `mode multipath needs multipath-tools (multipath, multipathd) on ${host}, but it is not installed there; install it, or give one --portal`);

export const MODES: Readonly<Record<ExportMode, ModeEntry>> = {
  pool: {
    name: 'pool',
    transport: 'iscsi',
    summary: "a libvirt iscsi pool: the hypervisor's open-iscsi logs in, the VM gets the LUN's block device",
    hostLogin: true,
    pool: 'iscsi',
    chapIn: 'libvirt-secret',
    session: 'host',
    replugAfterLogin: true,
    sessionSettings: SINGLE_PATH_SESSION,
    autoRank: 1,
    unavailable: needsLogin('pool'),
    visible: poolVisibility('iscsi'),
    teardown: poolTeardown('iscsi'),
    resize: poolResize('iscsi'),
    inspect: (virsh, r) => inspectPool(virsh, r),
  },
  direct: {
    name: 'direct',
    transport: 'iscsi',
    summary: "a libvirt iscsi-direct pool: libvirt and QEMU log in themselves, the VM gets the pool's volume",
    hostLogin: false,
    pool: 'iscsi-direct',
    chapIn: 'libvirt-secret',
    session: 'qemu',
    autoRank: 2,
    unavailable: (f, host) =>
      f.iscsiDirect ? undefined : `mode direct needs libvirt's iscsi-direct pool backend on ${host} (libvirt-daemon-driver-storage-iscsi-direct); use --mode network`,
    visible: poolVisibility('iscsi-direct'),
    teardown: poolTeardown('iscsi-direct'),
    resize: poolResize('iscsi-direct'),
    inspect: (virsh, r) => inspectPool(virsh, r),
  },
  network: {
    name: 'network',
    transport: 'iscsi',
    summary: "a network disk: QEMU's own iSCSI initiator logs in when the disk is attached",
    hostLogin: false,
    chapIn: 'libvirt-secret',
    session: 'qemu',
    autoRank: 3,
    unavailable: () => undefined,
    visible: networkVisibility,
    teardown: noTeardown,
    resize: noResize,
    inspect: inspectNothing,
  },
  rbd: {
    name: 'rbd',
    transport: 'rbd',
    summary: "native Ceph RBD: QEMU's rbd driver opens the image itself (no iSCSI), the cephx key in a libvirt ceph secret",
    hostLogin: false,
    chapIn: 'libvirt-secret',
    session: 'qemu',
    autoRank: 0,
    unavailable: (f, host) => (f.qemuRbd ? undefined : `mode rbd needs QEMU's rbd driver on ${host} (qemu-block-extra); use an iSCSI mode (the tgt-rbd gateway)`),
    visible: rbdVisibility,
    resize: noResize, // QEMU's block_resize grows the image through librbd itself: the host has nothing to rescan
    teardown: noTeardown,
    inspect: inspectNothing,
  },
  multipath: {
    name: 'multipath',
    transport: 'iscsi',
    summary: "one iscsiadm login per portal, assembled by dm-multipath: the VM gets the map /dev/disk/by-id/dm-uuid-mpath-WWID",
    hostLogin: true,
    multipath: true,
    chapIn: 'node-record',
    session: 'host',
    sessionSettings: MULTIPATH_SESSION,
    unavailable: needsMultipath,
    visible: multipathVisibility,
    teardown: (virsh, r) => multipathTeardown(virsh, r),
    resize: multipathResize,
    inspect: (virsh, r) => inspectMultipath(virsh, r),
  },
  block: {
    name: 'block',
    transport: 'iscsi',
    summary: "an iscsiadm login without a pool: the VM gets the LUN's /dev/disk/by-path device",
    hostLogin: true,
    chapIn: 'node-record',
    session: 'host',
    replugAfterLogin: true,
    sessionSettings: SINGLE_PATH_SESSION,
    unavailable: needsLogin('block'),
    visible: loginVisibility,
    teardown: (virsh, r, portal) => logoutTeardown(virsh, r, portal),
    resize: loginResize,
    inspect: (virsh, r, portal) => inspectDevice(virsh, r, portal),
  },
};

export { EXPORT_MODES, type ExportMode };

export function modeOf(r: { mode: ExportMode }): ModeEntry {
  return MODES[r.mode];
}

/** The modes tried without --mode, best first: for an rbd: image native rbd first, else the iSCSI ones (for rbd: through the tgt-rbd gateway). */
export const AUTO_MODES: readonly ModeEntry[] = Object.values(MODES)
  .filter((m) => m.autoRank !== undefined)
  .sort((a, b) => a.autoRank! - b.autoRank!);

/** The automatic modes for an image: native rbd only for rbd: images. */
export function autoModes(rbdImage: boolean): readonly ModeEntry[] {
  return AUTO_MODES.filter((m) => rbdImage || m.transport === 'iscsi');
}
