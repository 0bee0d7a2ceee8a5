// `unexport NAME`: every piece of the export taken away, last made first (teardown.ts).
// The export is found from the local record, else from the journal a killed run left,
// else from the storage host's record (from another machine, or after the local state was
// lost). The image file is never touched. A hypervisor that cannot be reached keeps its
// pieces (listed); the others are cleaned, and the records then name only what is left,
// so running unexport again once it is back finishes.
import { ConnectError, VirtIscsiError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { Virsh } from '../hypervisor/virsh.js';
import { parsePortal } from '../names/portal.js';
import { checkAbsolutePath } from '../names/values.js';
import type { PlanEvent } from '../plan/plan.js';
import { runPlan } from '../plan/plan.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Session } from '../runner/session.js';
import { createBackend } from '../storage/backends.js';
import { markOf } from './export.js';
import { readJournal } from './journal.js';
import { modeOf } from './modes.js';
import { checkExportName } from './names.js';
import { DEFAULT_HOST_RECORD_DIR, isIscsi, localStateDir, readRecord, recordPool, recordSecretUsage, writeRecord, type ExportRecord } from './records.js';
import { gatherTeardown, teardownSteps, type HypervisorReach, type TeardownContext } from './teardown.js';
import type { RecordDirs, WorkflowStep } from './types.js';

export interface UnexportOptions extends RecordDirs {
  name: string;
  /** Where to look for the storage host's record when this machine has none; default `local`. */
  storage?: string;
  /** Reach the (only) hypervisor at this URI instead of the recorded one (from another machine). */
  hypervisor?: string;
  connect?: string;
  /** Delete the target even when initiators other than the export's are logged in, or a hypervisor is out of reach. */
  force?: boolean;
  /** How long to wait for another run's lock on the storage host; default 60 s. */
  lockTimeoutMs?: number;
  /** How long to wait for the VM's session to end before deleting the target; default 15 s. */
  sessionWaitMs?: number;
  signal?: AbortSignal;
  onPlan?: (steps: readonly WorkflowStep[]) => void;
  onEvent?: (e: PlanEvent) => void;
}

export interface UnexportResult {
  name: string;
  /** No record of the export anywhere: already unexported. */
  found: boolean;
  record?: ExportRecord;
  /** It was found only from the journal of a run that did not end. */
  interrupted?: boolean;
  /** Steps that removed something; 0 when everything was gone already. */
  applied: number;
  skipped: number;
  dryRun: boolean;
  /** Hypervisors out of reach: their pieces are still there, and so are the target and records. */
  left: Array<{ hypervisor: string; error: string; pieces: string[] }>;
}

/** Some hypervisors could not be reached: the rest was cleaned; unexport again finishes. */
export class PartialUnexportError extends VirtIscsiError {
  readonly kind = 'partial';
  constructor(readonly result: UnexportResult) {
    const left = result.left.map((l) => `${l.hypervisor} (${l.error}) still has ${l.pieces.join(', ')}`).join('; ');
    super(`export ${result.name}: could not reach ${left}; the target and the records stay so their sessions do not retry against nothing: run "virt-iscsi unexport ${result.name}" again once they are back, or add --force`);
  }
}

/** What a hypervisor holds of the export, for people, from the record alone. */
function piecesOf(r: ExportRecord, uri: string): string[] {
  const m = modeOf(r);
  const part = r.hypervisors.find((h) => h.uri === uri);
  return [
    ...(part?.attachment || r.hypervisors.length === 1 ? [`the disk of domain ${r.vm}`] : []),
    ...(recordPool(r) ? [`pool ${recordPool(r)}`] : []),
    ...(isIscsi(r) && m.hostLogin && !m.pool ? [`the session and node record of ${r.target}`] : []),
    ...(isIscsi(r) && 'wwid' in r ? [`multipath map ${r.wwid}, its wwids entry and drop-in`] : []),
    ...(recordSecretUsage(r) ? [`libvirt secret ${recordSecretUsage(r)}`] : []),
  ];
}

export async function unexportImage(session: Session, o: UnexportOptions): Promise<UnexportResult> {
  const name = checkExportName(o.name);
  if (o.storage !== undefined) parseHostUri(o.storage);
  if (o.hypervisor !== undefined) parseHostUri(o.hypervisor);
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  const hostRecordDir = checkAbsolutePath('--host-records', o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR, 'host-records');
  const local = await session.runner('local');
  const [localRecord, journal] = await Promise.all([readRecord(local, stateDir, name), readJournal(stateDir, name)]);
  const storage = await session.runner(o.storage ?? localRecord?.storage ?? journal?.record.storage ?? 'local');
  const record = localRecord ?? journal?.record ?? (await readRecord(storage, hostRecordDir, name));
  const none = { name, applied: 0, skipped: 0, dryRun: session.dryRun, left: [] };
  if (!record) return { ...none, found: false };

  const parts = o.hypervisor !== undefined && record.hypervisors.length === 1 ? [{ ...record.hypervisors[0]!, uri: o.hypervisor }] : record.hypervisors;
  const hypervisors: HypervisorReach[] = await Promise.all(
    parts.map(async (part): Promise<HypervisorReach> => {
      try {
        const runner = await session.runner(part.uri);
        const virsh = new Virsh(runner, o.connect ?? part.connect);
        const portal = isIscsi(record) ? await new Iscsiadm(runner).resolvePortal(parsePortal(record.portal)) : undefined;
        return { part, virsh, ...(portal ? { portal } : {}) };
      } catch (e) {
        if (!(e instanceof ConnectError)) throw e;
        return { part, error: e.message };
      }
    }),
  );
  const backend = isIscsi(record)
    ? createBackend(record.backend, storage, { ...record.backendOptions, signal: o.signal, lockOwner: `unexport ${name}`, lockTimeoutMs: o.lockTimeoutMs })
    : undefined;
  const context: TeardownContext = {
    record,
    hypervisors,
    ...(backend ? { backend } : {}),
    storage,
    local,
    mark: markOf(record),
    stateDir,
    hostRecordDir,
    force: o.force === true,
    ...(journal ? { journal } : {}),
    ...(o.sessionWaitMs !== undefined ? { sessionWaitMs: o.sessionWaitMs } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  };
  const steps = teardownSteps(context, await gatherTeardown(context));
  o.onPlan?.(steps);
  const r = await runPlan(steps, { signal: o.signal, onEvent: o.onEvent });
  const result: UnexportResult = { ...none, found: true, record, ...(localRecord ? {} : journal ? { interrupted: true } : {}), applied: r.applied, skipped: r.skipped };
  const out = hypervisors.filter((h) => h.error !== undefined);
  if (out.length > 0 && !o.force) {
    // Only the hypervisors still holding pieces stay in the records.
    const rest: ExportRecord = { ...record, hypervisors: record.hypervisors.filter((p) => out.some((h) => h.part.uri === p.uri)) };
    if (localRecord) await writeRecord(local, stateDir, rest);
    if (await storage.readFile(`${hostRecordDir}/${name}.json`)) await writeRecord(storage, hostRecordDir, rest);
    result.left = out.map((h) => ({ hypervisor: h.part.uri, error: h.error!, pieces: piecesOf(record, h.part.uri) }));
    throw new PartialUnexportError(result);
  }
  return result;
}
