// Taking an export's pieces away, in the order that leaves no initiator retrying against a
// missing target: on each hypervisor the disk from the domain, then what the mode made
// (the pool, or the session and node record), the libvirt secret; then the target, the
// records, the journal. Every step first looks whether its piece is there: what is
// already gone is done, so teardown can run again after a failure, or twice.
import { PrerequisiteError } from '../errors.js';
import { sameIqn } from '../names/iscsi-name.js';
import { controllerToRemove, detachDisk, findOurs, type DiskMark } from '../hypervisor/disk-steps.js';
import type { DomainView } from '../hypervisor/placement.js';
import { VIRTIO_SCSI } from '../hypervisor/placement.js';
import { secretDeleteStep } from '../hypervisor/secret-steps.js';
import type { PoolInfo, SecretListEntry } from '../hypervisor/virsh-parse.js';
import type { DeviceFlags, Virsh } from '../hypervisor/virsh.js';
import type { Portal } from '../names/portal.js';
import { sleep } from '../plan/plan.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from '../storage/backend.js';
import { buildController } from '../xml/domain.js';
import { removeJournal, type JournalPiece, type JournalState } from './journal.js';
import { modeOf } from './modes.js';
import { viewIfThere } from './probe.js';
import { isIscsi, recordPath, recordPool, recordSecretUsage, removeRecord, type ExportRecord, type HypervisorPart, type IscsiExportRecord } from './records.js';
import type { WorkflowStep } from './types.js';

/** The target is neither live nor in the backend's configuration. */
export async function targetGone(backend: TargetBackend, iqn: string): Promise<boolean> {
  try {
    if (await backend.show(iqn)) return false;
  } catch (e) {
    // The daemon is stopped: nothing is live, only its configuration can hold the target.
    if (!(e instanceof PrerequisiteError)) throw e;
  }
  return !(await backend.persisted(iqn));
}

/** Waits for logged-in initiators to leave (a detached disk's QEMU session ends a moment later). */
export async function sessionsEnd(backend: TargetBackend, iqn: string, waitMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let sessions: number;
    try {
      sessions = (await backend.show(iqn))?.sessions.length ?? 0;
    } catch (e) {
      if (e instanceof PrerequisiteError) return;
      throw e;
    }
    if (sessions === 0 || Date.now() >= deadline) return;
    await sleep(200, signal);
  }
}

/**
 * Deletes the target with its LUN, ACL, CHAP account and persisted configuration. The
 * backend refuses while initiators are logged in, unless forced: a rollback forces (the
 * only initiators are the ones it just took away), unexport forces only when told. The
 * export made the target, so it goes even when the backend's own record of it was never
 * written (a run killed half-way).
 */
export function deleteTargetStep(
  backend: TargetBackend,
  r: IscsiExportRecord,
  o: { force: boolean; waitMs: number; signal?: AbortSignal; loggedOut?: readonly string[] },
): WorkflowStep {
  return {
    id: 'target',
    host: r.storage,
    title: `delete target ${r.target} on ${r.storage}`,
    check: () => targetGone(backend, r.target),
    async apply() {
      // The hypervisors' hosts logged out a moment ago (modes whose host holds the session):
      // a session tgtd still shows from one of them is a connection whose close never
      // reached it (a path cut by a firewall drops the FIN and RST too), which tgtd does not
      // probe and keeps for ever. It holds nothing: the target goes anyway.
      const stale = async (): Promise<boolean> => {
        if (!o.loggedOut) return false;
        const left = await backend.show(r.target).then((t) => t?.sessions ?? [], () => []);
        return left.length > 0 && left.every((s) => o.loggedOut!.some((i) => sameIqn(i, s.initiator)));
      };
      if (await stale()) return backend.delete(r.target, { force: true, ours: { accounts: r.chapUser ? [r.chapUser] : [] } });
      await sessionsEnd(backend, r.target, o.waitMs, o.signal);
      await backend.delete(r.target, { force: o.force, ours: { accounts: r.chapUser ? [r.chapUser] : [] } });
    },
  };
}

/** One hypervisor of the export, as teardown reaches it. */
export interface HypervisorReach {
  part: HypervisorPart;
  virsh?: Virsh;
  /** Why it could not be reached (then its pieces stay, and are listed). */
  error?: string;
  /** The record's portal resolved there. */
  portal?: Portal;
}

export interface TeardownContext {
  record: ExportRecord;
  hypervisors: HypervisorReach[];
  /** The storage host's target software (every export but native rbd). */
  backend?: TargetBackend;
  storage: Runner;
  local: Runner;
  mark: DiskMark;
  stateDir: string;
  hostRecordDir: string;
  force: boolean;
  /** What a run that did not end left behind (a controller it added). */
  journal?: JournalState;
  /** How long to wait for sessions to end before deleting the target. */
  sessionWaitMs?: number;
  signal?: AbortSignal;
}

/** What one hypervisor still holds, looked at once before anything is removed. */
export interface HypervisorFacts {
  /** Undefined: the domain is not there. */
  view?: DomainView;
  pool?: PoolInfo;
  secret?: SecretListEntry;
}

export interface TeardownFacts {
  hypervisors: Map<string, HypervisorFacts>;
  targetGone: boolean;
  storageRecord: boolean;
  localRecord: boolean;
}

export async function gatherTeardown(c: TeardownContext): Promise<TeardownFacts> {
  const r = c.record;
  const pool = recordPool(r);
  const usage = recordSecretUsage(r);
  const reachable = c.hypervisors.filter((h) => h.virsh);
  const secretType = isIscsi(r) ? 'iscsi' : 'ceph';
  const [hv, gone, storageRecord, localRecord] = await Promise.all([
    Promise.all(
      reachable.map(async (h): Promise<[string, HypervisorFacts]> => {
        const [view, p, secret] = await Promise.all([
          viewIfThere(h.virsh!, r.vm),
          pool ? h.virsh!.poolInfo(pool) : Promise.resolve(undefined),
          usage ? h.virsh!.secretByUsage(usage, secretType) : Promise.resolve(undefined),
        ]);
        return [h.part.uri, { ...(view ? { view } : {}), ...(p ? { pool: p } : {}), ...(secret ? { secret } : {}) }];
      }),
    ),
    c.backend && isIscsi(r) ? targetGone(c.backend, r.target) : Promise.resolve(true),
    c.storage.readFile(recordPath(c.hostRecordDir, r.name)),
    c.local.readFile(recordPath(c.stateDir, r.name)),
  ]);
  return { hypervisors: new Map(hv), targetGone: gone, storageRecord: storageRecord !== undefined, localRecord: localRecord !== undefined };
}

/** The controller the export added on this hypervisor: the record says so, or a crashed run's journal. */
function addedController(c: TeardownContext, h: HypervisorReach): DeviceFlags | undefined {
  const fromJournal = c.journal?.pieces.filter((p): p is Extract<JournalPiece, { kind: 'controller' }> => p.kind === 'controller' && p.host === h.part.uri) ?? [];
  const flags = [h.part.attachment?.controller, ...fromJournal.map((p) => p.flags)].filter((f): f is DeviceFlags => f !== undefined);
  if (flags.length === 0) return undefined;
  return { live: flags.some((f) => f.live), config: flags.some((f) => f.config) };
}

/** One reachable hypervisor's steps: the disk, the controller it needed, what the mode made, the secret. */
export function hypervisorTeardown(c: TeardownContext, h: HypervisorReach, f: HypervisorFacts): WorkflowStep[] {
  const r = c.record;
  const virsh = h.virsh!;
  const host = h.part.uri;
  const view = f.view;
  const on = c.hypervisors.length > 1 ? ` on ${host}` : '';
  const steps: WorkflowStep[] = [
    {
      id: 'detach',
      host,
      title: `take the export's ${r.cdrom ? 'cdrom' : 'disk'} away from domain ${r.vm}${on}`,
      check: async () => view === undefined || findOurs(view, c.mark) === undefined,
      apply: () => detachDisk(virsh, view!, c.mark),
    },
  ];
  const added = addedController(c, h);
  if (added) {
    const flags = view ? controllerToRemove(view, c.mark, added) : { live: false, config: false };
    steps.push({
      id: 'controller',
      host,
      title: `remove the virtio-scsi controller the export added to domain ${r.vm}${on} (no other disk is on it)`,
      check: async () => !flags.live && !flags.config,
      apply: () => virsh.detachDevice(r.vm, buildController(VIRTIO_SCSI), flags),
    });
  }
  for (const s of modeOf(r).teardown(virsh, r, h.portal!, { pool: f.pool })) steps.push({ ...s, id: s.id ?? 'step' });
  const usage = recordSecretUsage(r);
  if (usage) steps.push({ ...secretDeleteStep(virsh, usage, f.secret ? { uuid: f.secret.uuid } : null, isIscsi(r) ? 'iscsi' : 'ceph'), id: 'secret' });
  return steps;
}

/**
 * The steps that take the export apart, each skipped when `f` says its piece is gone. With
 * a hypervisor out of reach, its pieces stay and so do the target (its session would
 * retry against a missing target for ever) and the records (the next unexport finishes),
 * unless forced.
 */
export function teardownSteps(c: TeardownContext, f: TeardownFacts): WorkflowStep[] {
  const r = c.record;
  const steps: WorkflowStep[] = [];
  for (const h of c.hypervisors) if (h.virsh) steps.push(...hypervisorTeardown(c, h, f.hypervisors.get(h.part.uri) ?? {}));
  const unreachable = c.hypervisors.filter((h) => !h.virsh);
  if (unreachable.length > 0 && !c.force) return steps;
  // A dry run only recorded the detach: the VM's session stays, so there is nothing to wait for.
  const dryRun = c.storage.dryRun === true;
  if (c.backend && isIscsi(r)) {
    const loggedOut = modeOf(r).session === 'host' ? { loggedOut: c.hypervisors.map((h) => h.part.initiator) } : {};
    const target = deleteTargetStep(c.backend, r, { force: c.force, waitMs: dryRun ? 0 : (c.sessionWaitMs ?? 15_000), ...loggedOut, ...(c.signal ? { signal: c.signal } : {}) });
    steps.push({ ...target, check: async () => f.targetGone });
  }
  steps.push(
    {
      id: 'storage-record',
      host: c.storage.host,
      title: `remove ${recordPath(c.hostRecordDir, r.name)} on ${c.storage.host}`,
      check: async () => !f.storageRecord,
      apply: () => removeRecord(c.storage, c.hostRecordDir, r.name),
    },
    {
      id: 'local-record',
      host: 'local',
      title: `remove ${recordPath(c.stateDir, r.name)}${c.journal ? ' and the journal of the interrupted run' : ''}`,
      check: async () => !f.localRecord && c.journal === undefined,
      async apply() {
        await removeRecord(c.local, c.stateDir, r.name);
        if (c.journal && !dryRun) await removeJournal(c.stateDir, r.name);
      },
    },
  );
  return steps;
}
