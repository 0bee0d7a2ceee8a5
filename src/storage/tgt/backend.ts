// The tgt backend: targets live through tgtadm (never a tgtd restart, which drops every session), each
// one we make also recorded in its own file in tgt's conf.d so it comes back when tgtd
// starts, and `sync` to find and repair the difference between the two.
import { randomBytes } from 'node:crypto';
import type { TgtTarget } from '../../config/tgt-conf.js';
import { PrerequisiteError, ValidationError } from '../../errors.js';
import { parseIscsiName, sameIqn } from '../../names/iscsi-name.js';
import { runPlan, type PlanEvent, type Step } from '../../plan/plan.js';
import { runChecked } from '../../runner/check.js';
import type { Runner } from '../../runner/types.js';
import type { Portal } from '../../names/portal.js';
import { quoteArgv } from '../../runner/quote.js';
import type { CreateOptions, DeleteOptions, GrowOptions, GrowResult, LunSpec, SyncItem, SyncOptions, TargetBackend, TargetSpec, TargetState } from '../backend.js';
import { backingKind, checkLunImage } from '../backing.js';
import { fileIdentities, type ImageInfo } from '../image.js';
import { normalizeTargetSpec } from '../spec.js';
import { resolveLuns } from './conf.js';
import { targetSpecToTgtConf } from '../../config/tgt-conf.js';
import { startTgt, tgtStatus, type StartMethod, type TgtStartOptions, type TgtStatus } from './daemon.js';
import { targetDrift } from './drift.js';
import { DEFAULT_CONF_DIR, parseRecord, readRecords, recordFile, writeRecord, type RecordKind, type TgtRecord } from './records.js';
import type { TgtShowTarget } from './show-parser.js';
import { parseSizes, toTargetState } from './state.js';
import { withDefaultSessionParams } from './session-params.js';
import { accountSteps, bindStep, contentSteps, lunStep, targetStep } from './steps.js';
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


/** How many times create picks the next tid when a racing create took the one it chose. */
const TID_ATTEMPTS = 20;

/** A serial per LUN, so an initiator can tell this LUN from a stale device. */
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
    this.planning = runner.dryRun === true;
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

  /** tgtd reads a LUN's size when it opens the backing store: growLun reopens it (reopenLun), which closes it for a moment. */
  readonly capabilities = { growLunInPlace: true, growClosesLun: true, secretOffArgv: false, addressAcls: true } as const;

  status(): Promise<TgtStatus> {
    return tgtStatus(this.tgtadm);
  }

  async persisted(iqn: string): Promise<boolean> {
    const name = parseIscsiName(iqn, 'target name');
    for (const kind of ['persistent', 'live-only'] as const) if ((await this.runner.readFile(recordFile(this.confDir, name, kind))) !== undefined) return true;
    return false;
  }

  /** From our 0600 record of the target in conf.d: tgtd never shows a secret. */
  async storedChapSecret(iqn: string, user: string): Promise<string | undefined> {
    const recs = await readRecords(this.runner, this.confDir);
    const t = recs.find((r) => sameIqn(r.iqn, iqn))?.target;
    return [...(t?.incomingUsers ?? []), ...(t?.outgoingUser ? [t.outgoingUser] : [])].find((a) => a.user === user)?.secret;
  }

  // ---- reading ---------------------------------------------------------------------------

  async list(): Promise<TargetState[]> {
    // The sizes follow what tgtd shows, the records are read meanwhile.
    const shown = this.tgtadm.showTargets();
    const sized = shown.then(async (live) => {
      // An rbd LUN's path is POOL/IMAGE, not a file here: tgtd's own size figure stands for it.
      const paths = [...new Set(live.flatMap((t) => t.luns.flatMap((l) => (l.backingPath && l.backingType !== 'rbd' ? [l.backingPath] : []))))];
      if (paths.length === 0) return new Map<string, number>();
      return parseSizes((await this.runner.run(['stat', '-L', '-c', '%s|%F|%n', '--', ...paths], { query: true })).stdout);
    });
    const [live, records, sizes] = await Promise.all([shown, readRecords(this.runner, this.confDir), sized]);
    return live.map((t) => toTargetState(t, records.find((r) => sameIqn(r.iqn, t.iqn)), sizes));
  }

  async show(iqn: string): Promise<TargetState | undefined> {
    const name = parseIscsiName(iqn, 'target name');
    return (await this.list()).find((t) => sameIqn(t.iqn, name));
  }

  // ---- create ----------------------------------------------------------------------------

  async create(spec: TargetSpec, options: CreateOptions = {}): Promise<TargetState> {
    const s = normalizeTargetSpec(spec, options);
    const target = withDefaultSessionParams(targetSpecToTgtConf({ ...s, luns: s.luns.map((l) => (l.serial !== undefined ? l : { ...l, serial: newSerial() })) }));
    const host = this.runner.host;
    // Everything that needs no tgtd is checked before one is started: bad input changes nothing.
    // The independent queries run at once (each is a round trip over SSH); their errors keep their order.
    const recordsFree = this.checkRecordsFree(s.iqn, s.export);
    const given = options.images;
    const imagesOk = given?.length === s.luns.length ? Promise.resolve([...given]) : Promise.all(s.luns.map((l) => checkLunImage(this.runner, l)));
    for (const p of [recordsFree, imagesOk]) p.catch(() => undefined);
    const status = await tgtStatus(this.tgtadm);
    if (!this.options.install && status === 'not-installed') throw notInstalledError(host);
    const images: ImageInfo[] = await imagesOk;
    if (status === 'running') this.starting ??= Promise.resolve(undefined);
    else await this.ensureRunning();
    const live = await this.live();
    const clash = live.find((t) => sameIqn(t.iqn, s.iqn));
    if (clash) throw new ValidationError(`target ${JSON.stringify(s.iqn)} already exists on ${host} (tid ${clash.tid})`, 'iqn');
    const byTid = live.find((t) => t.tid === s.tid);
    if (byTid) throw new ValidationError(`target id ${s.tid} is already used on ${host} by ${byTid.iqn}`, 'tid');
    const stale = await recordsFree;
    await this.checkBsTypes(target);
    await this.checkNotServed(s.luns, live);
    // The same export's target, made again: the CHAP account it had may still be there (tgt
    // keeps accounts apart from targets), with the secret its record holds: it is bound as it is.
    let existingAccounts: string[] = [];
    if (stale) existingAccounts = await this.globalAccounts();
    else await this.checkAccountsFree(target);
    const kind: RecordKind = s.persist ? 'persistent' : 'live-only';
    const tid = await this.createLive(target, { tid: s.tid, record: kind, live, existingAccounts, ...(s.export !== undefined ? { export: s.export } : {}), ...(stale ? { replaces: stale } : {}) });
    if (this.planning) return plannedState(target, tid, images, kind);
    const state = await this.show(s.iqn);
    if (!state) throw new ValidationError(`target ${s.iqn} was created as tid ${tid} on ${host} but tgtd does not show it`, 'iqn');
    return state;
  }

  /**
   * Refuses when a file we would write is there: someone else's, or a record of ours not
   * live. One the same export wrote (`exportName`) is that export's target gone from tgtd
   * (deleted by hand, or a tgtd started without it): returned, to be written again.
   */
  private async checkRecordsFree(iqn: string, exportName?: string): Promise<TgtRecord | undefined> {
    const kinds = ['persistent', 'live-only'] as const;
    const texts = await Promise.all(kinds.map((kind) => this.runner.readFile(recordFile(this.confDir, iqn, kind))));
    const found = kinds.flatMap((kind, i) => (texts[i] === undefined ? [] : [{ file: recordFile(this.confDir, iqn, kind), text: texts[i]! }]));
    const recs = found.map((f) => ({ ...f, rec: parseRecord(f.file, f.text) }));
    if (exportName !== undefined && recs.length === 1 && recs[0]!.rec?.export === exportName) return recs[0]!.rec;
    for (const { file, rec } of recs) {
      if (!rec) throw new ValidationError(`${file} exists on ${this.runner.host} and was not written by virt-iscsi; move it away first`, 'iqn');
      throw new ValidationError(
        `target ${iqn} is recorded in ${file} but is not live: run "virt-iscsi target sync" to bring it back, or "virt-iscsi target delete ${iqn}" to drop it`,
        'iqn',
      );
    }
    return undefined;
  }

  private async checkBsTypes(target: TgtTarget): Promise<void> {
    const wanted = [...new Set([...(target.bsType ? [target.bsType] : []), ...target.luns.flatMap((l) => (l.bsType ? [l.bsType] : []))])];
    if (wanted.length === 0 || this.startsInPlan) return;
    const known = (await this.tgtadm.showSystem()).backingStores;
    for (const bs of wanted) {
      if (known.includes(bs)) continue;
      const module = BS_MODULES[bs];
      if (module) throw await missingModuleError(this.runner, bs, module);
      throw new ValidationError(`bs-type ${JSON.stringify(bs)} is not one tgtd on ${this.runner.host} has: ${known.join(', ')}`, 'bs-type');
    }
  }

  /**
   * An image behind two targets would be written by two initiators that do not know of
   * each other. Files are compared by identity (links, symlinks), RBD images by POOL/IMAGE.
   */
  private async checkNotServed(luns: readonly LunSpec[], live: readonly TgtShowTarget[]): Promise<void> {
    const served = live.flatMap((t) => t.luns.flatMap((l) => (l.backingPath ? [{ t, l, path: l.backingPath, rbd: l.backingType === 'rbd' }] : [])));
    if (served.length === 0) return;
    const files = luns.filter((l) => backingKind(l) === 'file').map((l) => l.path);
    const servedFiles = served.filter((s) => !s.rbd).map((s) => s.path);
    const ids = files.length && servedFiles.length ? await fileIdentities(this.runner, [...new Set([...files, ...servedFiles])]) : new Map<string, string>();
    for (const l of luns) {
      const rbd = backingKind(l) === 'rbd';
      const id = rbd ? undefined : ids.get(l.path);
      const hit = served.find((s) => s.rbd === rbd && (s.path === l.path || (id !== undefined && ids.get(s.path) === id)));
      if (hit) throw new ValidationError(`image ${JSON.stringify(l.path)} is already served by target ${hit.t.iqn} (tid ${hit.t.tid}) as LUN ${hit.l.lun}`, 'image');
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
  private async createLive(
    target: TgtTarget,
    o: { tid?: number; record?: RecordKind; existingAccounts?: readonly string[]; live?: readonly TgtShowTarget[]; export?: string; replaces?: TgtRecord },
  ): Promise<number> {
    const taken = new Set((o.live ?? (await this.live())).map((t) => t.tid));
    for (let attempt = 1; ; attempt++) {
      const tid = o.tid ?? Math.max(0, ...taken) + 1;
      const steps: Step[] = [targetStep(this.tgtadm, tid, target), ...contentSteps(this.tgtadm, tid, target, o.existingAccounts)];
      if (o.record) steps.push(this.recordStep(target, o.record, o.export, o.replaces));
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
        const same = now.find((t) => sameIqn(t.iqn, target.iqn));
        if (same) throw new ValidationError(`target ${JSON.stringify(target.iqn)} already exists on ${this.runner.host} (tid ${same.tid})`, 'iqn');
        const holder = now.find((t) => t.tid === tid);
        if (o.tid !== undefined) throw new ValidationError(`target id ${tid} is already used on ${this.runner.host}${holder ? ` by ${holder.iqn}` : ''}`, 'tid');
        if (attempt >= TID_ATTEMPTS) throw e;
        taken.add(tid);
        for (const t of now) taken.add(t.tid);
      }
    }
  }

  /** Writes the target's record; one it `replaces` (the same export's, of the other kind) goes, and stays when undone. */
  private recordStep(target: TgtTarget, kind: RecordKind, exportName?: string, replaces?: TgtRecord): Step {
    const file = recordFile(this.confDir, target.iqn, kind);
    return {
      title: `write ${file}`,
      apply: async () => {
        await writeRecord(this.runner, this.confDir, target, kind, exportName);
        if (replaces && replaces.file !== file) await this.runner.removeFile(replaces.file);
      },
      undo: async () => {
        if (!replaces) await this.runner.removeFile(file);
      },
    };
  }

  // ---- complete --------------------------------------------------------------------------

  /**
   * Adds to the live target what `spec` has and it lacks, in the order create adds them
   * (LUNs, CHAP accounts, then the ACLs that let initiators in), and writes its record when
   * that is gone. A LUN number serving another file, an ACL or account the spec does not
   * name: left as they are (`sync` is what makes a target match its record).
   */
  async complete(spec: TargetSpec, options: CreateOptions = {}): Promise<string[]> {
    const s = normalizeTargetSpec(spec, options);
    const target = targetSpecToTgtConf(s);
    const [live, accounts, persisted] = await Promise.all([this.live(), this.globalAccounts(), this.persisted(s.iqn)]);
    const t = live.find((x) => sameIqn(x.iqn, s.iqn));
    if (!t) throw new ValidationError(`target ${s.iqn} is not live on ${this.runner.host}: there is nothing to complete`, 'iqn');
    const steps: Step[] = [];
    const details: string[] = [];
    for (const l of resolveLuns(target)) {
      if (t.luns.some((x) => x.lun === l.lun)) continue;
      steps.push(lunStep(this.tgtadm, t.tid, l));
      details.push(`added LUN ${l.lun} (${l.path}${l.scsiSn ? `, serial ${l.scsiSn}` : ''}) to target ${s.iqn} again`);
    }
    const users: Array<{ user: string; secret: string; outgoing: boolean }> = [
      ...target.incomingUsers.map((a) => ({ ...a, outgoing: false })),
      ...(target.outgoingUser ? [{ ...target.outgoingUser, outgoing: true }] : []),
    ];
    for (const a of users) {
      if (t.accounts.some((x) => x.user === a.user && x.outgoing === a.outgoing)) continue;
      const exists = accounts.includes(a.user);
      steps.push(...accountSteps(this.tgtadm, t.tid, a.user, exists ? undefined : a.secret, a.outgoing));
      details.push(`${exists ? 'bound' : 'created and bound'} ${a.outgoing ? 'outgoing ' : ''}CHAP account ${a.user} to target ${s.iqn} again`);
    }
    for (const a of [...target.initiatorAddresses, ...target.initiatorNames]) {
      if (t.acls.includes(a)) continue;
      steps.push(bindStep(this.tgtadm, t.tid, a));
      details.push(`allowed initiator ${a} on target ${s.iqn} again`);
    }
    if (!persisted) {
      const kind: RecordKind = s.persist ? 'persistent' : 'live-only';
      steps.push(this.recordStep(target, kind, s.export));
      details.push(`wrote ${recordFile(this.confDir, s.iqn, kind)} again`);
    }
    await runPlan(steps, { signal: this.options.signal, onEvent: this.options.onEvent });
    return details;
  }

  /** Our records in conf.d: every target we made, live or not. */
  async configured(): Promise<Array<{ iqn: string; export?: string }>> {
    return (await readRecords(this.runner, this.confDir)).map((r) => ({ iqn: r.iqn, ...(r.export !== undefined ? { export: r.export } : {}) }));
  }

  /** Accounts tgtd keeps (`--mode account`) that no live target has bound. */
  async unboundAccounts(): Promise<string[]> {
    const [accounts, live] = await Promise.all([this.tgtadm.showAccounts(), this.tgtadm.showTargets()]);
    const bound = new Set(live.flatMap((t) => t.accounts.map((a) => a.user)));
    return accounts.filter((u) => !bound.has(u));
  }

  deleteAccount(user: string): Promise<void> {
    return this.tgtadm.deleteAccount(user);
  }

  // ---- delete ----------------------------------------------------------------------------

  async delete(iqn: string, options: DeleteOptions = {}): Promise<void> {
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
    const records = all.filter((r) => sameIqn(r.iqn, name));
    // A stopped tgtd has nothing live: dropping the record is all that keeps it from coming back.
    if (status === 'running' && 'error' in shown) throw shown.error;
    const live = status === 'running' && 'targets' in shown ? shown.targets : [];
    const t = live.find((x) => sameIqn(x.iqn, name));
    if (t) {
      if (records.length === 0 && !options.force && !options.ours) {
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
    }
    // The CHAP accounts we made for it (its records say which, or the caller that made it),
    // unless another target has been given them since; a run killed half-way may have left
    // an account whose target never came, so this is done with or without the target.
    const elsewhere = new Set(live.filter((x) => x !== t).flatMap((x) => x.accounts.map((a) => a.user)));
    const users = new Set<string>(options.ours?.accounts ?? []);
    for (const rec of records) for (const a of rec.target ? [...rec.target.incomingUsers, ...(rec.target.outgoingUser ? [rec.target.outgoingUser] : [])] : []) users.add(a.user);
    if (users.size > 0 && status === 'running') {
      const existing = new Set(await this.globalAccounts());
      for (const u of users) if (existing.has(u) && !elsewhere.has(u)) await this.tgtadm.deleteAccount(u);
    }
    for (const rec of records) await this.runner.removeFile(rec.file);
  }

  // ---- ACL ---------------------------------------------------------------------------------

  /**
   * The record is written first (it is what tgtd loads at its next start), then the live
   * target is brought to it the way `sync` does: only the bindings that differ change.
   */
  listening(): Promise<Portal[]> {
    return this.tgtadm.showPortals();
  }

  listen(portal: Portal): Promise<void> {
    return this.tgtadm.newPortal(portal);
  }

  unlisten(portal: Portal): Promise<void> {
    return this.tgtadm.deletePortal(portal);
  }

  async allowInitiators(iqn: string, initiators: readonly string[]): Promise<void> {
    const name = parseIscsiName(iqn, 'target name');
    const names = initiators.map((i) => parseIscsiName(i, 'allowed initiator'));
    const rec = (await readRecords(this.runner, this.confDir)).find((r) => sameIqn(r.iqn, name));
    if (!rec?.target) throw new ValidationError(`target ${name} on ${this.runner.host} has no record of virt-iscsi's in ${this.confDir}: its ACL is not ours to change`, 'iqn');
    const target = { ...rec.target, initiatorNames: [...names] };
    await writeRecord(this.runner, this.confDir, target, rec.kind, rec.export);
    const live = (await this.live()).find((t) => sameIqn(t.iqn, name));
    if (!live) return;
    const drift = targetDrift(this.tgtadm, { ...rec, target }, live, await this.globalAccounts());
    // Only the ACL: any other difference is `sync`'s to report and repair.
    const acl = drift.steps.filter((st) => /^(allow|disallow) initiator /.test(st.title));
    await runPlan(acl, { signal: this.options.signal, onEvent: this.options.onEvent });
  }

  // ---- grow ------------------------------------------------------------------------------

  /**
   * tgtd opens the LUN's backing store again (reopenLun) and so reads its new size. tgtd
   * shows sizes as whole megabytes (10^6 bytes, rounded to the nearest: 100663296 bytes is
   * "Size: 101 MB"), which is what is checked afterwards.
   */
  async growLun(iqn: string, lun: number, o: GrowOptions): Promise<GrowResult> {
    const name = parseIscsiName(iqn, 'target name');
    const host = this.runner.host;
    const find = async (): Promise<{ t: TgtShowTarget; l: TgtShowTarget['luns'][number] }> => {
      const t = (await this.tgtadm.showTargets()).find((x) => sameIqn(x.iqn, name));
      if (!t) throw new ValidationError(`target ${name} is not live on ${host}: ${this.restoreHint()} first`, 'iqn');
      const l = t.luns.find((x) => x.lun === lun);
      if (!l) throw new ValidationError(`target ${name} on ${host} has no LUN ${lun}`, 'lun');
      return { t, l };
    };
    const { t, l } = await find();
    // No backing: an earlier reopen closed the file and could not open it again.
    const path = l.backingPath ?? o.path;
    if (path === undefined) throw new ValidationError(`LUN ${lun} of ${name} on ${host} has no backing store, and none was given to open`, 'lun');
    if (l.type !== 'disk') throw new ValidationError(`LUN ${lun} of ${name} is a ${l.type}, not a disk: only disks grow`, 'lun');
    // Only the reopen itself is drained around: the lookups and checks are outside the pause.
    await o.drain?.before();
    try {
      await this.tgtadm.reopenLun(t.tid, lun, path);
    } catch (e) {
      // tgtd closed the old file before it failed to open the path: the LUN is offline, empty.
      if (!(e instanceof TgtadmError)) throw e;
      throw new ValidationError(
        `tgtd on ${host} could not open ${path} again for LUN ${lun} of ${name} (${e.stderr.trim().split('\n').pop() ?? 'refused'}): the LUN is offline until it can; put the image back at that path and run the resize again`,
        'lun',
      );
    } finally {
      await o.drain?.after();
    }
    const how = `tgtd reopened ${path}`;
    if (this.planning) return { sizeBytes: o.sizeBytes, how };
    const after = (await find()).l;
    const want = Math.round(o.sizeBytes / 1e6);
    if (after.sizeMB !== want || !after.online) {
      throw new ValidationError(
        `tgtd on ${host} shows LUN ${lun} of ${name} as ${after.sizeMB} MB${after.online ? '' : ' and offline'} after reopening ${path}, not ${want} MB (${o.sizeBytes} bytes)`,
        'lun',
      );
    }
    return { sizeBytes: o.sizeBytes, how };
  }

  /** `virt-iscsi target sync` for this tgtd: recreates the targets recorded in conf.d. */
  restoreHint(): string {
    const argv = ['virt-iscsi', 'target', 'sync'];
    if (this.runner.host !== 'local') argv.push('--host', this.runner.host);
    if (this.options.controlPort !== undefined) argv.push('--control-port', String(this.options.controlPort));
    if (this.confDir !== DEFAULT_CONF_DIR) argv.push('--conf-dir', this.confDir);
    return `run "${quoteArgv(argv)}"`;
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
      const t = live.find((x) => sameIqn(x.iqn, rec.iqn));
      items.push(await this.reconcileOne(rec, t, accounts, options));
    }
    for (const t of live) {
      if (!records.some((r) => sameIqn(r.iqn, t.iqn))) items.push({ iqn: t.iqn, status: 'unmanaged', details: ['live, not made by virt-iscsi: left alone'] });
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
        for (const l of resolveLuns(target)) await checkLunImage(this.runner, l);
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

/** Backing stores tgt ships as loadable modules: the package that has each, and its file. */
const BS_MODULES: Record<string, { pkg: string; file: string }> = {
  rbd: { pkg: 'tgt-rbd', file: 'bs_rbd.so' },
  glfs: { pkg: 'tgt-glusterfs', file: 'bs_glfs.so' },
};

/** Where distributions put tgt's backing-store modules (Debian, then RHEL-likes). */
const BS_MODULE_DIRS = ['/usr/lib/tgt/backing-store', '/usr/lib64/tgt/backing-store'];

/**
 * tgtd loads backing-store modules only when it starts: a tgtd started before the package
 * was installed lacks the store until it restarts. Says which case it is, in one line.
 */
async function missingModuleError(runner: Runner, bs: string, m: { pkg: string; file: string }): Promise<PrerequisiteError> {
  const found = [];
  for (const dir of BS_MODULE_DIRS) if ((await runner.run(['test', '-f', `${dir}/${m.file}`], { query: true })).exitCode === 0) found.push(`${dir}/${m.file}`);
  if (found.length > 0) {
    return new PrerequisiteError(
      `tgtd on ${runner.host} has no ${bs} backing store although ${found[0]} is installed: tgtd loads its modules only when it starts, so restart tgtd (this ends its iSCSI sessions)`,
    );
  }
  return new PrerequisiteError(`tgtd on ${runner.host} has no ${bs} backing store: install ${m.pkg} ("apt-get install ${m.pkg}"), then restart tgtd, which loads it only when it starts`);
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
