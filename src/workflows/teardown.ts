// Taking an export's pieces away, in the order that leaves no initiator retrying against a
// missing target (pitfall 4): the disk from the domain, the pool (or the iscsiadm session
// and node record), the libvirt secret, the target, the records. Every step first looks
// whether its piece is there: what is already gone is done (pitfall 5), so teardown can
// run again after a failure, or twice.
import { PrerequisiteError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { isMissing } from '../hypervisor/virsh-errors.js';
import { VIRTIO_SCSI, type DomainView } from '../hypervisor/placement.js';
import type { PoolInfo, SecretListEntry } from '../hypervisor/virsh-parse.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { parsePortal, type Portal, samePortal } from '../names/portal.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from '../storage/backend.js';
import { TgtBackend } from '../storage/tgt/backend.js';
import { recordFile } from '../storage/tgt/records.js';
import { buildController } from '../xml/domain.js';
import { controllerToRemove, detachDisk, findOurs, viewIfThere, type DiskMark } from './disk.js';
import { recordPath, removeRecord, type ExportRecord } from './records.js';
import type { WorkflowStep } from './types.js';
import { sameIqn } from '../names/iscsi-name.js';


/** The target is neither live nor recorded in the backend's configuration. */
export async function targetGone(backend: TargetBackend, iqn: string): Promise<boolean> {
  try {
    if (await backend.show(iqn)) return false;
  } catch (e) {
    // The daemon is stopped: nothing is live, only its configuration can hold the target.
    if (!(e instanceof PrerequisiteError)) throw e;
  }
  if (backend instanceof TgtBackend) {
    for (const kind of ['persistent', 'live-only'] as const) {
      if ((await backend.runner.readFile(recordFile(backend.confDir, iqn, kind))) !== undefined) return false;
    }
  }
  return true;
}

/** Waits for logged-in initiators to leave (a detached disk's QEMU session ends a moment later). */
async function sessionsEnd(backend: TargetBackend, iqn: string, waitMs: number): Promise<void> {
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
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Deletes the target with its LUN, ACL, CHAP account and persisted configuration. The
 * backend refuses while initiators are logged in, unless forced: a rollback forces (the
 * only initiator is the disk it just took away), unexport forces only when told.
 */
export function deleteTargetStep(backend: TargetBackend, r: ExportRecord, o: { force: boolean; waitMs: number }): WorkflowStep {
  return {
    id: 'target',
    title: `delete target ${r.target} on ${r.storage}`,
    check: () => targetGone(backend, r.target),
    async apply() {
      await sessionsEnd(backend, r.target, o.waitMs);
      await backend.delete(r.target, { force: o.force });
    },
  };
}

export interface TeardownContext {
  record: ExportRecord;
  virsh: Virsh;
  backend: TargetBackend;
  storage: Runner;
  local: Runner;
  mark: DiskMark;
  stateDir: string;
  hostRecordDir: string;
  force: boolean;
  /** How long to wait for sessions to end before deleting the target. */
  sessionWaitMs?: number;
}

/** What is still there, looked at once, on both hosts at the same time, before anything is removed. */
export interface TeardownFacts {
  /** Undefined: the domain is gone. */
  view?: DomainView;
  pool?: PoolInfo;
  secret?: SecretListEntry;
  targetGone: boolean;
  storageRecord: boolean;
  localRecord: boolean;
}

export async function gatherTeardown(c: TeardownContext): Promise<TeardownFacts> {
  const r = c.record;
  const [view, pool, secret, gone, storageRecord, localRecord] = await Promise.all([
    viewIfThere(c.virsh, r.vm),
    r.pool ? c.virsh.poolInfo(r.pool) : Promise.resolve(undefined),
    r.secretUsage ? c.virsh.secretByUsage(r.secretUsage) : Promise.resolve(undefined),
    targetGone(c.backend, r.target),
    c.storage.readFile(recordPath(c.hostRecordDir, r.name)),
    c.local.readFile(recordPath(c.stateDir, r.name)),
  ]);
  return {
    ...(view ? { view } : {}),
    ...(pool ? { pool } : {}),
    ...(secret ? { secret } : {}),
    targetGone: gone,
    storageRecord: storageRecord !== undefined,
    localRecord: localRecord !== undefined,
  };
}

function poolTeardown(virsh: Virsh, name: string, pool: PoolInfo | undefined): WorkflowStep[] {
  return [
    {
      id: 'pool-stop',
      title: `stop pool ${name}`,
      check: async () => pool?.state !== 'running',
      apply: () => virsh.poolDestroy(name),
    },
    {
      id: 'pool-undefine',
      title: `undefine pool ${name}`,
      check: async () => pool === undefined,
      async apply() {
        try {
          await virsh.poolUndefine(name);
        } catch (e) {
          if (!isMissing(e, 'pool')) throw e;
        }
      },
    },
  ];
}

/** Logout (block mode), then the node record (block, and what an iscsi pool's login left). */
function sessionTeardown(iscsiadm: Iscsiadm, r: ExportRecord, portal: Portal): WorkflowStep[] {
  const steps: WorkflowStep[] = [];
  if (r.mode === 'block') {
    steps.push({
      id: 'logout',
      title: `log out of ${r.target} at ${r.portal}`,
      check: async () => !(await iscsiadm.sessions()).some((s) => sameIqn(s.iqn, r.target) && samePortal(s.portal, portal)),
      apply: () => iscsiadm.logout(r.target, portal),
    });
  }
  steps.push({
    id: 'node-delete',
    title: `delete the open-iscsi node record for ${r.target} at ${r.portal}`,
    check: async () => !(await iscsiadm.nodes()).some((n) => sameIqn(n.iqn, r.target) && samePortal(n.portal, portal)),
    apply: () => iscsiadm.deleteNode(r.target, portal),
  });
  return steps;
}

/** The steps that take the export apart, each skipped when `f` says its piece is gone. */
export function teardownSteps(c: TeardownContext, f: TeardownFacts): WorkflowStep[] {
  const r = c.record;
  const virsh = c.virsh;
  const view = f.view;
  const steps: WorkflowStep[] = [
    {
      id: 'detach',
      title: `take the export's ${r.cdrom ? 'cdrom' : 'disk'} away from domain ${r.vm}`,
      check: async () => view === undefined || findOurs(view, c.mark) === undefined,
      apply: () => detachDisk(virsh, view!, c.mark),
    },
  ];
  // Only the local record knows the export added the controller (the storage host's has no attachment).
  const added = r.attachment?.controller;
  if (added) {
    const flags = view ? controllerToRemove(view, c.mark, added) : { live: false, config: false };
    steps.push({
      id: 'controller',
      title: `remove the virtio-scsi controller the export added to domain ${r.vm} (no other disk is on it)`,
      check: async () => !flags.live && !flags.config,
      apply: () => virsh.detachDevice(r.vm, buildController(VIRTIO_SCSI), flags),
    });
  }
  if (r.pool) steps.push(...poolTeardown(virsh, r.pool, f.pool));
  if (r.mode === 'pool' || r.mode === 'block') steps.push(...sessionTeardown(new Iscsiadm(virsh.runner), r, parsePortal(r.portal)));
  const secret = f.secret;
  if (r.secretUsage) {
    steps.push({
      id: 'secret',
      title: `undefine libvirt secret ${r.secretUsage}`,
      check: async () => secret === undefined,
      apply: () => virsh.secretUndefine(secret!.uuid),
    });
  }
  // A dry run only recorded the detach: the VM's session stays, so there is nothing to wait for.
  const dryRun = c.storage.dryRun === true;
  const target = deleteTargetStep(c.backend, r, { force: c.force, waitMs: dryRun ? 0 : (c.sessionWaitMs ?? 15_000) });
  steps.push(
    { ...target, check: async () => f.targetGone },
    {
      id: 'storage-record',
      title: `remove ${recordPath(c.hostRecordDir, r.name)} on ${c.storage.host}`,
      check: async () => !f.storageRecord,
      apply: () => removeRecord(c.storage, c.hostRecordDir, r.name),
    },
    {
      id: 'local-record',
      title: `remove ${recordPath(c.stateDir, r.name)}`,
      check: async () => !f.localRecord,
      apply: () => removeRecord(c.local, c.stateDir, r.name),
    },
  );
  return steps;
}
