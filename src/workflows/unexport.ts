// `unexport NAME`: every piece of the export taken away, last made first (teardown.ts).
// The export is found from the local record, else from the storage host's record (from
// another machine, or after the local state was lost). The image file is never touched.
import type { Session } from '../runner/session.js';
import { Virsh } from '../hypervisor/virsh.js';
import type { PlanEvent } from '../plan/plan.js';
import { runPlan } from '../plan/plan.js';
import { parseHostUri } from '../runner/host-uri.js';
import { createBackend } from '../storage/backends.js';
import { markOf } from './export.js';
import { checkExportName } from './names.js';
import { DEFAULT_HOST_RECORD_DIR, localStateDir, readRecord, type ExportRecord } from './records.js';
import { gatherTeardown, teardownSteps, type TeardownContext } from './teardown.js';
import type { RecordDirs, WorkflowStep } from './types.js';

export interface UnexportOptions extends RecordDirs {
  name: string;
  /** Where to look for the storage host's record when this machine has none; default `local`. */
  storage?: string;
  /** Reach the hypervisor at this URI instead of the recorded one (from another machine). */
  hypervisor?: string;
  connect?: string;
  /** Delete the target even when initiators other than the export's are logged in. */
  force?: boolean;
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
  /** Steps that removed something; 0 when everything was gone already. */
  applied: number;
  skipped: number;
  dryRun: boolean;
}

export async function unexportImage(session: Session, o: UnexportOptions): Promise<UnexportResult> {
  const name = checkExportName(o.name);
  if (o.storage !== undefined) parseHostUri(o.storage);
  if (o.hypervisor !== undefined) parseHostUri(o.hypervisor);
  const stateDir = o.stateDir ?? localStateDir();
  const hostRecordDir = o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR;
  const local = await session.runner('local');
  const localRecord = await readRecord(local, stateDir, name);
  const storage = await session.runner(o.storage ?? localRecord?.storage ?? 'local');
  const record = localRecord ?? (await readRecord(storage, hostRecordDir, name));
  const none = { name, applied: 0, skipped: 0, dryRun: session.dryRun };
  if (!record) return { ...none, found: false };

  const hv = await session.runner(o.hypervisor ?? record.hypervisor);
  const virsh = new Virsh(hv, o.connect ?? record.connect);
  const backend = createBackend(record.backend, storage, { ...record.backendOptions, signal: o.signal });
  const context: TeardownContext = {
    record,
    virsh,
    backend,
    storage,
    local,
    mark: markOf(record),
    stateDir,
    hostRecordDir,
    force: o.force === true,
    sessionWaitMs: o.sessionWaitMs,
  };
  const steps = teardownSteps(context, await gatherTeardown(context));
  o.onPlan?.(steps);
  const r = await runPlan(steps, { signal: o.signal, onEvent: o.onEvent });
  return { ...none, found: true, record, applied: r.applied, skipped: r.skipped };
}
