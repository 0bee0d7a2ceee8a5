// LIO (the Linux kernel target) driven by targetcli over a Runner. The commands and
// their checks are built in plan.ts; this file runs them as a plan with rollback, and
// reads state back: the tree from `targetcli ls`, CHAP users, demo-mode write
// protection and sessions from configfs, persistence and serials from saveconfig.json.
//
// LIO differences from tgt, as the TargetState shows them:
// - LUN numbers are the spec's (LUN 0 stays free: LIO answers for it itself).
// - A CD-ROM LUN is a read-only disk LUN: fileio/block backstores only emulate disks;
//   QEMU presents it to the guest as a CD-ROM all the same.
// - ACLs are per initiator IQN; addresses are refused; ALL is demo mode.
import { checkBackingsServedBy } from '../backing.js';
import { CommandError, maskSecrets, PrerequisiteError, ValidationError } from '../../errors.js';
import { runPlan, type PlanEvent, type Step } from '../../plan/plan.js';
import type { Portal } from '../../names/portal.js';
import { commandError, displayCommand } from '../../runner/check.js';
import type { RunOptions, RunResult, Runner } from '../../runner/types.js';
import type { DaemonStatus, DeleteOptions, GrowOptions, GrowResult, LunState, SessionInfo, TargetBackend, TargetSpec, TargetState } from '../backend.js';
import { CONFIGFS_CORE, fileioInfoSize, lioCreatePlan, lioDeletePlan, lioGrowPlan, lioName, storageObjectDir, type LioCommand, type LioView } from './plan.js';
import { parseSaveconfig, SAVECONFIG_PATHS, type SavedConfig } from './saveconfig.js';
import { parseAclInfo, parseDynamicSessions } from './sessions.js';
import { parseLioTree, type LioTarget, type LioTree } from './targetcli-ls.js';

/** targetcli's preferences for the shells virt-iscsi runs (see runCommand). */
const TARGETCLI_HOME = '/run/virt-iscsi/targetcli';

export const CONFIGFS_ISCSI = '/sys/kernel/config/target/iscsi';

export interface LioBackendOptions {
  /** Portals new targets listen on; default 0.0.0.0:3260. */
  portals?: Portal[];
  /** saveconfig file; default targetcli's (/etc/rtslib-fb-target/saveconfig.json, read with /etc/target/saveconfig.json as fallback). */
  saveconfigPath?: string;
  onEvent?: (e: PlanEvent) => void;
  signal?: AbortSignal;
}

/** targetcli said it succeeded (or the state says otherwise): the state read back lacks the command's effect. */
export class LioStateError extends CommandError {
  constructor(
    host: string,
    args: readonly string[],
    display: string,
    readonly problems: readonly string[],
  ) {
    super(host, args, display, 0, problems.join('; '), 'the state read back from targetcli ls / configfs does not show its effect');
  }
}

export class LioBackend implements TargetBackend {
  readonly name = 'lio' as const;
  /** fileio backstores take a new size through configfs (lioGrowPlan); targetcli takes commands, secrets included, on stdin. */
  readonly capabilities = { growLunInPlace: true, growClosesLun: false, secretOffArgv: true, addressAcls: false } as const;

  constructor(
    readonly runner: Runner,
    readonly options: LioBackendOptions = {},
  ) {}

  private get dryRun(): boolean {
    return this.runner.dryRun === true;
  }

  private async targetcli(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const r = await this.runner.run(['targetcli', ...args], options);
    if (r.exitCode === 127) throw new PrerequisiteError(`targetcli is not installed on ${this.runner.host}: install targetcli-fb (Debian, Ubuntu) or targetcli (Fedora, RHEL)`);
    return r;
  }

  /** Runs one command; a failure matching `alreadyDone` is success. targetcli prints its errors on stdout. */
  /**
   * A command holding a secret goes to targetcli on stdin, in its shell (the command line,
   * then `exit`), so the secret never shows in `ps`; targetcli answers 0 there whatever
   * happened, so every command's effect is read back (verify) anyway. Leaving its shell
   * saves the whole live configuration when the global preference auto_save_on_exit is on
   * (its default): a target made with --no-persist, or one someone else has not saved,
   * would land in saveconfig.json. So the shell runs with preferences of its own (HOME
   * under /run, which the next boot empties) in which that preference is turned off
   * first: root's own ~/.targetcli is never touched.
   */
  private async runCommand(c: LioCommand): Promise<void> {
    const opts: RunOptions = c.secrets ? { secrets: c.secrets } : {};
    const r = c.secrets
      ? await this.targetcli([], { ...opts, env: { HOME: TARGETCLI_HOME }, stdin: `set global auto_save_on_exit=false\n${c.args.join(' ')}\nexit\n` })
      : await this.targetcli(c.args, opts);
    if (r.exitCode === 0) return;
    const out = `${r.stdout}\n${r.stderr}`.trim();
    if (c.alreadyDone?.test(out)) return;
    throw commandError(this.runner, ['targetcli', ...c.args], { ...r, stderr: out }, opts);
  }

  /** Installed: targetcli answers; running: the kernel's target configfs is there. */
  async status(): Promise<DaemonStatus> {
    if ((await this.runner.run(['targetcli', '--version'], { query: true })).exitCode === 127) return 'not-installed';
    return (await this.runner.run(['test', '-d', CONFIGFS_ISCSI], { query: true })).exitCode === 0 ? 'running' : 'stopped';
  }

  async persisted(iqn: string): Promise<boolean> {
    const name = lioName(iqn, 'target');
    return (await this.readSaved())?.targets.some((t) => t.iqn === name) === true;
  }

  /**
   * saveconfig.json keeps CHAP passwords in clear (it is root's, 0600), on the target's
   * ACLs and on its TPG (demo mode): e.g. "chap_userid": "labuser", "chap_password": "...".
   */
  async storedChapSecret(iqn: string, user: string): Promise<string | undefined> {
    const name = lioName(iqn, 'target');
    for (const p of this.options.saveconfigPath ? [this.options.saveconfigPath] : SAVECONFIG_PATHS) {
      const text = await this.runner.readFile(p);
      if (text === undefined) continue;
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch {
        return undefined;
      }
      const target = ((doc as { targets?: unknown[] }).targets ?? []).find((t) => (t as { wwn?: unknown }).wwn === name);
      return target === undefined ? undefined : findChapPassword(target, user);
    }
    return undefined;
  }

  async ensureRunning(): Promise<void> {
    await this.targetcli(['--version'], { query: true });
    const r = await this.targetcli(['ls', '/iscsi'], { query: true });
    if (r.exitCode !== 0) {
      const why = `${r.stdout}${r.stderr}`.trim().split('\n').pop() ?? '';
      throw new PrerequisiteError(
        `LIO is not usable on ${this.runner.host} (targetcli ls /iscsi: ${why}); it needs the target_core_mod and iscsi_target_mod kernel modules and configfs`,
      );
    }
  }

  private async readTree(): Promise<LioTree> {
    const r = await this.targetcli(['ls', '/'], { query: true });
    if (r.exitCode !== 0) throw new CommandError(this.runner.host, ['targetcli', 'ls', '/'], 'targetcli ls /', r.exitCode, `${r.stdout}${r.stderr}`);
    return parseLioTree(r.stdout);
  }

  private async readSaved(): Promise<SavedConfig | undefined> {
    const paths = this.options.saveconfigPath ? [this.options.saveconfigPath] : SAVECONFIG_PATHS;
    for (const p of paths) {
      const text = await this.runner.readFile(p);
      if (text !== undefined) return parseSaveconfig(text);
    }
    return undefined;
  }

  private async readConfigfs(path: string): Promise<string | undefined> {
    return this.runner.readFile(`${CONFIGFS_ISCSI}/${path}`);
  }

  /** The tree, the saved file, and for `iqn` (when given) its CHAP users and demo-mode write protection. */
  private async readView(iqn?: string): Promise<LioView> {
    const tree = await this.readTree();
    const view: LioView = { tree, chapUsers: new Map() };
    const saved = await this.readSaved();
    if (saved) view.saved = saved;
    const g = iqn ? tree.targets.find((t) => t.iqn === iqn)?.tpgs.find((x) => x.tag === 1) : undefined;
    if (iqn && g) {
      const base = `${iqn}/tpgt_1`;
      const users = async (dir: string) => ({
        user: ((await this.readConfigfs(`${dir}/auth/userid`)) ?? '').trim(),
        mutualUser: ((await this.readConfigfs(`${dir}/auth/userid_mutual`)) ?? '').trim(),
      });
      if (g.generateNodeAcls) {
        view.chapUsers.set('', await users(base));
        const wp = await this.readConfigfs(`${base}/attrib/demo_mode_write_protect`);
        if (wp !== undefined) view.demoWriteProtect = wp.trim() === '1';
      }
      for (const a of g.acls) view.chapUsers.set(a.initiator, await users(`${base}/acls/${a.initiator}`));
    }
    return view;
  }

  private async sessions(t: LioTarget): Promise<SessionInfo[]> {
    const g = t.tpgs.find((x) => x.tag === 1);
    if (!g) return [];
    const out: SessionInfo[] = [];
    for (const a of g.acls) out.push(...parseAclInfo((await this.readConfigfs(`${t.iqn}/tpgt_1/acls/${a.initiator}/info`)) ?? ''));
    if (g.generateNodeAcls) out.push(...parseDynamicSessions((await this.readConfigfs(`${t.iqn}/tpgt_1/dynamic_sessions`)) ?? ''));
    return out;
  }

  private async state(t: LioTarget, tree: LioTree, saved: SavedConfig | undefined): Promise<TargetState> {
    const g = t.tpgs.find((x) => x.tag === 1);
    const savedTarget = saved?.targets.find((s) => s.iqn === t.iqn);
    let demoWp = false;
    if (g?.generateNodeAcls) demoWp = ((await this.readConfigfs(`${t.iqn}/tpgt_1/attrib/demo_mode_write_protect`)) ?? '').trim() === '1';
    const luns: LunState[] = (g?.luns ?? []).map((l) => {
      const b = tree.backstores.find((x) => x.plugin === l.plugin && x.name === l.storageObject);
      const so = saved?.storageObjects.find((x) => x.plugin === l.plugin && x.name === l.storageObject);
      const mapped = (g?.acls ?? []).flatMap((a) => a.mappedLuns.filter((m) => m.tpgLun === l.lun));
      const ro =
        b?.readonly === true || (g?.generateNodeAcls ? demoWp : mapped.length > 0 && mapped.every((m) => m.writeProtect));
      const state: LunState = {
        lun: l.lun,
        path: l.path ?? b?.path ?? '',
        type: 'disk',
        sizeBytes: so?.sizeBytes ?? b?.sizeBytes ?? 0,
        readonly: ro,
        online: g?.enabled ?? false,
      };
      if (so?.wwn) state.serial = so.wwn;
      return state;
    });
    const accounts = new Set<string>();
    if (g) {
      const dirs = g.generateNodeAcls ? [`${t.iqn}/tpgt_1`] : g.acls.map((a) => `${t.iqn}/tpgt_1/acls/${a.initiator}`);
      for (const d of dirs) {
        const u = ((await this.readConfigfs(`${d}/auth/userid`)) ?? '').trim();
        if (u) accounts.add(u);
      }
    }
    return {
      iqn: t.iqn,
      luns,
      sessions: await this.sessions(t),
      acls: g?.generateNodeAcls ? ['ALL'] : (g?.acls ?? []).map((a) => a.initiator),
      accounts: [...accounts],
      persisted: savedTarget !== undefined,
    };
  }

  async list(): Promise<TargetState[]> {
    const tree = await this.readTree();
    const saved = await this.readSaved();
    const out: TargetState[] = [];
    for (const t of tree.targets) out.push(await this.state(t, tree, saved));
    return out;
  }

  async show(iqn: string): Promise<TargetState | undefined> {
    const name = lioName(iqn, 'target');
    const tree = await this.readTree();
    const t = tree.targets.find((x) => x.iqn === name);
    return t ? this.state(t, tree, await this.readSaved()) : undefined;
  }

  async create(spec: TargetSpec): Promise<TargetState> {
    checkBackingsServedBy('lio', spec.luns);
    const commands = lioCreatePlan(spec, this.planOptions());
    const iqn = lioName(spec.iqn, 'target');
    const before = await this.readTree();
    if (before.targets.some((t) => t.iqn === iqn)) throw new ValidationError(`target ${iqn} already exists on ${this.runner.host}`, 'target');
    for (const l of spec.luns) {
      const used = before.backstores.find((b) => b.path === l.path);
      if (used) throw new ValidationError(`${l.path} is already served by LIO backstore ${used.plugin}/${used.name}`, 'path');
    }
    await this.execute(commands, iqn);
    if (this.dryRun) return plannedState(spec, iqn);
    const after = await this.show(iqn);
    if (!after) throw new ValidationError(`target ${iqn} is not there after creating it`, 'target');
    return after;
  }

  async delete(iqn: string, options: DeleteOptions = {}): Promise<void> {
    const name = lioName(iqn, 'target');
    const tree = await this.readTree();
    const t = tree.targets.find((x) => x.iqn === name);
    const saved = await this.readSaved();
    // A dry run has only recorded the steps that end the sessions (detach, logout): the real run checks.
    if (t && !options.force && !this.dryRun) {
      const live = await this.sessions(t);
      if (live.length > 0) {
        throw new ValidationError(
          `target ${name} has ${live.length} logged-in session(s) (${live.map((s) => s.initiator).join(', ')}); log them out first or use --force`,
          'force',
        );
      }
    }
    const commands = lioDeletePlan(name, tree, saved, this.options.saveconfigPath);
    if (commands.length > 0) await this.execute(commands, name);
  }

  async growLun(iqn: string, lun: number, o: GrowOptions): Promise<GrowResult> {
    const name = lioName(iqn, 'target');
    const host = this.runner.host;
    const tree = await this.readTree();
    const t = tree.targets.find((x) => x.iqn === name);
    if (!t) throw new ValidationError(`target ${name} is not live on ${host}: ${this.restoreHint()}`, 'iqn');
    const l = t.tpgs.find((g) => g.tag === 1)?.luns.find((x) => x.lun === lun);
    if (!l) throw new ValidationError(`target ${name} on ${host} has no LUN ${lun}`, 'lun');
    const b = tree.backstores.find((x) => x.plugin === l.plugin && x.name === l.storageObject);
    const path = b?.path ?? l.path ?? '';
    const argv = ['find', CONFIGFS_CORE, '-mindepth', '2', '-maxdepth', '2', '-type', 'd', '-name', l.storageObject];
    const found = await this.runner.run(argv, { query: true });
    if (found.exitCode !== 0) throw commandError(this.runner, argv, found);
    const dir = storageObjectDir(found.stdout, l.plugin, l.storageObject);
    if (!dir) throw new ValidationError(`backstore ${l.plugin}/${l.storageObject} of ${name} is not in ${CONFIGFS_CORE} on ${host}`, 'lun');
    const fileBacked = (await this.runner.run(['test', '-b', path], { query: true })).exitCode !== 0;
    const saved = (await this.readSaved())?.targets.some((x) => x.iqn === name) === true;
    const plan = lioGrowPlan({ plugin: l.plugin, name: l.storageObject, dir, fileBacked, sizeBytes: o.sizeBytes, saved, ...(this.options.saveconfigPath ? { saveconfigPath: this.options.saveconfigPath } : {}) });
    for (const c of plan) {
      const r = await this.runner.run(c.argv);
      if (r.exitCode !== 0) throw commandError(this.runner, c.argv, { ...r, stderr: `${r.stdout}\n${r.stderr}`.trim() });
    }
    const how = plan.length > 0 ? `LIO's fileio backstore ${l.storageObject} took the new size (configfs fd_dev_size)` : `LIO's ${l.plugin} backstore ${l.storageObject} reads its device's size itself`;
    if (this.dryRun || !(l.plugin === 'fileio' && fileBacked)) return { sizeBytes: o.sizeBytes, how };
    const seen = fileioInfoSize((await this.runner.readFile(`${dir}/info`)) ?? '');
    if (seen !== o.sizeBytes) throw new ValidationError(`LIO on ${host} reports ${seen ?? 'no'} bytes for backstore ${l.storageObject} after setting ${o.sizeBytes}`, 'lun');
    return { sizeBytes: seen, how };
  }

  /** A reboot without LIO's restore service leaves saved targets out; targetctl loads saveconfig.json. */
  restoreHint(): string {
    return `run "targetctl restore" when LIO lost its targets (a reboot without its restore service: enable rtslib-fb-targetctl, or target on RHEL)`;
  }

  private planOptions() {
    const o: { portals?: Portal[]; saveconfigPath?: string } = {};
    if (this.options.portals) o.portals = this.options.portals;
    if (this.options.saveconfigPath) o.saveconfigPath = this.options.saveconfigPath;
    return o;
  }

  /** Runs the commands as a plan; the last step reads the state back and checks every command took. */
  private async execute(commands: readonly LioCommand[], iqn: string): Promise<void> {
    const steps: Step[] = commands.map((c) => {
      const step: Step = { title: c.title, apply: () => this.runCommand(c) };
      if (c.undo) {
        const undo = c.undo;
        step.undo = async () => {
          const r = await this.targetcli(undo);
          if (r.exitCode !== 0 && !/No such|No storage object named/.test(`${r.stdout}${r.stderr}`)) {
            const argv = ['targetcli', ...undo];
            throw new CommandError(this.runner.host, argv, displayCommand(argv), r.exitCode, `${r.stdout}${r.stderr}`.trim());
          }
        };
      }
      return step;
    });
    steps.push({
      title: `check ${iqn} in targetcli ls and configfs`,
      apply: async () => {
        if (this.dryRun) return; // nothing ran, so there is nothing to read back
        const view = await this.readView(iqn);
        const failed = commands.map((c) => ({ c, problem: c.verify?.(view) })).filter((x) => x.problem !== undefined);
        const first = failed[0];
        if (first) {
          const argv = ['targetcli', ...first.c.args].map((a) => maskSecrets(a, first.c.secrets));
          throw new LioStateError(this.runner.host, argv, displayCommand(argv), failed.map((f) => f.problem!));
        }
      },
    });
    const opts: { onEvent?: (e: PlanEvent) => void; signal?: AbortSignal } = {};
    if (this.options.onEvent) opts.onEvent = this.options.onEvent;
    if (this.options.signal) opts.signal = this.options.signal;
    await runPlan(steps, opts);
  }
}

/** What create() reports under --dry-run, where nothing can be read back. */
function plannedState(spec: TargetSpec, iqn: string): TargetState {
  return {
    iqn,
    luns: spec.luns.map((l) => ({ lun: l.lun, path: l.path, type: 'disk', sizeBytes: 0, readonly: l.readonly === true || l.cdrom === true, online: true })),
    sessions: [],
    acls: spec.allow.includes('ALL') ? ['ALL'] : [...spec.allow],
    accounts: spec.chap ? [spec.chap.user] : [],
    persisted: spec.persist,
  };
}

/** The password beside `user` anywhere under a saved target (ACLs, TPGs), incoming or mutual. */
function findChapPassword(node: unknown, user: string): string | undefined {
  if (Array.isArray(node)) {
    for (const x of node) {
      const found = findChapPassword(x, user);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (node === null || typeof node !== 'object') return undefined;
  const o = node as Record<string, unknown>;
  if (o['chap_userid'] === user && typeof o['chap_password'] === 'string') return o['chap_password'];
  if (o['chap_mutual_userid'] === user && typeof o['chap_mutual_password'] === 'string') return o['chap_mutual_password'];
  for (const v of Object.values(o)) {
    const found = findChapPassword(v, user);
    if (found !== undefined) return found;
  }
  return undefined;
}
