// Which hypervisors an export serves, after it was made: `export NAME --add-hypervisor URI`
// runs the export again with one more hypervisor (every step already in place is skipped;
// the new one gets what the mode needs and the target's ACL takes its initiator), and
// `--remove-hypervisor URI` takes that hypervisor's pieces away (refused while the VM runs
// there), then narrows the ACL and the records to the rest.
import { ValidationError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { Virsh } from '../hypervisor/virsh.js';
import { parseHostUri } from '../runner/host-uri.js';
import { parsePortal } from '../names/portal.js';
import { runPlan } from '../plan/plan.js';
import type { Session } from '../runner/session.js';
import { createBackend } from '../storage/backends.js';
import { exportImage, markOf, type ExportResult } from './export.js';
import { readJournal } from './journal.js';
import { checkExportName } from './names.js';
import { viewIfThere } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, isIscsi, localStateDir, readRecord, recordPath, writeRecord, type ExportRecord } from './records.js';
import { gatherTeardown, hypervisorTeardown, type TeardownContext } from './teardown.js';
import type { ExportOptions, RecordDirs, RunControl, WorkflowStep } from './types.js';

export interface MembershipOptions extends RecordDirs, RunControl {
  name: string;
  /** Where to look for the storage host's record when this machine has none. */
  storage?: string;
  setLeftHint?: ExportOptions['setLeftHint'];
}

const show = JSON.stringify;

async function findExport(session: Session, o: MembershipOptions): Promise<{ record: ExportRecord; stateDir: string; hostRecordDir: string }> {
  const name = checkExportName(o.name);
  if (o.storage !== undefined) parseHostUri(o.storage);
  const stateDir = o.stateDir ?? localStateDir();
  const hostRecordDir = o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR;
  const local = await session.runner('local');
  const mine = await readRecord(local, stateDir, name);
  const theirs = mine ?? (await readRecord(await session.runner(o.storage ?? 'local'), hostRecordDir, name));
  const record = mine ?? (theirs && o.storage !== undefined ? { ...theirs, storage: o.storage } : theirs);
  if (!record) throw new ValidationError(`no export named ${show(name)} is recorded in ${stateDir}${o.storage ? ` or on ${o.storage}` : ''}; "virt-iscsi status" lists them`, 'name');
  if (await readJournal(stateDir, name)) throw new ValidationError(`export ${name} was interrupted; finish it first (run the same export again, or virt-iscsi unexport ${name})`, 'name');
  return { record, stateDir, hostRecordDir };
}

/** The export's own options, from its record: what `export` was given. */
export function optionsOf(r: ExportRecord, dirs: { stateDir: string; hostRecordDir: string }): ExportOptions {
  return {
    image: r.image,
    vm: r.vm,
    name: r.name,
    storage: r.storage,
    hypervisors: r.hypervisors.map((h) => h.uri),
    connect: r.hypervisors[0]!.connect,
    mode: r.mode,
    cdrom: r.cdrom,
    readonly: r.readonly,
    persist: r.persist,
    ...(r.stack !== undefined ? { stack: r.stack } : {}),
    ...(r.ceph ? { ceph: r.ceph } : {}),
    ...(isIscsi(r)
      ? {
          // Multipath: the same portals and min-paths (one portal alone is not multipath).
          ...('portals' in r ? { portals: r.portals, minPaths: r.minPaths } : { portal: r.portal }),
          chap: r.chapUser !== undefined,
          backend: r.backend,
          ...(r.backendOptions.controlPort !== undefined ? { controlPort: r.backendOptions.controlPort } : {}),
          ...(r.backendOptions.confDir !== undefined ? { confDir: r.backendOptions.confDir } : {}),
        }
      : {}),
    stateDir: dirs.stateDir,
    hostRecordDir: dirs.hostRecordDir,
  };
}

/** `export NAME --add-hypervisor URI`: one more hypervisor; already one of them is nothing to do. */
export async function addHypervisor(session: Session, o: MembershipOptions & { hypervisor: string; waitTimeoutMs?: number }): Promise<ExportResult> {
  parseHostUri(o.hypervisor);
  const { record, stateDir, hostRecordDir } = await findExport(session, o);
  const uris = record.hypervisors.map((h) => h.uri);
  return exportImage(session, {
    ...optionsOf(record, { stateDir, hostRecordDir }),
    hypervisors: uris.includes(o.hypervisor) ? uris : [...uris, o.hypervisor],
    changeHypervisors: true,
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onPlan ? { onPlan: o.onPlan } : {}),
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    ...(o.setLeftHint ? { setLeftHint: o.setLeftHint } : {}),
    ...(o.waitTimeoutMs !== undefined ? { waitTimeoutMs: o.waitTimeoutMs } : {}),
  });
}

export interface RemoveResult {
  record: ExportRecord;
  applied: number;
  dryRun: boolean;
}

/** `export NAME --remove-hypervisor URI`: its pieces taken away, then the ACL and the records narrowed. */
export async function removeHypervisor(session: Session, o: MembershipOptions & { hypervisor: string }): Promise<RemoveResult> {
  parseHostUri(o.hypervisor);
  const { record, stateDir, hostRecordDir } = await findExport(session, o);
  const part = record.hypervisors.find((h) => h.uri === o.hypervisor);
  if (!part) throw new ValidationError(`hypervisor ${show(o.hypervisor)} is not one of export ${record.name}'s: ${record.hypervisors.map((h) => h.uri).join(', ')}`, 'hypervisor');
  if (record.hypervisors.length === 1) throw new ValidationError(`${o.hypervisor} is the only hypervisor of export ${record.name}: unexport it instead (virt-iscsi unexport ${record.name})`, 'hypervisor');
  const runner = await session.runner(part.uri);
  const virsh = new Virsh(runner, part.connect);
  const view = await viewIfThere(virsh, record.vm);
  if (view?.live) throw new ValidationError(`domain ${record.vm} runs on ${o.hypervisor}: migrate it away first (virt-iscsi migrate ${record.vm} --to URI), then remove the hypervisor`, 'hypervisor');
  const rest: ExportRecord = { ...record, hypervisors: record.hypervisors.filter((h) => h.uri !== part.uri) };
  const storage = await session.runner(record.storage);
  const local = await session.runner('local');
  const backend = isIscsi(record) ? createBackend(record.backend, storage, { ...record.backendOptions, lockOwner: `export ${record.name} --remove-hypervisor` }) : undefined;
  const portal = isIscsi(record) ? await new Iscsiadm(runner).resolvePortal(parsePortal(record.portal)) : undefined;
  const c: TeardownContext = {
    record,
    hypervisors: [{ part, virsh, ...(portal ? { portal } : {}) }],
    ...(backend ? { backend } : {}),
    storage,
    local,
    mark: markOf(record),
    stateDir,
    hostRecordDir,
    force: false,
  };
  const facts = await gatherTeardown(c);
  const steps: WorkflowStep[] = hypervisorTeardown(c, c.hypervisors[0]!, facts.hypervisors.get(part.uri) ?? {});
  if (backend?.allowInitiators && isIscsi(rest)) {
    steps.push({
      id: 'acl',
      host: storage.host,
      title: `allow only ${rest.hypervisors.map((h) => h.initiator).join(', ')} on target ${rest.target}`,
      apply: () => backend.allowInitiators!(rest.target, rest.hypervisors.map((h) => h.initiator)),
    });
  }
  steps.push({
    id: 'local-record',
    host: 'local',
    title: `record the export without ${part.uri} in ${recordPath(stateDir, record.name)}${(await storage.readFile(recordPath(hostRecordDir, record.name))) ? ` and on ${storage.host}` : ''}`,
    async apply() {
      if ((await local.readFile(recordPath(stateDir, record.name))) !== undefined) await writeRecord(local, stateDir, rest);
      if ((await storage.readFile(recordPath(hostRecordDir, record.name))) !== undefined) await writeRecord(storage, hostRecordDir, { ...rest, hypervisors: rest.hypervisors.map(({ attachment: _a, ...h }) => h) });
    },
  });
  o.onPlan?.(steps);
  const r = await runPlan(steps, { ...(o.signal ? { signal: o.signal } : {}), ...(o.onEvent ? { onEvent: o.onEvent } : {}) });
  return { record: rest, applied: r.applied, dryRun: session.dryRun };
}
