// `repair [NAME...]`: each export brought back to what its records say. The plan is the
// export's own (exportSteps), built from the record instead of from flags: the same names,
// serial, IQN, initiators and hypervisors, and the CHAP secret read back from the target's
// configuration, never a new one. Every step looks first, so what is in place is left
// alone and only what is gone is made again: a target, LUN, allowed initiator or CHAP
// account, the daemon, a pool (defined, started), the libvirt secret, the node record and
// session, the disk in the domain, the records. Repair never touches the image's bytes
// and never changes what serves other data: a target whose LUN serves another file, or an
// image that is gone, is reported and left as it is.
//
// A failing step stops that export's repair; what the steps before it made again stays
// (each is a piece the record names). The run is journaled like an export's, so a repair
// killed half-way is an interrupted export that `unexport` (or repair again) finishes.
import { PrerequisiteError, ValidationError, VirtIscsiError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { replugStep } from '../hypervisor/disk-steps.js';
import { loginSteps } from '../hypervisor/login.js';
import { sameIqn } from '../names/iscsi-name.js';
import { parsePortal, samePortal } from '../names/portal.js';
import { checkAbsolutePath } from '../names/values.js';
import { runPlan, sleep } from '../plan/plan.js';
import type { Session } from '../runner/session.js';
import { exportSteps, markOf, missingSecret, targetSpec, withHooks } from './export.js';
import { Journal, stillRunning } from './journal.js';
import { MODES, type ModeEntry } from './modes.js';
import { asIscsi, DEFAULT_HOST_RECORD_DIR, isIscsi, localStateDir, recordPool, recordSecretUsage, type ExportRecord } from './records.js';
import { gatherHostFacts, imageServing, lunPath, type HostFacts, type ResolvedExport } from './resolve.js';
import { CephError } from '../storage/rbd/rbd.js';
import { isRbdRef, parseRbdRef } from '../storage/rbd/ref.js';
import { exportStatusOf, knownExports, type ExportStatus, type KnownExport, type StatusOptions } from './status.js';
import type { RunControl, WorkflowHooks, WorkflowStep } from './types.js';

/** The version of the JSON document `repair --json` prints: fields may be added, never renamed. */
export const REPAIR_VERSION = 1;

export interface RepairOptions extends StatusOptions, RunControl {
  /** How long to wait for another run's lock on the storage host; default 60 s. */
  lockTimeoutMs?: number;
  /** How long to wait for LUNs and devices to appear; default 30 s. */
  waitTimeoutMs?: number;
  /** How long to wait, after the plan, for QEMU to log in again by itself; default 30 s. */
  settleMs?: number;
  /** Aborting stops before the next step (what is made again stays) and repairs no further export. */
  signal?: AbortSignal;
  /** Told before each export's plan runs. */
  onExport?: (name: string) => void;
  hooks?: WorkflowHooks;
}

/** One thing repair made again (or, in a dry run, would). */
export interface RepairChange {
  /** The step's id ("target", "pool-start", "attach"...). */
  step: string;
  host?: string;
  /** For people: "re-created target ... on local". */
  what: string;
}

export interface ExportRepair {
  name: string;
  /**
   * healthy: nothing was missing; repaired: pieces were made again and status is healthy;
   * planned: a dry run, `changes` is what a real run would do; not-repaired: `error` or
   * `problems` say why; busy: another virt-iscsi is changing it right now.
   */
  outcome: 'healthy' | 'repaired' | 'planned' | 'not-repaired' | 'busy';
  changes: RepairChange[];
  /** Why it could not be repaired (one line), when a step failed or repair refused. */
  error?: string;
  /** What status still finds wrong afterwards (none when healthy). */
  problems: string[];
  /** Status after the repair (unset in a dry run). */
  healthy?: boolean;
}

export interface RepairReport {
  repairVersion: typeof REPAIR_VERSION;
  dryRun: boolean;
  exports: ExportRepair[];
  /** Record and journal files that could not be read: reported, never used. */
  unreadable: Array<{ file: string; error: string }>;
}

/** Repair refuses: doing it would touch data, or make up what the record does not hold. */
export class RepairRefusedError extends VirtIscsiError {
  readonly kind = 'repair-refused';
}

const show = JSON.stringify;
/** Native rbd dials no portal: QEMU reaches the cluster's monitors named in the record. */
const NO_PORTAL = { host: '', port: 0 };
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/** What each step made again, said once it is done (steps that only wait say nothing). */
const REDONE: Record<string, (r: ExportRecord, host: string) => string> = {
  daemon: (r, h) => `started the ${asIscsi(r).backend} target daemon on ${h}`,
  'storage-record': (_r, h) => `wrote the export's record on ${h} again`,
  target: (r, h) => `re-created target ${asIscsi(r).target} on ${h} (LUN ${asIscsi(r).lun} ${r.image}, serial ${asIscsi(r).serial})`,
  secret: (r, h) => `re-defined libvirt secret ${recordSecretUsage(r)} on ${h} with ${isIscsi(r) ? "the target's CHAP password" : `the cephx key of client.${r.ceph?.id ?? 'admin'}`}`,
  'pool-define': (r, h) => `re-defined pool ${recordPool(r)} on ${h}`,
  'pool-start': (r, h) => `started pool ${recordPool(r)} on ${h}`,
  'pool-autostart': (r, h) => `marked pool ${recordPool(r)} to start with libvirtd on ${h} again`,
  'pool-session': (r, h) => `logged ${h} in to ${asIscsi(r).target} again for pool ${recordPool(r)}, which ran without its session`,
  node: (r, h) => `re-created the open-iscsi node record of ${asIscsi(r).target} on ${h}`,
  'node-settings': (r, h) => `set the node record's settings for ${asIscsi(r).target} on ${h} again`,
  'node-chap': (r, h) => `set CHAP in the node record of ${asIscsi(r).target} on ${h} again`,
  login: (r, h) => `logged ${h} in to ${asIscsi(r).target} again`,
  attach: (r, h) => `re-attached the export's ${r.cdrom ? 'cdrom' : 'disk'} to domain ${r.vm} on ${h}`,
  replug: (r, h) => `gave running domain ${r.vm} on ${h} its ${r.cdrom ? 'cdrom' : 'disk'} again, on the new session's device`,
  'local-record': () => "wrote the export's record on this machine again",
};
const WAITS = new Set(['volume', 'device']);

/** The record as an export resolves it before it runs: no attachment (the attach step finds or makes it). */
const withoutAttachments = (r: ExportRecord): ExportRecord => ({ ...r, hypervisors: r.hypervisors.map(({ attachment: _a, ...h }) => h) });

/** What the live target lacks of the record: the pieces `complete` adds. */
function targetLacks(x: ResolvedExport, lun: 'image' | 'missing' | 'other' | undefined): string[] {
  const t = x.target;
  const r = asIscsi(x.record);
  if (!t) return [];
  return [
    ...(lun === 'missing' ? [`LUN ${r.lun}`] : []),
    ...r.hypervisors.filter((h) => !t.acls.some((a) => sameIqn(a, h.initiator))).map((h) => `initiator ${h.initiator}`),
    ...(r.chapUser && !t.accounts.includes(r.chapUser) ? [`CHAP account ${r.chapUser}`] : []),
    ...(t.persisted === false ? ["its persistent configuration"] : []),
  ];
}

/** The record's export, resolved from the record: refuses what repair must not do. */
async function resolveFromRecord(session: Session, k: KnownExport, o: RepairOptions, stateDir: string, hostRecordDir: string): Promise<{ x: ResolvedExport; lun: 'image' | 'missing' | 'other' | undefined }> {
  const r = k.record;
  const mode: ModeEntry = MODES[r.mode];
  const rbd = isRbdRef(r.image) ? parseRbdRef(r.image) : undefined;
  const lockOwner = `repair ${r.name}`;
  let facts: HostFacts;
  try {
    facts = await gatherHostFacts(session, {
      storage: r.storage,
      access: isIscsi(r)
        ? {
            backend: r.backend,
            controlPort: r.backendOptions.controlPort,
            confDir: r.backendOptions.confDir,
            portal: r.portal,
            ...('portals' in r ? { portals: r.portals } : {}),
            signal: o.signal,
            lockTimeoutMs: o.lockTimeoutMs,
            lockOwner,
          }
        : { signal: o.signal, lockTimeoutMs: o.lockTimeoutMs, lockOwner },
      hypervisors: r.hypervisors.map((h) => ({ uri: h.uri, connect: h.connect })),
      vm: r.vm,
      image: r.image,
      // An rbd: image is looked up in its cluster with the record's client.
      ...(rbd ? { rbd, client: r.ceph ?? {} } : {}),
      name: r.name,
      stateDir,
      hostRecordDir,
      candidates: [mode],
    });
  } catch (e) {
    if ((e instanceof ValidationError && e.field === 'image') || (e instanceof CephError && (e.reason === 'no-image' || e.reason === 'no-pool'))) {
      throw new RepairRefusedError(`${e.message}; repair never makes or changes an image: put it back, or remove the export with "virt-iscsi unexport ${r.name}"`);
    }
    throw e;
  }
  const storage = facts.storage;
  for (const h of facts.hypervisors) {
    const why = mode.unavailable(h.facts, h.uri);
    if (why) throw new RepairRefusedError(why);
  }
  if (!facts.hypervisors.some((h) => h.facts.view)) {
    throw new RepairRefusedError(`domain ${show(r.vm)} is not defined on ${r.hypervisors.map((h) => h.uri).join(' or ')}; repair never defines a domain`);
  }
  const common = {
    record: withoutAttachments(r),
    mode,
    prior: r,
    ...(facts.localRecord ? { localRecord: facts.localRecord } : {}),
    ...(facts.journal ? { journal: facts.journal } : {}),
    chapSecretIsNew: false,
    storage,
    local: facts.local,
    stateDir,
    hostRecordDir,
    dryRun: session.dryRun,
  };
  if (!isIscsi(r)) {
    // Native rbd: the export's own plan (ceph secret with the client's key, disk) from the
    // record; the cluster's monitors and the key are read as export reads them.
    if (storage.cephError !== undefined) throw storage.cephError;
    const hypervisors = facts.hypervisors.map((h, i) => ({ uri: h.uri, runner: h.runner, virsh: h.virsh, facts: h.facts, initiator: r.hypervisors[i]!.initiator, portal: NO_PORTAL, prior: r.hypervisors[i]! }));
    return { x: { ...common, hypervisors }, lun: undefined };
  }
  if (!storage.iscsi) throw storage.iscsiError;
  const iscsi = storage.iscsi;
  const serving = await imageServing(storage, iscsi, lunPath(r.image, isRbdRef(r.image) ? parseRbdRef(r.image) : undefined), r.target);
  if (serving.other) {
    throw new RepairRefusedError(`image ${show(r.image)} is also served by target ${serving.other.target.iqn} as LUN ${serving.other.lun} on ${r.storage}: left alone (two targets writing one image would corrupt it)`);
  }
  if (serving.lun === 'other') {
    throw new RepairRefusedError(`target ${r.target} on ${r.storage} serves ${serving.oursServes}, not the export's image ${show(r.image)}: left alone (repair never changes what a LUN serves)`);
  }
  const chapSecret = r.chapUser ? await iscsi.backend.storedChapSecret(r.target, r.chapUser) : undefined;
  const portals = await Promise.all(facts.hypervisors.map((h) => new Iscsiadm(h.runner).resolvePortal(parsePortal(r.portal))));
  const x: ResolvedExport = {
    ...common,
    ...(serving.ours ? { target: serving.ours } : {}),
    ...(chapSecret !== undefined ? { chapSecret } : {}),
    iscsi,
    hypervisors: facts.hypervisors.map((h, i) => ({ uri: h.uri, runner: h.runner, virsh: h.virsh, facts: h.facts, initiator: r.hypervisors[i]!.initiator, portal: portals[i]!, prior: r.hypervisors[i]! })),
  };
  return { x, lun: serving.lun };
}

/** The steps repair adds to the export's: what the live target lacks, and a pool whose host session is gone. */
function repairSteps(
  x: ResolvedExport,
  lun: 'image' | 'missing' | 'other' | undefined,
  wait: { timeoutMs: number; signal?: AbortSignal },
  note: (step: string, host: string, what: string) => void,
): { afterTarget: WorkflowStep[]; beforeStart: Map<string, WorkflowStep> } {
  const r = asIscsi(x.record);
  const backend = x.iscsi!.backend;
  const lacks = targetLacks(x, lun);
  const afterTarget: WorkflowStep[] = [
    {
      id: 'target-content',
      host: r.storage,
      title: `give target ${r.target} on ${r.storage} what it lacks: ${lacks.join(', ') || 'nothing'}`,
      // A target made by this run's target step has it all.
      check: async () => lacks.length === 0,
      async apply() {
        if (!backend.complete) throw new RepairRefusedError(`target ${r.target} on ${r.storage} lacks ${lacks.join(', ')}, and the ${backend.name} backend cannot add it to a live target; unexport ${r.name} and export it again`);
        if (r.chapUser && x.chapSecret === undefined && lacks.includes(`CHAP account ${r.chapUser}`)) throw new ValidationError(missingSecret(r), 'chap');
        const lines = await backend.complete(targetSpec(x, r));
        // A dry run says what it would do with the step's title instead.
        if (!x.dryRun) for (const line of lines) note('target-content', r.storage, line);
      },
    },
  ];
  // A pool whose host login is gone still says "running", and libvirt cannot stop it cleanly
  // (its logout fails): the host logs in again on the node record the pool's login made,
  // as the pool's start would, and the pool is refreshed.
  const beforeStart = new Map<string, WorkflowStep>();
  const pool = recordPool(r);
  if (x.mode.pool && x.mode.session === 'host' && pool) {
    for (const h of x.hypervisors) {
      const known = h.facts.pools.find((p) => p.name === pool);
      const iscsiadm = new Iscsiadm(h.runner);
      beforeStart.set(h.uri, {
        id: 'pool-session',
        host: h.uri,
        title: `log ${h.uri} in to ${r.target} again for pool ${pool}, when the pool runs without its session`,
        async check() {
          if (known?.state !== 'running') return true; // pool-start logs in
          try {
            return (await iscsiadm.sessions()).some((s) => sameIqn(s.iqn, r.target) && samePortal(s.portal, h.portal));
          } catch (e) {
            if (e instanceof PrerequisiteError) return true;
            throw e;
          }
        },
        async apply() {
          await runPlan(loginSteps(iscsiadm, { target: r.target, portal: h.portal, luns: [r.lun], serial: r.serial, wait }));
          await h.virsh.poolRefresh(pool);
        },
      });
    }
  }
  return { afterTarget, beforeStart };
}

/** The steps whose change logs a host in again: a new session, so new SCSI devices. */
const LOGINS = new Set(['login', 'pool-session', 'pool-start']);

/**
 * After each hypervisor's attach step, a replug step that runs when this run logged that
 * host in again and the domain runs with the disk: QEMU still holds the device the lost
 * session had (gone: every read and write fails) until it is given the disk again.
 */
function withReplug(x: ResolvedExport, steps: WorkflowStep[]): WorkflowStep[] {
  if (!x.mode.replugAfterLogin) return steps;
  const relogged = new Set<string>();
  const out: WorkflowStep[] = [];
  for (const s of steps) {
    const host = s.host;
    if (host && LOGINS.has(s.id ?? '')) {
      out.push({ ...s, apply: async () => { await s.apply(); relogged.add(host); } });
      continue;
    }
    out.push(s);
    const h = s.id === 'attach' ? x.hypervisors.find((v) => v.virsh.runner.host === host) : undefined;
    if (h?.facts.view && host) out.push({ ...replugStep(h.virsh, h.facts.view, markOf(x.record), () => relogged.has(host)), id: 'replug' });
  }
  return out;
}

/** Runs one export's repair plan; returns what it made again. */
async function repairOne(session: Session, k: KnownExport, o: RepairOptions, stateDir: string, hostRecordDir: string): Promise<RepairChange[]> {
  const { x, lun } = await resolveFromRecord(session, k, o, stateDir, hostRecordDir);
  const changes: RepairChange[] = [];
  const note = (step: string, host: string, what: string): void => void changes.push({ step, host, what });
  const journal = x.dryRun ? undefined : await Journal.begin(stateDir, x.record);
  const plan = exportSteps(x, { waitTimeoutMs: o.waitTimeoutMs, signal: o.signal }, journal);
  // Native rbd has no target to complete, nor a pool session.
  const extra = isIscsi(x.record) ? repairSteps(x, lun, { timeoutMs: o.waitTimeoutMs ?? 30_000, ...(o.signal ? { signal: o.signal } : {}) }, note) : { afterTarget: [], beforeStart: new Map<string, WorkflowStep>() };
  const steps: WorkflowStep[] = [];
  let hv = 0;
  for (const s of plan.steps) {
    if (s.id === 'pool-start') {
      const restart = extra.beforeStart.get(x.hypervisors[hv++]?.uri ?? '');
      if (restart) steps.push(restart);
    }
    steps.push(s);
    if (s.id === 'target') steps.push(...extra.afterTarget);
  }
  // No rollback: every piece a step makes again is one the record names, so it stays when a later step fails.
  const run = withHooks(withReplug(x, steps), o.hooks).map(({ undo: _u, ...s }): WorkflowStep => s);
  o.onPlan?.(run);
  try {
    await runPlan(run, {
      signal: o.signal,
      ...(journal ? { journal } : {}),
      onEvent: (e) => {
        o.onEvent?.(e);
        if (e.type !== 'done' || WAITS.has(e.step.id ?? '')) return;
        const host = e.step.host ?? 'local';
        if (x.dryRun) return note(e.step.id ?? 'step', host, e.step.title);
        if (e.step.id === 'target-content') return;
        const say = REDONE[e.step.id ?? ''];
        note(e.step.id ?? 'step', host, say ? say(x.record, host) : e.step.title);
      },
    });
  } catch (e) {
    await journal?.end('rolled-back');
    throw Object.assign(e as object, { changes });
  }
  await journal?.end('done');
  return changes;
}

/** Status again; QEMU logs in again by itself a few seconds after its target is back: that is waited for. */
async function settle(session: Session, k: KnownExport, o: RepairOptions, hostRecordDir: string): Promise<ExportStatus> {
  const deadline = Date.now() + (o.settleMs ?? 30_000);
  for (;;) {
    const st = await exportStatusOf(session, { record: k.record, records: k.records }, hostRecordDir);
    const onlySessions = Object.entries(st.health).every(([key, h]) => key === 'session' || h === 'ok' || h === 'n/a');
    if (st.healthy || !onlySessions || Date.now() >= deadline) return st;
    await sleep(1000, o.signal);
  }
}

/**
 * Repairs every export this machine has a record of (with `o.storage`, that storage host's
 * too), or only `o.names`, one after the other. An unknown name fails before anything runs.
 */
export async function repairExports(session: Session, o: RepairOptions = {}): Promise<RepairReport> {
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  const hostRecordDir = checkAbsolutePath('--host-records', o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR, 'host-records');
  const known = await knownExports(session, o);
  const out: ExportRepair[] = [];
  for (const k of known.exports) {
    if (o.signal?.aborted) break;
    const name = k.record.name;
    if (k.journal && stillRunning(k.journal)) {
      out.push({ name, outcome: 'busy', changes: [], error: `export ${name} is being changed by a running virt-iscsi (pid ${k.journal.pid}): left alone`, problems: [] });
      continue;
    }
    o.onExport?.(name);
    let changes: RepairChange[] = [];
    let error: string | undefined;
    try {
      changes = await repairOne(session, k, o, stateDir, hostRecordDir);
    } catch (e) {
      if (o.signal?.aborted) throw e;
      changes = (e as { changes?: RepairChange[] }).changes ?? [];
      error = `export ${name}: ${message(e)}`;
    }
    if (session.dryRun) {
      out.push({ name, outcome: error ? 'not-repaired' : changes.length > 0 ? 'planned' : 'healthy', changes, ...(error ? { error } : {}), problems: [] });
      continue;
    }
    // The record as repair left it (the attach step may have put the disk on another dev).
    const st = await settle(session, k, o, hostRecordDir);
    const outcome: ExportRepair['outcome'] = error || !st.healthy ? 'not-repaired' : changes.length > 0 ? 'repaired' : 'healthy';
    out.push({ name, outcome, changes, ...(error ? { error } : {}), problems: st.healthy ? [] : st.problems, healthy: st.healthy });
  }
  return { repairVersion: REPAIR_VERSION, dryRun: session.dryRun, exports: out, unreadable: known.unreadable };
}

/** Some exports are not healthy after repair: one line naming each and why. */
export class RepairIncompleteError extends VirtIscsiError {
  readonly kind = 'repair-incomplete';
  constructor(readonly report: RepairReport) {
    const bad = report.exports.filter((e) => e.outcome === 'not-repaired' || e.outcome === 'busy');
    super(`could not repair ${bad.map((e) => `${e.name} (${(e.error ?? e.problems[0] ?? 'not healthy').replace(new RegExp(`^export ${e.name.replace(/\./g, '\\.')}: `), '')})`).join('; ')}`);
  }
}
