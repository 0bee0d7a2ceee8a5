/**
 * virt-iscsi as a library: export disk images and ISOs from a Linux storage host to libvirt
 * VMs over iSCSI, from TypeScript. The CLI is a thin layer over exactly these functions.
 *
 * ```ts
 * import { Session, exportImage, unexport } from 'virt-iscsi';
 *
 * const session = new Session({ dryRun: true });          // record every change instead of making it
 * try {
 *   const r = await exportImage(session, { image: '/srv/iscsi/web1.img', vm: 'web1' });
 *   console.log(r.record.target, session.renderPlan());
 * } finally {
 *   await session.close();
 * }
 * ```
 *
 * Hosts are URIs: `local` or `ssh://[user@]host[:port]`; a Session opens one Runner per host
 * and reuses it, and asks each host a question once until one of its own changes may alter
 * the answer (call `session.forget()` between commands of a Session kept for longer, to see
 * what others changed meanwhile). Every failure is a {@link VirtIscsiError} whose `message` is one line for
 * people; bad input is a {@link ValidationError} raised before anything changes.
 *
 * @packageDocumentation
 */

// ---- the main job -------------------------------------------------------------------------

/**
 * One command's connections: a Runner per host URI, opened once, recording instead of
 * changing when `dryRun` is set (the recorded plan is in `recorded`, and `renderPlan()`
 * prints it as shell). Always `close()` it.
 */
export { Session, type SessionOptions } from './runner/session.js';

/**
 * Exports an image (or block device) on the storage host to a VM on one or more
 * hypervisors: target, LUN and ACL, then on each hypervisor what the mode needs (pool,
 * login or nothing), then the disk; rolled back when a step fails or `signal` aborts.
 * Running it again with the same options changes nothing.
 */
export { exportImage, undoCommand, type ExportResult } from './workflows/export.js';
export type { ExportOptions, RecordDirs, RunControl, WorkflowStep } from './workflows/types.js';

/** Takes an export apart: every piece its records (or a crashed run's journal) name, last made first. */
export { unexportImage, unexportImage as unexport, PartialUnexportError, type UnexportOptions, type UnexportResult } from './workflows/unexport.js';

/**
 * Grows an export's disk while its VM runs: the image as it was made, the target, each
 * hypervisor's host, and QEMU (which tells the guest). Never shrinks; journaled and rolled
 * back like export.
 */
export { resizeExport, resizeExport as resize, targetSize, type ImageGrowth, type ResizeOptions, type ResizeResult, type ResizePause } from './workflows/resize.js';

/** open-iscsi session recovery on the hypervisors' sessions (modes whose host logs in). */
export { SINGLE_PATH_SESSION, type SessionSettings } from './hypervisor/session-settings.js';

/** Every export known here (and on a storage host), each piece's health on every host; `statusReport` adds the version and unreadable records. */
export { exportStatus, exportStatus as status, statusReport, STATUS_VERSION, type ExportHealth, type ExportStatus, type HypervisorStatus, type StatusOptions, type StatusReport } from './workflows/status.js';

/** Declared sets of exports and pools (stack files): converge to one (`applyStack`), or take it away (`destroyStack`). */
export { applyStack, applyStack as apply, destroyStack, destroyStack as destroy, planStack, StackError, type StackChange, type StackOptions, type StackResult } from './workflows/stack.js';
export { parseStack, type StackExport, type StackExportSettings, type StackPool, type StackSpec } from './workflows/stack-file.js';

/** The export modes, one row each: what a hypervisor needs for it and what it makes. */
export { AUTO_MODES, EXPORT_MODES, MODES, type ExportMode, type ModeEntry } from './workflows/modes.js';
/** What an export leaves behind: its record, read back and checked like a flag. */
export { listRecords, localStateDir, parseRecord, readRecord, type Attachment, type ExportRecord, type HypervisorPart } from './workflows/records.js';

// ---- hosts --------------------------------------------------------------------------------

/** A Runner for a host URI: `local` (execa) or `ssh://[user@]host[:port]` (one ssh2 connection, known_hosts checked). */
export { openRunner, type SshOptions } from './runner/open.js';
export type { Runner, RunOptions, RunResult } from './runner/types.js';
/** The one function that quotes an argv for a POSIX shell (SSH command lines, printed plans). */
export { quoteArg, quoteArgv } from './runner/quote.js';
export { parseHostUri, formatHostUri, type HostSpec } from './runner/host-uri.js';

// ---- drivers ----------------------------------------------------------------------------

/** Typed virsh over a Runner; every libvirt URI is checked (no URI may name a program to run). */
export { Virsh, DEFAULT_LIBVIRT_URI } from './hypervisor/virsh.js';
export { checkLibvirtUri } from './names/libvirt-uri.js';
/** Typed iscsiadm (open-iscsi) over a Runner. */
export { Iscsiadm } from './hypervisor/iscsiadm.js';
/** iSCSI target software behind one interface: tgt, LIO, IET. */
export { createBackend, detectBackend, BACKEND_NAMES, type BackendName } from './storage/backends.js';
export type { BackendCapabilities, TargetBackend, TargetState } from './storage/backend.js';
export type { ChapSpec, LunSpec, TargetSpec } from './model/target.js';

// ---- pure data: names and libvirt XML -------------------------------------------------------

/** iSCSI names (RFC 3720/7143): check, normalise, generate. */
export { checkIscsiName, generateIqn, parseIscsiName, sameIqn } from './names/iscsi-name.js';
/** Portals: HOST[:PORT], IPv6 in brackets. */
export { formatPortal, parsePortal, type Portal } from './names/portal.js';
/** The /dev/disk/by-path names udev gives iSCSI LUNs. */
export { byPathFor, parseByPath } from './names/by-path.js';
/** libvirt XML, built and parsed without I/O: disks, pools, secrets. */
export { buildDisk, parseDisk, cdromDisk, validateDisk, type DiskDef, type DiskSource } from './xml/disk.js';
export { buildPool, parsePool, poolDef, type PoolDef, type PoolType } from './xml/pool.js';
export { buildSecret, parseSecret, iscsiChapSecret, cephKeySecret, type SecretDef } from './xml/secret.js';

// ---- errors -------------------------------------------------------------------------------

/** Every error virt-iscsi throws on purpose; `message` is one line for people. */
export { VirtIscsiError, ValidationError, CommandError, ConnectError, HostKeyError, TimeoutError, PrerequisiteError } from './errors.js';
export { InterruptedError, RollbackError, withInterrupts } from './plan/plan.js';
export { LockTimeoutError } from './runner/lock.js';
