// `export`: one image on the storage host to one VM, as a plan of steps with rollback.
//   target daemon -> target + LUN + ACL (+ CHAP), persisted -> storage host record ->
//   libvirt secret (CHAP) -> pool define/start/autostart (or iscsiadm login) -> the LUN's
//   volume or device -> attach (or media into an empty drive) -> local record.
// Every step can tell it is already done, so a second run changes nothing; a failure, or
// SIGINT/SIGTERM through `signal`, undoes what this run did, last step first.
import { randomUUID } from 'node:crypto';
import type { Session } from '../runner/session.js';
import { ValidationError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { quoteArgv } from '../runner/quote.js';
import { runPlan } from '../plan/plan.js';
import type { TargetSpec } from '../storage/backend.js';
import { iscsiChapSecret } from '../xml/secret.js';
import { attachDisk, type DiskMark } from './disk.js';
import { diskAlias, secretDescription } from './names.js';
import { recordPath, removeRecord, sameRecord, writeRecord, type Attachment, type ExportRecord } from './records.js';
import { resolveExport, type ResolvedExport } from './resolve.js';
import { deleteTargetStep } from './teardown.js';
import type { ExportOptions, WorkflowHooks, WorkflowStep } from './types.js';
import { loginSteps, networkSource, poolSteps, type SourceSlot } from './visibility.js';

export interface ExportResult {
  /** The export as its records hold it, attachment included. */
  record: ExportRecord;
  /** Steps this run changed something with; 0 when it was all in place already. */
  applied: number;
  skipped: number;
  dryRun: boolean;
  /** The command that takes it all back. */
  undo: string;
}

export const markOf = (r: ExportRecord): DiskMark => ({ alias: diskAlias(r.name), target: r.target, lun: r.lun, ...(r.pool ? { pool: r.pool } : {}) });

/** `virt-iscsi unexport NAME`, with what it needs to find the export without local state. */
export function undoCommand(r: ExportRecord, hostRecordDir?: string): string {
  const argv = ['virt-iscsi', 'unexport', r.name];
  if (r.storage !== 'local') argv.push('--storage', r.storage);
  if (hostRecordDir !== undefined) argv.push('--host-records', hostRecordDir);
  return quoteArgv(argv);
}

function targetSpec(x: ResolvedExport): TargetSpec {
  const r = x.record;
  const spec: TargetSpec = {
    iqn: r.target,
    luns: [{ lun: r.lun, path: r.image, serial: r.serial, ...(r.cdrom ? { cdrom: true } : {}), ...(r.readonly ? { readonly: true } : {}) }],
    // Exactly the hypervisor's initiator, never ALL.
    allow: [r.initiator],
    persist: true,
  };
  if (r.chapUser && x.chapSecret !== undefined) spec.chap = { user: r.chapUser, secret: x.chapSecret };
  return spec;
}

function storageSteps(x: ResolvedExport): WorkflowStep[] {
  const r = x.record;
  const s = x.storage;
  const host = s.runner.host;
  const what = [`LUN ${r.lun} ${r.image}${r.cdrom ? ' (CD-ROM)' : r.readonly ? ' (read-only)' : ''}`, `allow ${r.initiator}`, ...(r.chapUser ? [`CHAP user ${r.chapUser}`] : [])];
  const hostRecord: ExportRecord = { ...r };
  return [
    {
      id: 'daemon',
      title: `start the ${s.backendName} target daemon on ${host}`,
      check: async () => s.running,
      apply: () => s.backend.ensureRunning(),
    },
    {
      id: 'target',
      title: `create target ${r.target} on ${host}: ${what.join(', ')}`,
      check: async () => x.target !== undefined,
      apply: async () => {
        if (r.chapUser && x.chapSecret === undefined) throw new ValidationError(`the CHAP secret for ${r.target} is unknown; unexport ${r.name} and export it again`, 'chap');
        // The image was checked a moment ago, when the export was resolved.
        await s.backend.create(targetSpec(x), { images: [s.image] });
      },
      undo: () => deleteTargetStep(s.backend, r, { force: true, waitMs: 5_000 }).apply(),
    },
    {
      id: 'storage-record',
      title: `record the export in ${recordPath(x.hostRecordDir, r.name)} on ${host}`,
      check: async () => sameRecord(s.record, hostRecord),
      apply: async () => void (await writeRecord(s.runner, x.hostRecordDir, hostRecord)),
      undo: () => removeRecord(s.runner, x.hostRecordDir, r.name),
    },
  ];
}

function secretStep(virsh: Virsh, x: ResolvedExport): WorkflowStep {
  const r = x.record;
  const usage = r.secretUsage!;
  let created: string | undefined;
  return {
    id: 'secret',
    title: `define libvirt secret ${usage} holding the CHAP secret of ${r.chapUser}`,
    check: async () => !x.chapSecretIsNew && (await virsh.secretByUsage(usage)) !== undefined,
    async apply() {
      const secret = x.chapSecret;
      if (secret === undefined) throw new ValidationError(`the CHAP secret of ${r.target} cannot be read back from its target; unexport ${r.name} and export it again`, 'chap');
      const existing = await virsh.secretByUsage(usage);
      const uuid = existing?.uuid ?? (await virsh.secretDefine({ ...iscsiChapSecret({ usage, description: secretDescription(r.name) }), uuid: randomUUID() }));
      if (!existing) created = uuid;
      await virsh.secretSetValue(uuid, secret);
    },
    async undo() {
      if (created) await virsh.secretUndefine(created);
    },
  };
}

/** The steps of an export whose every input is resolved. `done` receives the attachment. */
export function exportSteps(x: ResolvedExport, o: Pick<ExportOptions, 'waitTimeoutMs'>, done: (a: Attachment) => void): WorkflowStep[] {
  const r = x.record;
  const virsh = x.hypervisor.virsh;
  const wait = { timeoutMs: o.waitTimeoutMs ?? 30_000 };
  const slot: SourceSlot = {};
  const steps = storageSteps(x);
  if (r.secretUsage) steps.push(secretStep(virsh, x));
  if (r.mode === 'pool' || r.mode === 'direct') {
    const existing = x.hypervisor.facts.pools.find((p) => p.name === r.pool);
    steps.push(...poolSteps(virsh, r, x.portal, existing, slot, wait));
  }
  else if (r.mode === 'block') steps.push(...loginSteps(new Iscsiadm(x.hypervisor.runner), r, x.portal, x.chapSecret, slot, wait));
  else slot.source = networkSource(r, x.portal);

  let attachment: Attachment | undefined;
  // A second run finds the disk in place: the controller the first run added stays its to remove.
  const added = x.localRecord?.attachment?.controller;
  const disk = attachDisk(
    virsh,
    x.hypervisor.facts.view,
    () => {
      if (!slot.source) throw new Error('the LUN was not made visible before the attach step');
      return { domain: r.vm, source: slot.source, cdrom: r.cdrom, readonly: r.readonly, mark: markOf(r), serial: r.serial, ...(r.persist ? {} : { flags: 'live' as const }) };
    },
    (a) => {
      attachment = added && !a.controller ? { ...a, controller: added } : a;
      done(attachment);
    },
  );
  steps.push({ id: 'attach', title: `give domain ${r.vm} the LUN as a ${r.cdrom ? 'read-only cdrom' : r.readonly ? 'read-only disk' : 'disk'}${r.persist ? '' : ' (live only)'}`, ...disk });
  const full = (): ExportRecord => ({ ...r, ...(attachment ? { attachment } : {}) });
  steps.push({
    id: 'local-record',
    title: `record the export in ${recordPath(x.stateDir, r.name)}`,
    check: async () => sameRecord(x.localRecord, full()),
    apply: async () => void (await writeRecord(x.local, x.stateDir, full())),
    undo: () => removeRecord(x.local, x.stateDir, r.name),
  });
  return steps;
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
 * fails), then runs the plan. Under a dry-run Session every change is only recorded.
 */
export async function exportImage(session: Session, o: ExportOptions): Promise<ExportResult> {
  const x = await resolveExport(session, o);
  if (!x.record.persist && x.hypervisor.facts.view.live === undefined) {
    throw new ValidationError(`domain ${JSON.stringify(x.record.vm)} is not running; --no-persist attaches to a running domain only`, 'vm');
  }
  let attachment: Attachment | undefined;
  const steps = withHooks(exportSteps(x, o, (a) => (attachment = a)), o.hooks);
  o.onPlan?.(steps);
  const result = await runPlan(steps, { signal: o.signal, onEvent: o.onEvent });
  const record: ExportRecord = { ...x.record, ...(attachment ? { attachment } : {}) };
  return { record, applied: result.applied, skipped: result.skipped, dryRun: x.dryRun, undo: undoCommand(record, o.hostRecordDir) };
}
