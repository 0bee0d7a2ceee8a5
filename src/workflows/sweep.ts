// `sweep`: what virt-iscsi made that no record or journal owns any more, on the hosts this
// machine's records and journals name (and those given): left by a run killed half-way
// whose journal is gone, by records deleted by hand, by a host that came back after an
// unexport gave up on it. Listed by default; removed when told, in the order that leaves
// no initiator retrying against nothing: disks from domains, pools, sessions and node
// records, libvirt secrets, multipath drop-ins, then targets (with their CHAP accounts
// and configuration) and CHAP accounts bound to no target.
//
// What is ours is told by marks only virt-iscsi puts there, never by a name alone: a disk
// with the user alias ua-virt-iscsi-NAME; a pool virt-iscsi-NAME whose source is a target
// ending in :NAME; a libvirt secret whose description virt-iscsi wrote; a target whose
// backend record says which export made it; a CHAP account virt-iscsi-NAME bound to no
// target; a node record or session of a target ending in :NAME that its portal no longer
// offers (SendTargets discovery) or that this sweep removes; a multipath drop-in with our
// header. An export name is owned while any record or journal names it, here or on a
// storage host looked at (one that cannot be read makes its name owned too). A host that
// cannot be reached stops the sweep before anything is removed: what it holds could own
// what the others have.
import { posix } from 'node:path';
import { ConnectError, VirtIscsiError } from '../errors.js';
import { deviceXml } from '../hypervisor/disks.js';
import { hasProgram } from '../hypervisor/host.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { logoutSteps } from '../hypervisor/login.js';
import { ourDropIns } from '../hypervisor/multipath-dropins.js';
import type { DomainView } from '../hypervisor/placement.js';
import { deletePoolSteps, poolSecretDescription } from '../hypervisor/pools.js';
import { secretDeleteStep } from '../hypervisor/secret-steps.js';
import { DEFAULT_LIBVIRT_URI, Virsh } from '../hypervisor/virsh.js';
import { checkLibvirtUri } from '../names/libvirt-uri.js';
import { sameIqn } from '../names/iscsi-name.js';
import { formatPortal, samePortal, type Portal } from '../names/portal.js';
import { checkAbsolutePath } from '../names/values.js';
import { runPlan, type Step } from '../plan/plan.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Session } from '../runner/session.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from '../storage/backend.js';
import { createBackend, detectBackend, type BackendName } from '../storage/backends.js';
import type { DiskDef } from '../xml/disk.js';
import { parsePool } from '../xml/pool.js';
import { parseSecret } from '../xml/secret.js';
import { listJournals } from './journal.js';
import { chapUser, checkExportName, diskAlias, EXPORT_NAME, poolName, secretDescription, secretUsage } from './names.js';
import { viewIfThere } from './probe.js';
import { DEFAULT_HOST_RECORD_DIR, isIscsi, listRecords, localStateDir, type ExportRecord } from './records.js';
import { sessionsEnd, targetGone } from './teardown.js';
import type { RecordDirs, RunControl } from './types.js';

/** The version of the JSON document `sweep --json` prints: fields may be added, never renamed. */
export const SWEEP_VERSION = 1;

/** Removed in this order (a kind's place in the list). */
export const ORPHAN_KINDS = ['disk', 'pool', 'session', 'secret', 'multipath', 'target', 'account'] as const;
export type OrphanKind = (typeof ORPHAN_KINDS)[number];

export interface SweepOptions extends RecordDirs, RunControl {
  /** Only what was made for these exports (default: every export no record or journal owns). */
  names?: string[];
  /** More storage hosts to look at (host URIs), with the target software there (default: the one that answers). */
  storage?: string[];
  backend?: BackendName;
  /** tgt: a private tgtd's control port, and its conf dir, on the storage hosts given. */
  controlPort?: number;
  confDir?: string;
  /** More hypervisors to look at (host URIs), reached with `connect` (default qemu:///system). */
  hypervisors?: string[];
  connect?: string;
  /** Remove what is found (else only list it). Under a dry-run Session the removal is only printed. */
  remove?: boolean;
  /** Delete an orphan target even when initiators are still logged in to it. */
  force?: boolean;
  /** How long to wait for sessions to end (a detached disk's QEMU) before a target goes; default 15 s. */
  sessionWaitMs?: number;
  lockTimeoutMs?: number;
}

export interface Orphan {
  kind: OrphanKind;
  /** The host URI it is on. */
  host: string;
  /** What it is called there: DOMAIN/DEV, the pool, the secret's usage, PORTAL/IQN, the file, the IQN, the CHAP user. */
  name: string;
  /** The export it was made for, which no record or journal names any more. */
  export: string;
  /** For people. */
  detail: string;
  /** After a removal: it is gone, or `error` says why not. */
  removed?: boolean;
  error?: string;
}

export interface SweepHost {
  uri: string;
  role: 'storage' | 'hypervisor';
  /** How it was looked at: the backend and its options, or the libvirt URI. */
  via: string;
}

export interface SweepReport {
  sweepVersion: typeof SWEEP_VERSION;
  dryRun: boolean;
  /** Removal was asked for (--yes). */
  removing: boolean;
  hosts: SweepHost[];
  /** The export names records and journals own: what is theirs is left alone. */
  owned: string[];
  orphans: Orphan[];
  /** What was looked at and left alone, and why. */
  notes: string[];
  /** Record and journal files that could not be read (their names count as owned). */
  unreadable: Array<{ file: string; error: string }>;
}

/** Some orphans could not be removed: one line naming them and why. */
export class SweepIncompleteError extends VirtIscsiError {
  readonly kind = 'sweep-incomplete';
  constructor(readonly report: SweepReport) {
    const left = report.orphans.filter((o) => o.error !== undefined);
    super(`could not remove ${left.map((o) => `${o.kind} ${o.name} on ${o.host} (${o.error})`).join('; ')}`);
  }
}

/** An orphan with the steps that remove it, built when it is found. */
interface Found extends Orphan {
  steps: () => Promise<Step[]>;
}

interface StorageSpec {
  uri: string;
  backend?: BackendName;
  options: { controlPort?: number; confDir?: string };
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
const isExportName = (s: string): boolean => EXPORT_NAME.test(s);
/** The export name an IQN of ours ends in (…:NAME), when it has one. */
const exportOfIqn = (iqn: string): string | undefined => {
  const name = iqn.slice(iqn.lastIndexOf(':') + 1).toLowerCase();
  return /^iqn\.\d{4}-\d{2}\./i.test(iqn) && isExportName(name) ? name : undefined;
};
const endsWithName = (iqn: string, name: string): boolean => iqn.toLowerCase().endsWith(`:${name}`);
/** The name a record or journal file is for (NAME.json, NAME.jsonl): an unreadable one still owns it. */
const nameOfFile = (file: string): string => posix.basename(file).replace(/\.jsonl?$/, '');

/** Reaches a host; one that cannot be reached stops the sweep. */
async function reach(session: Session, uri: string): Promise<Runner> {
  try {
    return await session.runner(uri);
  } catch (e) {
    if (e instanceof ConnectError) throw new ConnectError(uri, `${message(e)}; sweep removes nothing while a host it must look at is out of reach`, { cause: e });
    throw e;
  }
}

// ---- what is owned ----------------------------------------------------------------------

interface Ownership {
  owned: Set<string>;
  storages: StorageSpec[];
  hypervisors: Array<{ uri: string; connect: string }>;
  unreadable: SweepReport['unreadable'];
}

async function ownership(session: Session, o: SweepOptions, stateDir: string, hostRecordDir: string): Promise<Ownership> {
  const local = await session.runner('local');
  const [mine, journals] = await Promise.all([listRecords(local, stateDir), listJournals(stateDir)]);
  const records: ExportRecord[] = [...mine.records, ...journals.journals.map((j) => j.record)];
  const storages = new Map<string, StorageSpec>();
  // One target daemon once: a record's entry (it knows the backend) wins over a flag's.
  const add = (s: StorageSpec): void => {
    const key = `${s.uri}|${s.options.controlPort ?? ''}|${s.options.confDir ?? ''}`;
    if (!storages.get(key)?.backend) storages.set(key, s);
  };
  for (const r of records) if (isIscsi(r)) add({ uri: r.storage, backend: r.backend, options: { ...r.backendOptions } });
  for (const uri of o.storage ?? []) {
    parseHostUri(uri);
    add({ uri, ...(o.backend ? { backend: o.backend } : {}), options: { ...(o.controlPort !== undefined ? { controlPort: o.controlPort } : {}), ...(o.confDir !== undefined ? { confDir: o.confDir } : {}) } });
  }
  const hypervisors = new Map<string, { uri: string; connect: string }>();
  for (const r of records) for (const h of r.hypervisors) hypervisors.set(`${h.uri}|${h.connect}`, { uri: h.uri, connect: h.connect });
  const connect = checkLibvirtUri(o.connect ?? DEFAULT_LIBVIRT_URI, '--connect');
  for (const uri of o.hypervisors ?? []) {
    parseHostUri(uri);
    hypervisors.set(`${uri}|${connect}`, { uri, connect });
  }
  // Every storage host's own records own what exports made from other machines hold.
  const uris = [...new Set([...storages.values()].map((s) => s.uri))];
  const theirs = await Promise.all(uris.map(async (uri) => listRecords(await reach(session, uri), hostRecordDir)));
  const unreadable = [...mine.unreadable, ...journals.unreadable, ...theirs.flatMap((t) => t.unreadable)];
  const owned = new Set<string>([...records, ...theirs.flatMap((t) => t.records)].map((r) => r.name));
  for (const u of unreadable) owned.add(nameOfFile(u.file));
  return { owned, storages: [...storages.values()], hypervisors: [...hypervisors.values()], unreadable };
}

// ---- storage hosts ----------------------------------------------------------------------

async function storageOrphans(session: Session, s: StorageSpec, owned: ReadonlySet<string>, o: SweepOptions, notes: string[]): Promise<{ host: SweepHost; found: Found[] }> {
  const runner = await reach(session, s.uri);
  const options = { ...s.options, signal: o.signal, lockOwner: 'sweep', lockTimeoutMs: o.lockTimeoutMs };
  const name = s.backend ?? (await detectBackend(runner, options));
  const backend = createBackend(name, runner, options);
  const via = [name, ...(s.options.controlPort !== undefined ? [`control port ${s.options.controlPort}`] : []), ...(s.options.confDir !== undefined ? [`records in ${s.options.confDir}`] : [])].join(', ');
  const host: SweepHost = { uri: s.uri, role: 'storage', via };
  const status = await backend.status();
  if (status !== 'running') {
    notes.push(`the ${name} target software on ${s.uri} is ${status === 'stopped' ? 'not running' : 'not installed'}: its targets were not looked at`);
    return { host, found: [] };
  }
  const [targets, configured, unbound] = await Promise.all([
    backend.list(),
    backend.configured ? backend.configured() : Promise.resolve([]),
    backend.unboundAccounts ? backend.unboundAccounts() : Promise.resolve([]),
  ]);
  const found: Found[] = [];
  for (const t of targets) {
    const made = t.export;
    if (made === undefined) {
      const guess = exportOfIqn(t.iqn);
      if (t.managed && guess !== undefined && !owned.has(guess)) {
        notes.push(`target ${t.iqn} on ${s.uri} was made by virt-iscsi, but its record does not say by which export: left alone ("virt-iscsi target delete ${t.iqn}" removes it)`);
      }
      continue;
    }
    if (!isExportName(made) || !endsWithName(t.iqn, made) || owned.has(made)) continue;
    const lun = t.luns.map((l) => `LUN ${l.lun} ${l.path}`).join(', ') || 'no LUN';
    found.push({
      kind: 'target',
      host: s.uri,
      name: t.iqn,
      export: made,
      detail: `target ${t.iqn} (${name}: ${lun}; ${t.sessions.length === 0 ? 'no session' : `sessions from ${t.sessions.map((x) => x.initiator).join(', ')}`})`,
      steps: async () => [targetStep(backend, s.uri, t.iqn, made, o, runner.dryRun === true)],
    });
  }
  // A target gone from the daemon whose configuration stays would come back at its next start.
  for (const c of configured) {
    const made = c.export;
    if (made === undefined || targets.some((t) => sameIqn(t.iqn, c.iqn)) || !isExportName(made) || !endsWithName(c.iqn, made) || owned.has(made)) continue;
    found.push({
      kind: 'target',
      host: s.uri,
      name: c.iqn,
      export: made,
      detail: `the configuration of target ${c.iqn} (${name}; not live, it would come back when the daemon starts)`,
      steps: async () => [targetStep(backend, s.uri, c.iqn, made, o, runner.dryRun === true)],
    });
  }
  for (const user of unbound) {
    const m = /^virt-iscsi-(.+)$/.exec(user);
    const made = m?.[1]?.replace(/_/g, '.');
    if (made === undefined || !isExportName(made) || chapUser(made) !== user || owned.has(made)) continue;
    found.push({
      kind: 'account',
      host: s.uri,
      name: user,
      export: made,
      detail: `CHAP account ${user} (${name}), bound to no target`,
      steps: async () => [
        {
          id: 'account',
          host: s.uri,
          title: `delete CHAP account ${user} on ${s.uri} (bound to no target)`,
          // One bound again meanwhile is someone's: left.
          check: async () => !(await backend.unboundAccounts!()).includes(user),
          apply: () => backend.deleteAccount!(user),
        },
      ],
    });
  }
  return { host, found };
}

function targetStep(backend: TargetBackend, host: string, iqn: string, made: string, o: SweepOptions, dryRun: boolean): Step {
  return {
    id: 'target',
    host,
    title: `delete target ${iqn} on ${host}, with its CHAP account and configuration`,
    check: () => targetGone(backend, iqn),
    async apply() {
      // A dry run only recorded the detach: the VM's session stays, there is nothing to wait for.
      await sessionsEnd(backend, iqn, dryRun ? 0 : (o.sessionWaitMs ?? 15_000), o.signal);
      await backend.delete(iqn, { force: o.force === true, ours: { accounts: [chapUser(made)] } });
    },
  };
}

// ---- hypervisors ------------------------------------------------------------------------

/** Our disks (by their user alias) in every configuration of the domain. */
function ourDisks(view: DomainView): Array<{ name: string; dev: string; live: boolean; config: boolean }> {
  const out = new Map<string, { name: string; dev: string; live: boolean; config: boolean }>();
  for (const [where, info] of [['live', view.live], ['config', view.inactive]] as const) {
    for (const d of info?.disks ?? []) {
      const m = /^ua-virt-iscsi-(.+)$/.exec(d.alias ?? '');
      if (!m || !isExportName(m[1]!)) continue;
      const key = `${m[1]}|${d.target.dev}`;
      const e = out.get(key) ?? { name: m[1]!, dev: d.target.dev, live: false, config: false };
      e[where] = true;
      out.set(key, e);
    }
  }
  return [...out.values()];
}

function diskStep(virsh: Virsh, host: string, domain: string, name: string, dev: string): Step {
  const alias = diskAlias(name);
  const where = async (): Promise<{ live?: DiskDef; config?: DiskDef } | undefined> => {
    const view = await viewIfThere(virsh, domain);
    if (!view) return undefined;
    return { live: find(view.live?.disks, alias, dev), config: find(view.inactive.disks, alias, dev) };
  };
  return {
    id: 'detach',
    host,
    title: `take disk ${dev} (made for export ${name}) away from domain ${domain} on ${host}`,
    check: async () => {
      const w = await where();
      return !w || (!w.live && !w.config);
    },
    async apply() {
      const w = (await where())!;
      await virsh.detachDevice(domain, deviceXml((w.live ?? w.config)!), { live: w.live !== undefined, config: w.config !== undefined });
    },
  };
}

function find(disks: readonly DiskDef[] | undefined, alias: string, dev: string): DiskDef | undefined {
  return disks?.find((d) => d.alias === alias && d.target.dev === dev);
}

async function hypervisorOrphans(
  session: Session,
  h: { uri: string; connect: string },
  owned: ReadonlySet<string>,
  goingTargets: ReadonlySet<string>,
  notes: string[],
): Promise<{ host: SweepHost; found: Found[] }> {
  const runner = await reach(session, h.uri);
  const virsh = new Virsh(runner, h.connect);
  const host: SweepHost = { uri: h.uri, role: 'hypervisor', via: h.connect };
  const [domains, pools, secrets, hasIscsiadm, dropIns] = await Promise.all([
    virsh.domainNames(),
    virsh.poolList(),
    virsh.secretList(),
    hasProgram(runner, ['iscsiadm', '--version']),
    ourDropIns(runner),
  ]);
  const found: Found[] = [];

  // Disks: in any domain, marked with our user alias.
  const views = await Promise.all(domains.map((d) => viewIfThere(virsh, d)));
  for (const view of views) {
    if (!view) continue;
    for (const d of ourDisks(view)) {
      if (owned.has(d.name)) continue;
      const where = d.live && d.config ? 'running and in its definition' : d.live ? 'running only' : 'in its definition only';
      found.push({
        kind: 'disk',
        host: h.uri,
        name: `${view.name}/${d.dev}`,
        export: d.name,
        detail: `disk ${d.dev} of domain ${view.name} (${where})`,
        steps: async () => [diskStep(virsh, h.uri, view.name, d.name, d.dev)],
      });
    }
  }

  // Pools: virt-iscsi-NAME over a target ending in :NAME.
  const poolNames = new Set(pools.map((p) => p.name));
  const goingPools = new Set<string>();
  for (const p of pools) {
    const m = /^virt-iscsi-(.+)$/.exec(p.name);
    const made = m?.[1];
    if (made === undefined || !isExportName(made) || poolName(made) !== p.name || owned.has(made)) continue;
    const xml = await virsh.poolDumpXml(p.name);
    let def;
    try {
      def = xml === undefined ? undefined : parsePool(xml);
    } catch {
      continue; // not an iSCSI pool: not one an export makes
    }
    if (!def || !endsWithName(def.device, made)) continue;
    goingPools.add(p.name);
    found.push({
      kind: 'pool',
      host: h.uri,
      name: p.name,
      export: made,
      detail: `pool ${p.name} (${def.type}, ${p.state}, target ${def.device})`,
      steps: async () => (await deletePoolSteps(virsh, p.name)).map((s, i) => ({ ...s, id: s.id ?? ['pool-stop', 'pool-undefine'][i] ?? 'pool-leftovers', host: h.uri })),
    });
  }

  // Secrets: an export's (its description says so), or a pool's whose pool is gone.
  for (const s of secrets) {
    if (s.usageType !== 'iscsi' || !s.usage?.startsWith('virt-iscsi-')) continue;
    const xml = await virsh.secretDumpXml(s.uuid);
    const description = xml === undefined ? undefined : parseSecret(xml).description;
    const exportName = /^virt-iscsi: CHAP for export (.+)$/.exec(description ?? '')?.[1];
    const poolOf = /^virt-iscsi: CHAP for pool (.+)$/.exec(description ?? '')?.[1];
    let made: string | undefined;
    let detail = '';
    if (exportName !== undefined && isExportName(exportName) && s.usage === secretUsage(exportName) && description === secretDescription(exportName)) {
      if (owned.has(exportName)) continue;
      made = exportName;
      detail = `libvirt secret ${s.usage} (the CHAP password of export ${exportName})`;
    } else if (poolOf !== undefined && description === poolSecretDescription(poolOf) && s.usage === `virt-iscsi-pool-${poolOf}`) {
      // A pool's own secret outlives nothing: it goes when its pool is gone (or goes now, with it).
      if (poolNames.has(poolOf)) continue;
      made = poolOf;
      detail = `libvirt secret ${s.usage} (the CHAP password of pool ${poolOf}, which is gone)`;
    }
    if (made === undefined) continue;
    found.push({ kind: 'secret', host: h.uri, name: s.usage, export: made, detail, steps: async () => [{ ...secretDeleteStep(virsh, s.usage!, { uuid: s.uuid }), host: h.uri }] });
  }

  // Sessions and node records of our targets that are gone (or going now).
  if (hasIscsiadm) {
    const iscsiadm = new Iscsiadm(runner);
    const [nodes, sessions] = await Promise.all([iscsiadm.nodes(), iscsiadm.sessions()]);
    const pairs = new Map<string, { iqn: string; portal: Portal; session: boolean; node: boolean; pool?: string }>();
    for (const n of nodes) pairs.set(`${n.iqn.toLowerCase()}|${formatPortal(n.portal)}`, { iqn: n.iqn, portal: n.portal, session: false, node: true });
    for (const s of sessions) {
      const key = `${s.iqn.toLowerCase()}|${formatPortal(s.portal)}`;
      const e = pairs.get(key) ?? { iqn: s.iqn, portal: s.portal, session: false, node: false };
      e.session = true;
      pairs.set(key, e);
    }
    const offered = new Map<string, Promise<string[] | Error>>();
    for (const p of pairs.values()) {
      const made = exportOfIqn(p.iqn);
      if (made === undefined || owned.has(made)) continue;
      // An orphan pool's login goes with the pool.
      if (goingPools.has(poolName(made))) continue;
      let gone = goingTargets.has(p.iqn.toLowerCase());
      if (!gone) {
        const key = formatPortal(p.portal);
        if (!offered.has(key)) {
          offered.set(
            key,
            iscsiadm.discover(p.portal).then(
              (entries) => entries.filter((e) => samePortal(e.portal, p.portal)).map((e) => e.iqn.toLowerCase()),
              (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
            ),
          );
        }
        const list = await offered.get(key)!;
        if (list instanceof Error) {
          notes.push(`portal ${key} did not answer discovery from ${h.uri} (${message(list)}): the ${p.session ? 'session and ' : ''}node record of ${p.iqn} left alone`);
          continue;
        }
        gone = !list.includes(p.iqn.toLowerCase());
      }
      if (!gone) continue;
      found.push({
        kind: 'session',
        host: h.uri,
        name: `${formatPortal(p.portal)}/${p.iqn}`,
        export: made,
        detail: `${p.session ? 'session and ' : ''}${p.node ? 'node record' : ''} of ${p.iqn} at ${formatPortal(p.portal)}, a target ${goingTargets.has(p.iqn.toLowerCase()) ? 'this sweep removes' : 'the portal no longer offers'}`.replace('session and  of', 'session of'),
        steps: async () => logoutSteps(iscsiadm, { target: p.iqn, portal: p.portal }),
      });
    }
  }

  for (const f of dropIns) {
    if (owned.has(f.name)) continue;
    found.push({
      kind: 'multipath',
      host: h.uri,
      name: f.file,
      export: f.name,
      detail: `multipath drop-in ${f.file}`,
      steps: async () => [{ id: 'multipath', host: h.uri, title: `remove ${f.file} on ${h.uri}`, check: async () => (await runner.readFile(f.file)) === undefined, apply: () => runner.removeFile(f.file) }],
    });
  }
  return { host, found };
}

// ---- the sweep --------------------------------------------------------------------------

/** Finds the orphans on every host (and, with `o.remove`, removes them, last made first). */
export async function sweep(session: Session, o: SweepOptions = {}): Promise<SweepReport> {
  const stateDir = checkAbsolutePath('state dir', o.stateDir ?? localStateDir());
  const hostRecordDir = checkAbsolutePath('--host-records', o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR, 'host-records');
  if (o.confDir !== undefined) checkAbsolutePath('--conf-dir', o.confDir, 'conf-dir');
  for (const n of o.names ?? []) checkExportName(n);
  const own = await ownership(session, o, stateDir, hostRecordDir);
  const notes: string[] = [];
  const storages = await Promise.all(own.storages.map((s) => storageOrphans(session, s, own.owned, o, notes)));
  const going = new Set(storages.flatMap((s) => s.found.filter((f) => f.kind === 'target').map((f) => f.name.toLowerCase())));
  const hypervisors = await Promise.all(own.hypervisors.map((h) => hypervisorOrphans(session, h, own.owned, going, notes)));
  const only = o.names === undefined || o.names.length === 0 ? undefined : new Set(o.names);
  const found = [...hypervisors, ...storages].flatMap((x) => x.found).filter((f) => !only || only.has(f.export));
  // Hypervisors first, then storage hosts; within a host, the kinds in their order.
  found.sort((a, b) => ORPHAN_KINDS.indexOf(a.kind) - ORPHAN_KINDS.indexOf(b.kind));
  const report: SweepReport = {
    sweepVersion: SWEEP_VERSION,
    dryRun: session.dryRun,
    removing: o.remove === true,
    hosts: [...storages, ...hypervisors].map((x) => x.host),
    owned: [...own.owned].sort(),
    orphans: found,
    notes,
    unreadable: own.unreadable,
  };
  if (o.remove) await removeAll(found, o);
  report.orphans = found.map(({ steps: _s, ...rest }) => rest);
  return report;
}

/**
 * Each orphan's steps, one plan each (a failure stops that orphan, not the sweep), but an
 * export whose piece could not be removed keeps its later pieces: a target whose disk is
 * still in a domain stays, or its VM would retry against nothing.
 */
async function removeAll(found: Found[], o: SweepOptions): Promise<void> {
  const plans = await Promise.all(found.map((f) => f.steps()));
  const all = plans.flat().map((s) => ({ ...s, id: s.id ?? 'step' }));
  o.onPlan?.(all);
  const blocked = new Map<string, string>();
  let offset = 0;
  for (const [i, f] of found.entries()) {
    const steps = plans[i]!;
    const base = offset;
    offset += steps.length;
    if (o.signal?.aborted) {
      f.error = 'interrupted before it was removed';
      continue;
    }
    const why = blocked.get(f.export);
    if (why !== undefined) {
      f.error = `left: ${why} could not be removed first`;
      continue;
    }
    try {
      await runPlan(steps, { ...(o.signal ? { signal: o.signal } : {}), onEvent: (e) => o.onEvent?.({ ...e, index: base + e.index }) });
      f.removed = true;
    } catch (e) {
      f.error = message(e);
      blocked.set(f.export, `its ${f.kind} ${f.name}`);
    }
  }
}

