// `export`: one image on the storage host to a VM on one or more hypervisors, as a plan of
// steps with rollback:
//   target daemon -> storage host record -> target + LUN + ACL (+ CHAP), persisted ->
//   on each hypervisor: libvirt secret (CHAP) -> what the mode makes (pool, or login) ->
//   attach where the domain is defined (or media into an empty drive) -> local record.
// Every step can tell it is already done, so a second run changes nothing; a failure, or
// SIGINT/SIGTERM/SIGHUP through `signal`, undoes what this run did, last step first. A
// journal written before each change lets `unexport` undo a run killed between two steps.
import type { ChapCredentials } from '../hypervisor/iscsiadm.js';
import { attachStep, type Attachment, type DiskMark } from '../hypervisor/disk-steps.js';
import { secretStep } from '../hypervisor/secret-steps.js';
import { PrerequisiteError, ValidationError } from '../errors.js';
import { isIP } from 'node:net';
import { sameIqn } from '../names/iscsi-name.js';
import { parsePortal, samePortal, type Portal } from '../names/portal.js';
import type { TargetBackend } from '../storage/backend.js';
import { quoteArgv } from '../runner/quote.js';
import { runPlan } from '../plan/plan.js';
import type { Session } from '../runner/session.js';
import type { LunSpec, TargetSpec } from '../storage/backend.js';
import { cephUser } from '../storage/rbd/client.js';
import { rbdLun } from '../storage/rbd/lun.js';
import { parseRbdRef, rbdImageSpec } from '../storage/rbd/ref.js';
import { lunScsiId } from '../storage/wwid.js';
import { Journal, type JournalPiece } from './journal.js';
import { cephSecretDescription, diskAlias, secretDescription } from './names.js';
import { isIscsi, recordPath, recordPool, recordSecretUsage, removeRecord, sameRecord, writeRecord, type ExportRecord, type HypervisorPart, type IscsiExportRecord } from './records.js';
import { resolveExport, type HypervisorSide, type ResolvedExport } from './resolve.js';
import { deleteTargetStep } from './teardown.js';
import type { ExportOptions, WorkflowHooks, WorkflowStep } from './types.js';
import type { SourceSlot } from './visibility.js';

export interface ExportResult {
  /** The export as its records hold it, attachments included. */
  record: ExportRecord;
  /** Steps this run changed something with; 0 when it was all in place already. */
  applied: number;
  skipped: number;
  dryRun: boolean;
  /** The command that takes it all back. */
  undo: string;
}

export const markOf = (r: ExportRecord): DiskMark =>
  isIscsi(r)
    ? { alias: diskAlias(r.name), target: r.target, lun: r.lun, ...(recordPool(r) ? { pool: recordPool(r)! } : {}) }
    : { alias: diskAlias(r.name), rbd: rbdImageSpec(parseRbdRef(r.image)) };

/** `virt-iscsi unexport NAME`, with what it needs to find the export without local state. */
export function undoCommand(r: Pick<ExportRecord, 'name' | 'storage'>, hostRecordDir?: string): string {
  const argv = ['virt-iscsi', 'unexport', r.name];
  if (r.storage !== 'local') argv.push('--storage', r.storage);
  if (hostRecordDir !== undefined) argv.push('--host-records', hostRecordDir);
  return quoteArgv(argv);
}

export const missingSecret = (r: IscsiExportRecord): string => `the CHAP secret of ${r.target} cannot be read back from its target's configuration; unexport ${r.name} and export it again`;

/** The LUN: the image file, or an rbd: image through tgt's rbd backing store. */
function lunSpec(x: ResolvedExport, r: IscsiExportRecord): LunSpec {
  const flags = { serial: r.serial, scsiId: lunScsiId(r.serial), ...(r.cdrom ? { cdrom: true } : {}), ...(r.readonly ? { readonly: true } : {}) };
  const ceph = x.storage.ceph;
  return ceph ? rbdLun(r.lun, ceph.ref, ceph.client, flags) : { lun: r.lun, path: r.image, ...flags };
}

/** The target an export makes: its one LUN, exactly its hypervisors' initiators, CHAP when on. */
export function targetSpec(x: ResolvedExport, r: IscsiExportRecord): TargetSpec {
  const spec: TargetSpec = {
    iqn: r.target,
    luns: [lunSpec(x, r)],
    // Exactly the hypervisors' initiators, never ALL.
    allow: r.hypervisors.map((h) => h.initiator),
    persist: true,
    // Noted in the backend's record of the target: `sweep` tells an export's target by it.
    export: r.name,
  };
  if (r.chapUser && x.chapSecret !== undefined) spec.chap = { user: r.chapUser, secret: x.chapSecret };
  return spec;
}

function storageSteps(x: ResolvedExport): WorkflowStep[] {
  const s = x.storage;
  const host = s.runner.host;
  const recordStep: WorkflowStep = {
    // First, so that from another machine (or after this one's state is lost) the export is known before its target is.
    id: 'storage-record',
    host,
    title: `record the export in ${recordPath(x.hostRecordDir, x.record.name)} on ${host}`,
    check: async () => sameRecord(s.record, x.record, { withoutAttachments: true }),
    apply: async () => void (await writeRecord(s.runner, x.hostRecordDir, x.record)),
    undo: () => removeRecord(s.runner, x.hostRecordDir, x.record.name),
  };
  const t = x.iscsi;
  if (!t || !isIscsi(x.record)) return [recordStep];
  const r = x.record;
  const what = [
    `LUN ${r.lun} ${r.image}${r.cdrom ? ' (CD-ROM)' : r.readonly ? ' (read-only)' : ''}`,
    `allow ${r.hypervisors.map((h) => h.initiator).join(', ')}`,
    ...(r.chapUser ? [`CHAP user ${r.chapUser}`] : []),
  ];
  return [
    {
      id: 'daemon',
      host,
      title: `start the ${t.backendName} target daemon on ${host}`,
      check: async () => t.running,
      apply: () => t.backend.ensureRunning(),
    },
    ...listenSteps(t.backend, r, host),
    recordStep,
    {
      id: 'target',
      host,
      title: `create target ${r.target} on ${host}: ${what.join(', ')}`,
      // A daemon this run started has brought back the targets in its configuration: ours may be among them.
      check: async () => x.target !== undefined || (!t.running && !x.dryRun && (await t.backend.show(r.target)) !== undefined),
      apply: async () => {
        if (r.chapUser && x.chapSecret === undefined) throw new ValidationError(missingSecret(r), 'chap');
        // The image was checked a moment ago, when the export was resolved.
        const lun = lunSpec(x, r);
        await t.backend.create(targetSpec(x, r), { images: [{ ...s.image, path: lun.path }] });
      },
      undo: () => deleteTargetStep(t.backend, r, { force: true, waitMs: 5_000 }).apply(),
    },
    aclStep(x, t, r),
  ];
}

const IQN_LIKE = /^(iqn|eui|naa)\./i;

/** tgtd listens on the whole port of an address family: 0.0.0.0:P and [::]:P cover every address. */
const covers = (l: Portal, p: Portal): boolean => samePortal(l, p) || (l.port === p.port && l.host === (isIP(p.host) === 6 ? '::' : '0.0.0.0'));

/**
 * Multipath: the target daemon listens on every portal of the export. tgt listens where
 * its --iscsi portal= option (or its default, every address) says: a portal it lacks is
 * added (daemon-wide, until tgtd stops; unexport leaves it, other exports may use it).
 * LIO's target gets its portals when it is made (the `portals` backend option).
 */
function listenSteps(backend: TargetBackend, r: IscsiExportRecord, host: string): WorkflowStep[] {
  if (!('portals' in r) || !backend.listen) return [];
  return r.portals.map((text): WorkflowStep => {
    const p = parsePortal(text);
    return {
      id: 'portal',
      host,
      title: `make the target daemon on ${host} listen on ${text}`,
      // A daemon that is not running yet (this run starts it) cannot be asked: the dry run shows the change.
      check: async () => (await backend.listening!().catch(() => [] as Portal[])).some((l) => covers(l, p)),
      apply: () => backend.listen!(p),
      undo: () => backend.unlisten!(p),
    };
  });
}

/**
 * An existing target allows exactly the export's hypervisors' initiators (one was added or
 * removed since it was made). A target made by this run already does.
 */
function aclStep(x: ResolvedExport, t: NonNullable<ResolvedExport['iscsi']>, r: IscsiExportRecord): WorkflowStep {
  const wanted = r.hypervisors.map((h) => h.initiator);
  const had = (x.target?.acls ?? []).filter((a) => IQN_LIKE.test(a));
  return {
    id: 'acl',
    host: x.storage.runner.host,
    title: `allow exactly ${wanted.join(', ')} on target ${r.target}`,
    check: async () => x.target === undefined || (wanted.every((w) => had.some((a) => sameIqn(a, w))) && had.every((a) => wanted.some((w) => sameIqn(a, w)))),
    async apply() {
      if (!t.backend.allowInitiators) throw new PrerequisiteError(`the ${t.backendName} backend cannot change the initiators of an existing target yet; unexport ${r.name} and export it again with every --hypervisor`);
      await t.backend.allowInitiators(r.target, wanted);
    },
    undo: async () => t.backend.allowInitiators?.(r.target, had),
  };
}

/** What one hypervisor gets: its CHAP secret, what the mode makes, the disk where the domain is. */
function hypervisorSteps(x: ResolvedExport, h: HypervisorSide, o: Pick<ExportOptions, 'waitTimeoutMs' | 'signal'>, journal: Journal | undefined, done: (a: Attachment) => void): WorkflowStep[] {
  const r = x.record;
  const mode = x.mode;
  const steps: WorkflowStep[] = [];
  const usage = recordSecretUsage(r);
  if (usage && !isIscsi(r)) {
    const ceph = x.storage.ceph!;
    steps.push({
      ...secretStep(h.virsh, { type: 'ceph', usage, description: cephSecretDescription(r.name), user: cephUser(ceph.client), value: () => ceph.key, missing: `the cephx key of ${cephUser(ceph.client)} could not be read on ${r.storage}`, replace: false }),
      id: 'secret',
    });
  } else if (usage && isIscsi(r) && r.chapUser) {
    const user = r.chapUser;
    steps.push({
      ...secretStep(h.virsh, { usage, description: secretDescription(r.name), user, value: () => x.chapSecret, missing: missingSecret(r), replace: x.chapSecretIsNew }),
      id: 'secret',
    });
  }
  const slot: SourceSlot = {};
  const chap = isIscsi(r) && r.chapUser && mode.chapIn === 'node-record'
    ? (): ChapCredentials => {
        if (x.chapSecret === undefined) throw new ValidationError(missingSecret(r), 'chap');
        return { user: r.chapUser!, secret: x.chapSecret };
      }
    : undefined;
  const known = h.facts.pools.find((p) => p.name === recordPool(r)) ?? null;
  const wait = { timeoutMs: o.waitTimeoutMs ?? 30_000, ...(o.signal ? { signal: o.signal } : {}) };
  for (const s of mode.visible({ record: r, virsh: h.virsh, portal: h.portal, initiator: h.initiator, knownPool: known, ...(chap ? { chap } : {}), wait, slot })) {
    steps.push({ ...s, id: s.id ?? 'step' });
  }
  const view = h.facts.view;
  if (!view) return steps; // not defined here: ready for the VM to come (migration), nothing to attach
  // A second run finds the disk in place: a controller an earlier run added stays its to remove.
  const added = h.prior?.attachment?.controller ?? x.journal?.pieces.find((p): p is Extract<JournalPiece, { kind: 'controller' }> => p.kind === 'controller' && p.host === h.uri)?.flags;
  const step = attachStep(h.virsh, {
    view,
    request: () => {
      if (!slot.source) throw new Error('the LUN was not made visible before the attach step');
      return { domain: r.vm, source: slot.source, cdrom: r.cdrom, readonly: r.readonly, mark: markOf(r), ...(isIscsi(r) ? { serial: r.serial } : {}), ...(r.persist ? {} : { flags: 'live' as const }) };
    },
    done: (a) => done(added && !a.controller ? { ...a, controller: added } : a),
    onController: async (flags, when) => journal?.piece({ kind: 'controller', host: h.uri, vm: r.vm, flags }, when),
    title: `give domain ${r.vm}${x.hypervisors.length > 1 ? ` on ${h.uri}` : ''} the LUN as a ${r.cdrom ? 'read-only cdrom' : r.readonly ? 'read-only disk' : 'disk'}${r.persist ? '' : ' (live only)'}`,
  });
  steps.push({ ...step, id: 'attach' });
  return steps;
}

/** The steps of an export whose every input is resolved. `parts` receives each hypervisor's part, attachment included. */
export function exportSteps(x: ResolvedExport, o: Pick<ExportOptions, 'waitTimeoutMs' | 'signal'>, journal?: Journal): { steps: WorkflowStep[]; record: () => ExportRecord } {
  const r = x.record;
  const attachments = new Map<string, Attachment>();
  const steps = storageSteps(x);
  for (const h of x.hypervisors) steps.push(...hypervisorSteps(x, h, o, journal, (a) => attachments.set(h.uri, a)));
  const full = (): ExportRecord => ({
    ...r,
    hypervisors: r.hypervisors.map((p): HypervisorPart => {
      const a = attachments.get(p.uri);
      return a ? { ...p, attachment: a } : p;
    }),
  });
  steps.push({
    id: 'local-record',
    host: 'local',
    title: `record the export in ${recordPath(x.stateDir, r.name)}`,
    check: async () => sameRecord(x.localRecord, full()),
    apply: async () => void (await writeRecord(x.local, x.stateDir, full())),
    undo: () => removeRecord(x.local, x.stateDir, r.name),
  });
  return { steps, record: full };
}

/** Each step's apply first calls the test hook with the step's id. */
export function withHooks(steps: WorkflowStep[], hooks: WorkflowHooks | undefined): WorkflowStep[] {
  const before = hooks?.beforeApply;
  if (!before) return steps;
  return steps.map((s) => ({
    ...s,
    apply: async () => {
      await before(s.id);
      await s.apply();
    },
  }));
}

/**
 * Exports `o.image` to `o.vm`: resolves everything first (nothing changes when that
 * fails), then runs the plan, journaled. Under a dry-run Session every change is only
 * recorded (and nothing is journaled).
 */
export async function exportImage(session: Session, o: ExportOptions): Promise<ExportResult> {
  const x = await resolveExport(session, o);
  if (!x.record.persist && !x.hypervisors.some((h) => h.facts.view?.live)) {
    throw new ValidationError(`domain ${JSON.stringify(x.record.vm)} is not running; --no-persist attaches to a running domain only`, 'vm');
  }
  const undo = undoCommand(x.record, o.hostRecordDir);
  const journal = x.dryRun ? undefined : await Journal.begin(x.stateDir, x.record);
  o.setLeftHint?.(() => `what the export made so far may be left: "${undo}" removes it`);
  const plan = exportSteps(x, o, journal);
  const steps = withHooks(plan.steps, o.hooks);
  o.onPlan?.(steps);
  let result;
  try {
    result = await runPlan(steps, { signal: o.signal, onEvent: o.onEvent, ...(journal ? { journal } : {}) });
  } catch (e) {
    // Rolled back (or not all of it: then the journal stays, for unexport).
    if (journal && !isRollbackLeftover(e)) await journal.end('rolled-back');
    throw e;
  }
  await journal?.end('done');
  return { record: plan.record(), applied: result.applied, skipped: result.skipped, dryRun: x.dryRun, undo };
}

function isRollbackLeftover(e: unknown): boolean {
  return e instanceof Error && e.name === 'RollbackError';
}
