// `apply -f STACK` converges to the declared exports and pools; `destroy -f STACK` takes
// them away. The plan is made first, from read-only queries: each declared export is
// created (no record of it), re-done (its record says other settings: unexport, then
// export) or left as it is (every piece where its records say, judged from reads all
// exports share: nothing runs; else export runs again and puts back what is not), and what
// this stack made earlier but no longer declares is removed (export records carry the
// stack's name; the pools it made are listed in a stack record on this machine). Changes
// then run one at a time through the export/unexport workflows and the pool plans: a
// failing one is rolled back by its own plan, the ones before it stay, and the error
// names it.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Session } from '../runner/session.js';
import { ValidationError, VirtIscsiError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { createPoolSteps, deletePoolSteps, poolDefFor, poolDefined, poolSecretUsage, type PoolSpec } from '../hypervisor/pools.js';
import { Virsh } from '../hypervisor/virsh.js';
import { formatPortal, parsePortal } from '../names/portal.js';
import { runPlan, type PlanEvent, type Step } from '../plan/plan.js';
import type { Runner } from '../runner/types.js';
import { exportImage } from './export.js';
import { readJournal } from './journal.js';
import { DEFAULT_HOST_RECORD_DIR, isIscsi, listRecords, localStateDir, readRecord, sameRecord, type ExportRecord } from './records.js';
import { readPoolSecret, type StackExport, type StackExportSettings, type StackPool, type StackSpec } from './stack-file.js';
import { exportStatusOf, HostReads } from './status.js';
import type { WorkflowHooks } from './types.js';
import { unexportImage } from './unexport.js';

export type StackAction = 'create' | 'change' | 'remove' | 'unchanged';

/** One line of the plan: what happens to one export or pool, and why. */
export interface StackChange {
  kind: 'export' | 'pool';
  name: string;
  action: StackAction;
  /** What differs (change), or why it goes (remove). */
  details: string[];
  /** Where it is declared ("exports[2] (web1-data)"); none for what is removed. */
  entry?: string;
}

export interface StackOptions {
  /** Local export records; default $XDG_STATE_HOME/virt-iscsi/exports (stack records sit beside, in stacks/). */
  stateDir?: string;
  signal?: AbortSignal;
  /** Each change as it starts and ends. */
  onChange?: (c: StackChange, phase: 'start' | 'done') => void;
  /** The steps of each export, unexport or pool plan, and their events. */
  onPlan?: (steps: readonly unknown[]) => void;
  onEvent?: (e: PlanEvent) => void;
  /** Tests only: make a step of one export fail. */
  hooks?: (exportName: string) => WorkflowHooks | undefined;
  waitTimeoutMs?: number;
}

export interface StackResult {
  stack: string;
  file: string;
  dryRun: boolean;
  /** Every change, in the order run, with how many steps changed something. */
  changes: Array<StackChange & { applied: number }>;
}

/** A change failed: it was rolled back (or, for a removal, can be run again); those before it stay done. */
export class StackError extends VirtIscsiError {
  readonly kind = 'stack';
  constructor(
    readonly stackName: string,
    readonly change: StackChange,
    readonly done: readonly StackChange[],
    readonly notRun: readonly StackChange[],
    cause: unknown,
  ) {
    const what = `${change.kind} ${JSON.stringify(change.name)}${change.entry ? ` (${change.entry.replace(/ \(.*\)$/, '')})` : ''}`;
    const verb = { create: 'create', change: 're-do', remove: 'remove', unchanged: 'check' }[change.action];
    const after = change.action === 'remove' ? 'removing is safe to run again' : 'what it had done was rolled back';
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`stack ${stackName}: could not ${verb} ${what}: ${why}; ${after}; ${done.length} change(s) before it stay done, ${notRun.length} not run`, { cause });
  }
}

const show = JSON.stringify;

interface PoolRef {
  name: string;
  hypervisor: string;
  connect: string;
}

/**
 * What a stack made that its export records cannot tell: the pools, each with a salted
 * SHA-256 of the CHAP secret it was given (libvirt keeps secret values private, so a
 * changed chap-secret-file is seen here; the file itself is on this same machine).
 */
interface StackRecord {
  version: 1;
  stack: string;
  pools: Array<PoolRef & { secretSha256?: string }>;
}

const samePool = (a: PoolRef, b: PoolRef): boolean => a.name === b.name && a.hypervisor === b.hypervisor && a.connect === b.connect;
const fingerprint = (pool: string, secret: string): string => createHash('sha256').update(`virt-iscsi pool ${pool}\0${secret}`).digest('hex');

const stackRecordPath = (stateDir: string, stack: string): string => posix.join(posix.dirname(stateDir), 'stacks', `${stack}.json`);

async function readStackRecord(local: Runner, file: string): Promise<StackRecord | undefined> {
  const text = await local.readFile(file);
  if (text === undefined) return undefined;
  try {
    const r = JSON.parse(text) as StackRecord;
    if (r.version === 1 && Array.isArray(r.pools)) return r;
  } catch {
    /* reported below */
  }
  throw new ValidationError(`stack record ${file} is not a version 1 virt-iscsi stack record; move it away, or fix it`, 'record');
}

/** A change with what it takes to carry it out. */
interface Planned extends StackChange {
  run(): Promise<number>;
}

interface Context {
  session: Session;
  spec: StackSpec;
  o: StackOptions;
  local: Runner;
  stateDir: string;
  record: StackRecord;
  recordFile: string;
  recordExists: boolean;
  /** What the plan reads of the hosts, shared by every export (nothing changes while it is made). */
  reads: HostReads;
}

const describeExport = (s: StackExportSettings): string => `${s.image} on ${s.storage} to ${s.vm} on ${s.hypervisor}`;
const hostRecordDirOf = (s: { hostRecordDir?: string }): string => s.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR;

// ---- exports --------------------------------------------------------------------------------

/** The export's record, here or on its storage host, and the storage URI it was found through. */
async function findRecord(c: Context, name: string, storage: string, hostRecordDir: string): Promise<ExportRecord | undefined> {
  const mine = await readRecord(c.local, c.stateDir, name);
  if (mine) return mine;
  const there = await readRecord(await c.session.runner(storage), hostRecordDir, name);
  return there && { ...there, storage };
}

/** What differs between the export as recorded and as declared; empty when it is the same export. */
async function differences(c: Context, r: ExportRecord, s: StackExportSettings): Promise<string[]> {
  const out: string[] = [];
  const cmp = (key: string, was: unknown, now: unknown): void => {
    if (was !== now) out.push(`${key} ${show(was ?? null)} -> ${show(now ?? null)}`);
  };
  cmp('image', r.image, s.image);
  cmp('vm', r.vm, s.vm);
  cmp('storage', r.storage, s.storage);
  cmp('hypervisors', r.hypervisors.map((h) => h.uri).join(','), s.hypervisors.join(','));
  cmp('connect', r.hypervisors[0]!.connect, s.connect);
  cmp('cdrom', r.cdrom, s.cdrom);
  cmp('readonly', r.readonly, s.readonly);
  const t = isIscsi(r) ? r : undefined;
  cmp('chap', t?.chapUser !== undefined, s.chap);
  cmp('persist', r.persist, s.persist);
  // Not declared: the earlier run's choice stands, as it does for `export`.
  if (s.mode !== undefined) cmp('mode', r.mode, s.mode);
  if (s.backend !== undefined) cmp('backend', t?.backend, s.backend);
  if (s.controlPort !== undefined) cmp('control-port', t?.backendOptions.controlPort, s.controlPort);
  if (s.confDir !== undefined) cmp('conf-dir', t?.backendOptions.confDir, s.confDir);
  if (s.portal !== undefined && t) {
    // The record holds the address the hypervisor dials: a host name is resolved there first.
    const hv = await c.session.runner(s.hypervisor);
    cmp('portal', t.portal, formatPortal(await new Iscsiadm(hv).resolvePortal(parsePortal(s.portal))));
  }
  return out;
}

function exportIt(c: Context, x: StackExport): Promise<number> {
  const s = x.settings;
  return exportImage(c.session, {
    ...s,
    ...(s.cephConf !== undefined || s.cephId !== undefined ? { ceph: { ...(s.cephConf !== undefined ? { conf: s.cephConf } : {}), ...(s.cephId !== undefined ? { id: s.cephId } : {}) } } : {}),
    stack: c.spec.name,
    stateDir: c.stateDir,
    signal: c.o.signal,
    onPlan: c.o.onPlan,
    onEvent: c.o.onEvent,
    hooks: c.o.hooks?.(s.name),
    waitTimeoutMs: c.o.waitTimeoutMs,
  }).then((r) => r.applied);
}

async function unexportIt(c: Context, name: string, storage: string, hostRecordDir: string): Promise<number> {
  const r = await unexportImage(c.session, { name, storage, hostRecordDir, stateDir: c.stateDir, signal: c.o.signal, onPlan: c.o.onPlan, onEvent: c.o.onEvent });
  return r.applied;
}

/**
 * Nothing export would do: both records are there and alike, no run of it was left
 * half-done, the settings export would record again are the recorded ones, and every
 * piece is where status looks for it (target, LUN serving the image with its serial, ACL,
 * CHAP, secret, pool and volume, the disk where the record says). Judged from the reads
 * every export of the stack shares, so a stack in place costs no question per export.
 */
async function inPlace(c: Context, prior: ExportRecord, s: StackExportSettings, hostRecordDir: string): Promise<boolean> {
  const same = (given: unknown, recorded: unknown): boolean => given === undefined || given === recorded;
  const session = isIscsi(prior) ? prior.session : undefined;
  if (!same(s.replacementTimeout, session?.replacementTimeout) || !same(s.noopOutInterval, session?.noopOutInterval) || !same(s.noopOutTimeout, session?.noopOutTimeout)) return false;
  if (!same(s.cephConf, prior.ceph?.conf) || !same(s.cephId, prior.ceph?.id) || s.portals !== undefined) return false;
  const [local, there, journal] = await Promise.all([
    readRecord(c.local, c.stateDir, s.name),
    readRecord(await c.session.runner(prior.storage), hostRecordDir, s.name),
    readJournal(c.stateDir, s.name),
  ]);
  if (!local || !sameRecord(there, { ...local, storage: there?.storage ?? local.storage }, { withoutAttachments: true }) || journal) return false;
  const st = await exportStatusOf(c.session, { record: local, records: ['local', 'storage'] }, hostRecordDir, c.reads);
  if (!st.healthy) return false;
  return local.hypervisors.every((p) => {
    const h = st.hypervisors.find((x) => x.uri === p.uri);
    return h !== undefined && (h.defined ? p.attachment !== undefined && h.dev === p.attachment.dev : p.attachment === undefined);
  });
}

async function planExport(c: Context, x: StackExport, prior: ExportRecord | undefined): Promise<Planned> {
  const s = x.settings;
  const hostRecordDir = hostRecordDirOf(s);
  const base = { kind: 'export' as const, name: s.name, entry: x.entry };
  const what = describeExport(s);
  if (!prior) return { ...base, action: 'create', details: [what], run: () => exportIt(c, x) };
  if (prior.stack !== undefined && prior.stack !== c.spec.name) {
    throw new ValidationError(`${c.spec.file}: ${x.entry}: export ${show(s.name)} belongs to stack ${show(prior.stack)}; give this one another name`, 'stack');
  }
  const diff = await differences(c, prior, s);
  if (diff.length === 0) {
    // In place: export would only look again at every piece, one export at a time.
    const settled = await inPlace(c, prior, s, hostRecordDir);
    return { ...base, action: 'unchanged', details: [what], run: settled ? async () => 0 : () => exportIt(c, x) };
  }
  return {
    ...base,
    action: 'change',
    details: [...diff, 'unexport, then export again'],
    async run() {
      const removed = await unexportIt(c, s.name, prior.storage, hostRecordDir);
      if (c.session.dryRun) {
        // Export's plan is made from what is there; before the unexport has run, its pieces still are.
        c.session.recorded.push({ host: 'local', shell: `# then export ${s.name} again as declared (planned once the unexport has run)` });
        return removed;
      }
      return removed + (await exportIt(c, x));
    },
  };
}

/** Exports recorded (here, or on the stack's storage hosts) as made by this stack, and no longer declared. */
async function plannedExportRemovals(c: Context, keep: ReadonlySet<string>, defaults: { storage: string; hostRecordDir: string }): Promise<Planned[]> {
  const found = new Map<string, { record: ExportRecord; storage: string; hostRecordDir: string }>();
  for (const r of (await listRecords(c.local, c.stateDir)).records) {
    if (r.stack === c.spec.name && !keep.has(r.name)) found.set(r.name, { record: r, storage: r.storage, hostRecordDir: defaults.hostRecordDir });
  }
  const places = new Map<string, { storage: string; hostRecordDir: string }>();
  for (const p of [defaults, ...c.spec.exports.map((x) => ({ storage: x.settings.storage, hostRecordDir: hostRecordDirOf(x.settings) }))]) {
    places.set(`${p.storage} ${p.hostRecordDir}`, p);
  }
  for (const p of places.values()) {
    for (const r of (await listRecords(await c.session.runner(p.storage), p.hostRecordDir)).records) {
      if (r.stack === c.spec.name && !keep.has(r.name) && !found.has(r.name)) found.set(r.name, { record: r, ...p });
    }
  }
  return [...found.values()]
    .sort((a, b) => a.record.name.localeCompare(b.record.name))
    .map(({ record: r, storage, hostRecordDir }) => ({
      kind: 'export',
      name: r.name,
      action: 'remove',
      details: [`${r.image} on ${storage} to ${r.vm}: no longer declared`],
      run: () => unexportIt(c, r.name, storage, hostRecordDir),
    }));
}

// ---- pools ----------------------------------------------------------------------------------

async function writeStackRecord(c: Context): Promise<void> {
  const dir = posix.dirname(c.recordFile);
  if (c.record.pools.length === 0) {
    if (c.recordExists) await c.local.removeFile(c.recordFile);
    c.recordExists = false;
    return;
  }
  if ((await c.local.run(['test', '-d', dir], { query: true })).exitCode !== 0) {
    const r = await c.local.run(['mkdir', '-p', '-m', '0700', dir]);
    if (r.exitCode !== 0) throw new ValidationError(`cannot make ${dir}: ${r.stderr.trim()}`, 'record');
  }
  await c.local.writeFile(c.recordFile, `${JSON.stringify(c.record, null, 2)}\n`, { mode: 0o600 });
  c.recordExists = true;
}

/** Records that the stack made the pool (with its secret's fingerprint), or that it is gone. */
async function remember(c: Context, p: PoolRef, made: { secret?: string } | false): Promise<void> {
  const others = c.record.pools.filter((q) => !samePool(q, p));
  const entry = made && { name: p.name, hypervisor: p.hypervisor, connect: p.connect, ...(made.secret !== undefined ? { secretSha256: fingerprint(p.name, made.secret) } : {}) };
  const pools = entry ? [...others, entry] : others;
  if (JSON.stringify(pools) === JSON.stringify(c.record.pools)) return;
  c.record.pools = pools;
  await writeStackRecord(c);
}

async function poolSpec(c: Context, p: StackPool): Promise<PoolSpec> {
  const spec: PoolSpec = { name: p.name, type: p.type, portal: parsePortal(p.portal), target: p.target, autostart: p.autostart };
  if (p.initiator) spec.initiator = p.initiator;
  if (p.chap) {
    const secret = await readPoolSecret(c.spec, p);
    if (secret !== undefined) spec.chap = { user: p.chap.user, secret };
  }
  return spec;
}

async function runPool(c: Context, steps: readonly Step[]): Promise<number> {
  c.o.onPlan?.(steps);
  return (await runPlan(steps, { signal: c.o.signal, onEvent: c.o.onEvent })).applied;
}

/** What keeps a pool that is defined as declared from being as declared: not running, autostart, its secret. */
async function poolDrift(c: Context, virsh: Virsh, p: StackPool, spec: PoolSpec): Promise<string[]> {
  const out: string[] = [];
  const info = await virsh.poolInfo(p.name);
  if (info?.state !== 'running') out.push(`not running (${info?.state ?? 'gone'})`);
  if (info && info.autostart !== p.autostart) out.push(`autostart ${info.autostart ? 'on' : 'off'} -> ${p.autostart ? 'on' : 'off'}`);
  if (spec.chap) {
    const known = c.record.pools.find((q) => samePool(q, p))?.secretSha256;
    if ((await virsh.secretByUsage(poolSecretUsage(p.name))) === undefined) out.push('its CHAP secret is missing');
    else if (known !== fingerprint(p.name, spec.chap.secret)) out.push(known ? 'chap-secret-file holds another secret: set it again' : 'its CHAP secret was not set by this stack: set it');
  }
  return out;
}

async function planPool(c: Context, p: StackPool): Promise<Planned> {
  const virsh = new Virsh(await c.session.runner(p.hypervisor), p.connect);
  const spec = await poolSpec(c, p);
  const base = { kind: 'pool' as const, name: p.name, entry: p.entry };
  const what = `${p.type} pool of ${p.target} at ${p.portal} on ${p.hypervisor}`;
  const create = async (): Promise<number> => {
    const n = await runPool(c, createPoolSteps(virsh, spec, { timeoutMs: c.o.waitTimeoutMs }));
    await remember(c, p, { secret: spec.chap?.secret });
    return n;
  };
  let same: boolean;
  try {
    same = await poolDefined(virsh, poolDefFor(spec));
  } catch (e) {
    if (!(e instanceof ValidationError)) throw e;
    return {
      ...base,
      action: 'change',
      details: [`defined otherwise on ${p.hypervisor}: delete it, then create it as declared`],
      run: async () => (await runPool(c, await deletePoolSteps(virsh, p.name))) + (await create()),
    };
  }
  if (!same) return { ...base, action: 'create', details: [what], run: create };
  const drift = await poolDrift(c, virsh, p, spec);
  if (drift.length === 0) {
    return {
      ...base,
      action: 'unchanged',
      details: [what],
      async run() {
        await remember(c, p, { secret: spec.chap?.secret });
        return 0;
      },
    };
  }
  // Create's steps each look first, so only what drifted is done; autostart off is not one of them.
  const disable: Step[] = p.autostart
    ? []
    : [{ title: `stop pool ${p.name} starting with libvirtd`, check: async () => (await virsh.poolInfo(p.name))?.autostart === false, apply: () => virsh.poolAutostart(p.name, false) }];
  return {
    ...base,
    action: 'change',
    details: drift,
    async run() {
      const n = await runPool(c, [...createPoolSteps(virsh, spec, { timeoutMs: c.o.waitTimeoutMs }), ...disable]);
      await remember(c, p, { secret: spec.chap?.secret });
      return n;
    },
  };
}

function removePool(c: Context, p: PoolRef, why: string): Planned {
  return {
    kind: 'pool',
    name: p.name,
    action: 'remove',
    details: [why],
    async run() {
      const virsh = new Virsh(await c.session.runner(p.hypervisor), p.connect);
      const n = await runPool(c, await deletePoolSteps(virsh, p.name));
      await remember(c, p, false);
      return n;
    },
  };
}

// ---- the plan and its run -------------------------------------------------------------------

async function context(session: Session, spec: StackSpec, o: StackOptions): Promise<Context> {
  const stateDir = o.stateDir ?? localStateDir();
  const local = await session.runner('local');
  const recordFile = stackRecordPath(stateDir, spec.name);
  const record = await readStackRecord(local, recordFile);
  return { session, spec, o, local, stateDir, record: record ?? { version: 1, stack: spec.name, pools: [] }, recordFile, recordExists: record !== undefined, reads: new HostReads(session) };
}

const defaultsOf = (spec: StackSpec): { storage: string; hostRecordDir: string } => ({ storage: spec.defaults.storage, hostRecordDir: spec.defaults.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR });

async function applyPlan(c: Context): Promise<Planned[]> {
  const spec = c.spec;
  const declared = new Set(spec.exports.map((x) => x.settings.name));
  const removals = await plannedExportRemovals(c, declared, defaultsOf(spec));
  const isDeclared = (q: PoolRef): boolean => spec.pools.some((p) => samePool(p, q));
  const poolRemovals: Planned[] = [];
  for (const q of c.record.pools.filter((q) => !isDeclared(q))) {
    const there = (await new Virsh(await c.session.runner(q.hypervisor), q.connect).poolInfo(q.name)) !== undefined;
    if (there) poolRemovals.push(removePool(c, q, `no longer declared (on ${q.hypervisor})`));
  }
  const pools = await Promise.all(spec.pools.map((p) => planPool(c, p)));
  const priors = await Promise.all(spec.exports.map((x) => findRecord(c, x.settings.name, x.settings.storage, hostRecordDirOf(x.settings))));
  // Every hypervisor's pools, volumes and domains asked in one go, for every export to look at.
  await c.reads.prefetch(priors.filter((r): r is ExportRecord => r !== undefined));
  const exports = await Promise.all(spec.exports.map((x, i) => planExport(c, x, priors[i])));
  return [...removals, ...poolRemovals, ...pools, ...exports];
}

async function destroyPlan(c: Context): Promise<Planned[]> {
  const spec = c.spec;
  const out: Planned[] = [];
  const declared = [...spec.exports].reverse();
  const found = await Promise.all(declared.map((x) => findRecord(c, x.settings.name, x.settings.storage, hostRecordDirOf(x.settings))));
  // Each hypervisor's pools and domains asked in one go: what a removal finds unchanged by the ones before it is not asked again.
  await c.reads.prefetch(found.filter((r): r is ExportRecord => r !== undefined));
  for (const [i, x] of declared.entries()) {
    const s = x.settings;
    const hostRecordDir = hostRecordDirOf(s);
    const r = found[i];
    if (!r) continue;
    if (r.stack !== undefined && r.stack !== spec.name) {
      throw new ValidationError(`${spec.file}: ${x.entry}: export ${show(s.name)} belongs to stack ${show(r.stack)}; leaving it alone (remove it from this file, or destroy that stack)`, 'stack');
    }
    out.push({ kind: 'export', name: s.name, entry: x.entry, action: 'remove', details: [`${r.image} on ${r.storage} to ${r.vm}`], run: () => unexportIt(c, s.name, r.storage, hostRecordDir) });
  }
  // What this stack made and no longer declares goes too.
  out.unshift(...(await plannedExportRemovals(c, new Set(spec.exports.map((x) => x.settings.name)), defaultsOf(spec))));
  const pools = [...spec.pools.map((p) => ({ name: p.name, hypervisor: p.hypervisor, connect: p.connect, entry: p.entry as string | undefined }))];
  for (const q of c.record.pools) if (!pools.some((p) => samePool(p, q))) pools.push({ name: q.name, hypervisor: q.hypervisor, connect: q.connect, entry: undefined });
  for (const p of pools.reverse()) {
    if ((await new Virsh(await c.session.runner(p.hypervisor), p.connect).poolInfo(p.name)) === undefined) continue;
    out.push({ ...removePool(c, p, `on ${p.hypervisor}`), ...(p.entry ? { entry: p.entry } : {}) });
  }
  return out;
}

const info = ({ kind, name, action, details, entry }: Planned): StackChange => ({ kind, name, action, details, ...(entry ? { entry } : {}) });

async function runChanges(c: Context, planned: Planned[], onPlanned?: (changes: readonly StackChange[]) => void): Promise<StackResult> {
  onPlanned?.(planned.map(info));
  const changes: StackResult['changes'] = [];
  for (const [i, p] of planned.entries()) {
    const change = info(p);
    c.o.onChange?.(change, 'start');
    try {
      changes.push({ ...change, applied: await p.run() });
    } catch (e) {
      throw new StackError(c.spec.name, change, changes, planned.slice(i + 1).map(info), e);
    }
    c.o.onChange?.(change, 'done');
  }
  return { stack: c.spec.name, file: c.spec.file, dryRun: c.session.dryRun, changes };
}

/** The plan of `apply`, changing nothing: removals first, then the declared pools and exports in file order. */
export async function planStack(session: Session, spec: StackSpec, o: StackOptions = {}): Promise<StackChange[]> {
  return (await applyPlan(await context(session, spec, o))).map(info);
}

/**
 * Converges to the stack: plans (nothing changes when that fails), hands the plan to
 * `onPlanned`, then runs each change; the first that fails ends the run with a StackError.
 */
export async function applyStack(session: Session, spec: StackSpec, o: StackOptions & { onPlanned?: (changes: readonly StackChange[]) => void } = {}): Promise<StackResult> {
  const c = await context(session, spec, o);
  return runChanges(c, await applyPlan(c), o.onPlanned);
}

/** Removes every declared export and pool, and whatever else the stack made. */
export async function destroyStack(session: Session, spec: StackSpec, o: StackOptions & { onPlanned?: (changes: readonly StackChange[]) => void } = {}): Promise<StackResult> {
  const c = await context(session, spec, o);
  const result = await runChanges(c, await destroyPlan(c), o.onPlanned);
  c.record.pools = [];
  await writeStackRecord(c);
  return result;
}

