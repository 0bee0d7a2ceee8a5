// The tgt backend: targets live through tgtadm (never a tgtd restart, pitfall 10), each
// one we make also recorded in its own file in tgt's conf.d so it comes back when tgtd
// starts, and `sync` to find and repair the difference between the two.
import { randomBytes } from 'node:crypto';
import type { TgtTarget } from '../../config/tgt-conf.js';
import { ValidationError } from '../../errors.js';
import { parseIscsiName } from '../../names/iscsi-name.js';
import { runPlan, type PlanEvent, type Step } from '../../plan/plan.js';
import { runChecked } from '../../runner/check.js';
import { RecordingRunner } from '../../runner/recording.js';
import type { Runner } from '../../runner/types.js';
import type { CreateOptions, SyncItem, SyncOptions, TargetBackend, TargetSpec, TargetState } from '../backend.js';
import { checkServableImage, fileIdentities, type ImageInfo } from '../image.js';
import { normalizeTargetSpec } from '../spec.js';
import { resolveLuns } from './conf.js';
import { targetSpecToTgtConf } from '../../config/tgt-conf.js';
import { startTgt, tgtStatus, type StartMethod, type TgtStartOptions } from './daemon.js';
import { targetDrift } from './drift.js';
import { DEFAULT_CONF_DIR, parseRecord, readRecords, recordFile, writeRecord, type RecordKind, type TgtRecord } from './records.js';
import type { TgtShowTarget } from './show-parser.js';
import { parseSizes, toTargetState } from './state.js';
import { withDefaultSessionParams } from './session-params.js';
import { contentSteps, targetStep } from './steps.js';
import { notInstalledError, Tgtadm, TgtadmError } from './tgtadm.js';

export interface TgtBackendOptions extends TgtStartOptions {
  /** Where our per-target files go (default /etc/tgt/conf.d, which targets.conf includes). */
  confDir?: string;
  /** The host's targets.conf: loaded with tgt-admin -e when we start the system tgtd without a service manager. */
  mainConf?: string;
  /** Aborting rolls a create back (SIGINT/SIGTERM through withInterrupts). */
  signal?: AbortSignal;
  /** Every step of a create or repair as it starts, finishes, or is undone. */
  onEvent?: (e: PlanEvent) => void;
}

const sameName = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** How many times create picks the next tid when a racing create took the one it chose. */
const TID_ATTEMPTS = 20;

/** A serial per LUN, so an initiator can tell this LUN from a stale device (pitfall 7). */
function newSerial(): string {
  return `VI${randomBytes(6).toString('hex').toUpperCase()}`;
}

export class TgtBackend implements TargetBackend {
  readonly name = 'tgt' as const;
  readonly tgtadm: Tgtadm;
  readonly confDir: string;
  /** A dry run: commands are recorded, and only queries reach the host. */
  private readonly planning: boolean;
  /** A dry run found tgtd stopped and would start it: nothing is live yet. */
  private startsInPlan = false;
  private starting?: Promise<StartMethod | undefined>;

  constructor(
    readonly runner: Runner,
    readonly options: TgtBackendOptions = {},
  ) {
    this.tgtadm = new Tgtadm(runner, options.controlPort);
    this.confDir = options.confDir ?? DEFAULT_CONF_DIR;
    this.planning = runner instanceof RecordingRunner;
  }

  // ---- daemon ----------------------------------------------------------------------------

  /** Starts tgtd when stopped (once per backend); after a start, brings back our persisted targets. */
  async ensureRunning(): Promise<void> {
    if ((await this.start()) !== undefined) await this.reconcile({});
  }

  private start(): Promise<StartMethod | undefined> {
    this.starting ??= (async () => {
      const method = await startTgt(this.tgtadm, this.options, !this.planning);
      if (method !== undefined && this.planning) this.startsInPlan = true;
      const mainConf = this.options.mainConf ?? '/etc/tgt/targets.conf';
      const systemInstance = this.options.controlPort === undefined && this.confDir === DEFAULT_CONF_DIR;
      if (method === 'daemon' && systemInstance && (await this.runner.run(['test', '-f', mainConf], { query: true })).exitCode === 0) {
        // What the tgt service does at start, for the targets that are not ours.
        await runChecked(this.runner, ['tgt-admin', '-e', '-c', mainConf]);
      }
      return method;
    })();
    return this.starting;
  }

  private live(): Promise<TgtShowTarget[]> {
    return this.startsInPlan ? Promise.resolve([]) : this.tgtadm.showTargets();
  }

  private globalAccounts(): Promise<string[]> {
    return this.startsInPlan ? Promise.resolve([]) : this.tgtadm.showAccounts();
  }

  // ---- reading ---------------------------------------------------------------------------

  async list(): Promise<TargetState[]> {
    // The sizes follow what tgtd shows, the records are read meanwhile.
    const shown = this.tgtadm.showTargets();
    const sized = shown.then(async (live) => {
      const paths = [...new Set(live.flatMap((t) => t.luns.flatMap((l) => (l.backingPath ? [l.backingPath] : []))))];
      if (paths.length === 0) return new Map<string, number>();
      return parseSizes((await this.runner.run(['stat', '-L', '-c', '%s|%F|%n', '--', ...paths], { query: true })).stdout);
    });
    const [live, records, sizes] = await Promise.all([shown, readRecords(this.runner, this.confDir), sized]);
    return live.map((t) => toTargetState(t, records.find((r) => sameName(r.iqn, t.iqn)), sizes));
  }

  async show(iqn: string): Promise<TargetState | undefined> {
    const name = parseIscsiName(iqn, 'target name');
    return (await this.list()).find((t) => sameName(t.iqn, name));
  }

  // ---- create ----------------------------------------------------------------------------

  async create(spec: TargetSpec, options: CreateOptions = {}): Promise<TargetState> {
    const s = normalizeTargetSpec(spec, options);
    const target = withDefaultSessionParams(targetSpecToTgtConf({ ...s, luns: s.luns.map((l) => (l.serial !== undefined ? l : { ...l, serial: newSerial() })) }));
    const host = this.runner.host;
    // Everything that needs no tgtd is checked before one is started: bad input changes nothing.
    // The independent queries run at once (each is a round trip over SSH); their errors keep their order.
    const recordsFree = this.checkRecordsFree(s.iqn);
    const given = options.images;
    const imagesOk = given?.length === s.luns.length ? Promise.resolve([...given]) : Promise.all(s.luns.map((l) => checkServableImage(this.runner, l.path)));
    for (const p of [recordsFree, imagesOk]) p.catch(() => undefined);
    const status = await tgtStatus(this.tgtadm);
    if (!this.options.install && status === 'not-installed') throw notInstalledError(host);
    const images: ImageInfo[] = await imagesOk;
    if (status === 'running') this.starting ??= Promise.resolve(undefined);
    else await this.ensureRunning();
    const live = await this.live();
    const clash = live.find((t) => sameName(t.iqn, s.iqn));
    if (clash) throw new ValidationError(`target ${JSON.stringify(s.iqn)} already exists on ${host} (tid ${clash.tid})`, 'iqn');
    const byTid = live.find((t) => t.tid === s.tid);
    if (byTid) throw new ValidationError(`target id ${s.tid} is already used on ${host} by ${byTid.iqn}`, 'tid');
    await recordsFree;
    await this.checkBsTypes(target);
    await this.checkNotServed(s.luns.map((l) => l.path), live);
    await this.checkAccountsFree(target);
    const kind: RecordKind = s.persist ? 'persistent' : 'live-only';
    const tid = await this.createLive(target, { tid: s.tid, record: kind, live });
    if (this.planning) return plannedState(target, tid, images, kind);
    const state = await this.show(s.iqn);
    if (!state) throw new ValidationError(`target ${s.iqn} was created as tid ${tid} on ${host} but tgtd does not show it`, 'iqn');
    return state;
  }

  /** Refuses when a file we would write is there: someone else's, or a record of ours not live. */
  private async checkRecordsFree(iqn: string): Promise<void> {
    const kinds = ['persistent', 'live-only'] as const;
    const texts = await Promise.all(kinds.map((kind) => this.runner.readFile(recordFile(this.confDir, iqn, kind))));
    for (const [i, kind] of kinds.entries()) {
      const file = recordFile(this.confDir, iqn, kind);
      const text = texts[i];
      if (text === undefined) continue;
      if (!parseRecord(file, text)) throw new ValidationError(`${file} exists on ${this.runner.host} and was not written by virt-iscsi; move it away first`, 'iqn');
      throw new ValidationError(
        `target ${iqn} is recorded in ${file} but is not live: run "virt-iscsi target sync" to bring it back, or "virt-iscsi target delete ${iqn}" to drop it`,
        'iqn',
      );
    }
  }

  private async checkBsTypes(target: TgtTarget): Promise<void> {
    const wanted = [...new Set(target.luns.flatMap((l) => (l.bsType ? [l.bsType] : [])))];
    if (wanted.length === 0 || this.startsInPlan) return;
    const known = (await this.tgtadm.showSystem()).backingStores;
    for (const bs of wanted) {
      if (!known.includes(bs)) throw new ValidationError(`bs-type ${JSON.stringify(bs)} is not one tgtd on ${this.runner.host} has: ${known.join(', ')}`, 'bs-type');
    }
  }

  /** An image behind two targets would be written by two initiators that do not know of each other. */
  private async checkNotServed(paths: readonly string[], live: readonly TgtShowTarget[]): Promise<void> {
    const served = live.flatMap((t) => t.luns.flatMap((l) => (l.backingPath ? [{ t, l, path: l.backingPath }] : [])));
    if (served.length === 0) return;
    const ids = await fileIdentities(this.runner, [...new Set([...paths, ...served.map((s) => s.path)])]);
    for (const p of paths) {
      const id = ids.get(p);
      const hit = served.find((s) => s.path === p || (id !== undefined && ids.get(s.path) === id));
      if (hit) throw new ValidationError(`image ${JSON.stringify(p)} is already served by target ${hit.t.iqn} (tid ${hit.t.tid}) as LUN ${hit.l.lun}`, 'image');
    }
  }

  private async checkAccountsFree(target: TgtTarget): Promise<void> {
    const users = [...target.incomingUsers, ...(target.outgoingUser ? [target.outgoingUser] : [])].map((a) => a.user);
    if (users.length === 0) return;
    const existing = await this.globalAccounts();
    const taken = users.find((u) => existing.includes(u));
    if (taken) {
      throw new ValidationError(`CHAP user ${JSON.stringify(taken)} already exists on ${this.runner.host}; tgt keeps one secret per user name, so choose another name`, 'chap');
    }
  }

  /**
   * Sets the target up live (and writes its record when `record` is set) as one plan: a
   * failing step undoes the earlier ones. Without a fixed tid it takes the next free one,
   * and when a racing create took it first ("this target already exists" on the first
   * step, our name still not live), it tries the next.
   */
  private async createLive(target: TgtTarget, o: { tid?: number; record?: RecordKind; existingAccounts?: readonly string[]; live?: readonly TgtShowTarget[] }): Promise<number> {
    const taken = new Set((o.live ?? (await this.live())).map((t) => t.tid));
    for (let attempt = 1; ; attempt++) {
      const tid = o.tid ?? Math.max(0, ...taken) + 1;
      const steps: Step[] = [targetStep(this.tgtadm, tid, target), ...contentSteps(this.tgtadm, tid, target, o.existingAccounts)];
      if (o.record) steps.push(this.recordStep(target, o.record));
      let failedAt = -1;
      try {
        await runPlan(steps, {
          signal: this.options.signal,
          onEvent: (e) => {
            if (e.type === 'failed') failedAt = e.index;
            this.options.onEvent?.(e);
          },
        });
        return tid;
      } catch (e) {
        if (!(failedAt === 0 && e instanceof TgtadmError && e.reason === 'target-exists')) throw e;
        const now = await this.live();
        const same = now.find((t) => sameName(t.iqn, target.iqn));
        if (same) throw new ValidationError(`target ${JSON.stringify(target.iqn)} already exists on ${this.runner.host} (tid ${same.tid})`, 'iqn');
        const holder = now.find((t) => t.tid === tid);
        if (o.tid !== undefined) throw new ValidationError(`target id ${tid} is already used on ${this.runner.host}${holder ? ` by ${holder.iqn}` : ''}`, 'tid');
        if (attempt >= TID_ATTEMPTS) throw e;
        taken.add(tid);
        for (const t of now) taken.add(t.tid);
      }
    }
  }

  private recordStep(target: TgtTarget, kind: RecordKind): Step {
    const file = recordFile(this.confDir, target.iqn, kind);
    return {
      title: `write ${file}`,
      apply: async () => void (await writeRecord(this.runner, this.confDir, target, kind)),
      undo: () => this.runner.removeFile(file),
    };
  }

  // ---- delete ----------------------------------------------------------------------------

  async delete(iqn: string, options: { force?: boolean } = {}): Promise<void> {
    const name = parseIscsiName(iqn, 'target name');
    const host = this.runner.host;
    // Asked at once; what tgtd shows counts only when it runs.
    const [status, all, shown] = await Promise.all([
      tgtStatus(this.tgtadm),
      readRecords(this.runner, this.confDir),
      this.tgtadm.showTargets().then(
        (targets) => ({ targets }),
        (error: unknown) => ({ error }),
      ),
    ]);
    if (status === 'not-installed') throw notInstalledError(host);
    const records = all.filter((r) => sameName(r.iqn, name));
    // A stopped tgtd has nothing live: dropping the record is all that keeps it from coming back.
    if (status === 'running' && 'error' in shown) throw shown.error;
    const live = status === 'running' && 'targets' in shown ? shown.targets : [];
    const t = live.find((x) => sameName(x.iqn, name));
    if (t) {
      if (records.length === 0 && !options.force) {
        throw new ValidationError(`target ${name} on ${host} was not made by virt-iscsi (no record in ${this.confDir}); pass --force to delete it anyway`, 'iqn');
      }
      // A dry run has only recorded the steps that end the sessions (detach, logout): the real run checks.
      if (t.nexuses.length > 0 && !options.force && !this.planning) throw sessionsError(name, t);
      try {
        await this.tgtadm.deleteTarget(t.tid, { force: options.force });
      } catch (e) {
        if (e instanceof TgtadmError && e.reason === 'target-active') throw sessionsError(name, t);
        throw e;
      }
      // The CHAP accounts we made for it, unless another target has been given them since.
      const elsewhere = new Set(live.filter((x) => x !== t).flatMap((x) => x.accounts.map((a) => a.user)));
      for (const rec of records) {
        const users = rec.target ? [...rec.target.incomingUsers, ...(rec.target.outgoingUser ? [rec.target.outgoingUser] : [])].map((a) => a.user) : [];
        for (const u of users) if (!elsewhere.has(u)) await this.tgtadm.deleteAccount(u);
      }
    }
    for (const rec of records) await this.runner.removeFile(rec.file);
  }

  // ---- sync ------------------------------------------------------------------------------

  /** Starts tgtd when stopped, then reconciles the live targets with our records (see reconcile). */
  async sync(options: SyncOptions = {}): Promise<SyncItem[]> {
    await this.start();
    return this.reconcile(options);
  }

  /**
   * Per record: not live and persistent -> created live (restored); not live and
   * live-only -> the record is removed (it was not meant to outlive tgtd); live and
   * different -> the live target is changed to match the record (the record is what
   * tgtd loads at its next start), unless initiators are logged in and not forced.
   * Live targets without a record are reported and left alone.
   */
  private async reconcile(options: SyncOptions): Promise<SyncItem[]> {
    const records = await readRecords(this.runner, this.confDir);
    const live = await this.live();
    const accounts = await this.globalAccounts();
    const items: SyncItem[] = [];
    for (const rec of records) {
      const t = live.find((x) => sameName(x.iqn, rec.iqn));
      items.push(await this.reconcileOne(rec, t, accounts, options));
    }
    for (const t of live) {
      if (!records.some((r) => sameName(r.iqn, t.iqn))) items.push({ iqn: t.iqn, status: 'unmanaged', details: ['live, not made by virt-iscsi: left alone'] });
    }
    return items;
  }

  private async reconcileOne(rec: TgtRecord, t: TgtShowTarget | undefined, accounts: readonly string[], options: SyncOptions): Promise<SyncItem> {
    const iqn = rec.iqn;
    const target = rec.target;
    if (!target) return { iqn, status: 'unreadable', details: [`${rec.file}: ${rec.error ?? 'cannot be read'}`] };
    if (!t && rec.kind === 'live-only') {
      await this.runner.removeFile(rec.file);
      return { iqn, status: 'stale-record', details: [`removed ${rec.file}: the --no-persist target it recorded is gone`] };
    }
    try {
      if (!t) {
        for (const l of resolveLuns(target)) await checkServableImage(this.runner, l.path);
        const tid = await this.createLive(target, { existingAccounts: accounts });
        const reused = [...target.incomingUsers, ...(target.outgoingUser ? [target.outgoingUser] : [])].filter((a) => accounts.includes(a.user));
        return {
          iqn,
          status: 'restored',
          details: [`created live as tid ${tid} from ${rec.file}`, ...reused.map((a) => `CHAP account ${a.user} existed already: bound as it is (tgtd never shows secrets to compare)`)],
        };
      }
      const drift = targetDrift(this.tgtadm, { ...rec, target }, t, accounts);
      if (drift.details.length === 0) return { iqn, status: 'in-sync', details: [] };
      if (t.nexuses.length > 0 && !options.force) {
        return { iqn, status: 'drift', details: [...drift.details, `not repaired: ${t.nexuses.length} initiator session(s) logged in; pass --force to repair anyway`] };
      }
      await runPlan(drift.steps, { signal: this.options.signal, onEvent: this.options.onEvent });
      return { iqn, status: 'repaired', details: drift.details };
    } catch (e) {
      return { iqn, status: 'failed', details: [e instanceof Error ? e.message : String(e)] };
    }
  }
}

function sessionsError(iqn: string, t: TgtShowTarget): ValidationError {
  const who = t.nexuses.map((n) => `${n.initiator}${n.connections[0]?.address ? ` from ${n.connections[0].address}` : ''}`);
  return new ValidationError(
    `target ${iqn} has ${t.nexuses.length} logged-in session(s) (${who.join(', ')}): log them out first, or pass --force to cut them off`,
    'iqn',
  );
}

/** What a dry run would have made (nothing is live to read back). */
function plannedState(target: TgtTarget, tid: number, images: readonly ImageInfo[], kind: RecordKind): TargetState {
  const out = target.outgoingUser?.user;
  return {
    iqn: target.iqn,
    tid,
    luns: resolveLuns(target).map((l) => ({
      lun: l.lun,
      path: l.path,
      type: l.deviceType === 'cd' ? 'cd/dvd' : 'disk',
      sizeBytes: images.find((i) => i.path === l.path)?.sizeBytes ?? 0,
      readonly: l.readonly,
      online: true,
      ...(l.scsiSn ? { serial: l.scsiSn } : {}),
    })),
    sessions: [],
    acls: [...target.initiatorAddresses, ...target.initiatorNames],
    accounts: [...target.incomingUsers.map((a) => a.user), ...(out ? [out] : [])],
    persisted: kind === 'persistent',
    managed: true,
    ...(out ? { outgoingAccount: out } : {}),
  };
}
