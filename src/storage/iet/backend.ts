// IET (iSCSI Enterprise Target: ietd + the iscsi_trgt module) over a Runner.
// Live changes go through ietadm; persistence through ietd.conf; who may log in lives
// only in initiators.allow, which ietd reads again on every login (usr/plain.c:
// "Every time we are called, we read the file"), so no reload is needed.
//
// Choices written down where they bite:
// - LUN numbers: IET has no controller LUN and wants Lun 0 first (the config model
//   enforces it), so spec LUN N is IET Lun N-1 (targetSpecToIet). TargetState reports
//   the numbers initiators see: IET's, so a by-path name built from it is right.
// - The initiators.allow line is written before the target exists: a target with no
//   line there lets every initiator in, so the other order would leave a window.
// - tid: one more than the highest in /proc/net/iet/volume (ietadm needs an explicit
//   tid on every version; tid 0 "pick one" is not in all of them).
// - CHAP accounts go on ietadm's argv (`--params=IncomingUser=U,Password=P`): it has no
//   other way. They are passed as RunOptions.secrets so nothing we print shows them;
//   they are visible in `ps` while ietadm runs (milliseconds).
// - ietadm returns a negative errno as its exit status (so 254 = -ENOENT) and prints
//   only a numeric trace ("ietd_request 203 3 -1"): the hint says which errno it was.
import { checkBackingsServedBy } from '../backing.js';
import { CommandError, PrerequisiteError, ValidationError } from '../../errors.js';
import { formatIetAllow, getIetAllow, parseIetAllow, parseIetAllowLine, removeIetAllow, upsertIetAllow } from '../../config/iet-allow.js';
import { formatIetConf, getIetTarget, parseIetConf, ietLunParams, removeIetTarget, targetSpecToIet, upsertIetTarget } from '../../config/iet-conf.js';
import { runPlan, type PlanEvent, type Step } from '../../plan/plan.js';
import { commandError } from '../../runner/check.js';
import type { RunOptions, Runner } from '../../runner/types.js';
import type { DaemonStatus, DeleteOptions, LunState, SessionInfo, TargetBackend, TargetSpec, TargetState, GrowResult } from '../backend.js';
import { parseIetSessions, parseIetVolumes, type IetSessionTarget, type IetVolumeTarget } from './proc.js';

export interface IetBackendOptions {
  confPath?: string;
  allowPath?: string;
  /** Where the module's proc files are (volume, session). */
  procDir?: string;
  onEvent?: (e: PlanEvent) => void;
  signal?: AbortSignal;
}

export const IET_DEFAULTS = { confPath: '/etc/iet/ietd.conf', allowPath: '/etc/iet/initiators.allow', procDir: '/proc/net/iet' } as const;

/** Why IET cannot grow a LUN that is served, and the way that works. */
export function ietCannotGrow(host: string, iqn: string, lun: number): string {
  return `IET on ${host} cannot grow LUN ${lun} of ${iqn} while it is served (the kernel module reads its size when the LUN is added, and ietadm cannot change it): unexport it, grow the image, and export it again`;
}

const ERRNO: Record<number, string> = {
  1: 'EPERM: not permitted',
  2: 'ENOENT: no such target, LUN, session or account',
  12: 'ENOMEM',
  16: 'EBUSY: in use (sessions logged in?)',
  17: 'EEXIST: already exists (tid or LUN taken)',
  22: 'EINVAL: a parameter was refused (path, type, name)',
  111: 'ECONNREFUSED: ietd is not running',
};

/** ietadm exits with a negative errno; 254 is -ENOENT. */
const IET_ENOENT = 256 - 2;


// IET takes any iqn. name of these characters (ietd.conf's reader); real targets exist with
// names RFC 3720 would refuse (iqn.foo.example), and they must stay reachable for show/delete.
const IET_NAME = /^iqn\.[A-Za-z0-9.:-]+$/;

function ietTargetName(raw: string): string {
  if (!IET_NAME.test(raw)) throw new ValidationError(`target ${JSON.stringify(raw)} is not an IET target name (iqn. followed by letters, digits, . : -)`, 'target');
  return raw.toLowerCase();
}

/**
 * Writes `next` over `path`; the returned undo puts the file back as it was when nothing
 * else changed it since, and otherwise takes out only our part (`strip`).
 */
async function replaceFile(
  runner: Runner,
  path: string,
  edit: (text: string) => string,
  strip: (text: string) => string,
  options: { mode: number; secret?: boolean },
): Promise<() => Promise<void>> {
  const before = await runner.readFile(path);
  const written = edit(before ?? '');
  await runner.writeFile(path, written, options);
  return async () => {
    const now = await runner.readFile(path);
    if (now === written && before === undefined) await runner.removeFile(path);
    else await runner.writeFile(path, now === written ? (before ?? '') : strip(now ?? ''), options);
  };
}

/** initiators.allow name patterns are regexes with escaped dots: shown as the plain name. */
function unescapePattern(entry: string): string {
  return entry.replace(/\\(.)/g, '$1');
}

export class IetBackend implements TargetBackend {
  readonly name = 'iet' as const;
  private readonly paths: { confPath: string; allowPath: string; procDir: string };

  constructor(
    readonly runner: Runner,
    readonly options: IetBackendOptions = {},
  ) {
    this.paths = {
      confPath: options.confPath ?? IET_DEFAULTS.confPath,
      allowPath: options.allowPath ?? IET_DEFAULTS.allowPath,
      procDir: options.procDir ?? IET_DEFAULTS.procDir,
    };
  }

  /**
   * ietadm and ietd.conf take CHAP secrets only in the clear (argv, and the 0600 file). The
   * kernel module sizes a LUN when it is added, and ietadm has no request that changes it.
   */
  readonly capabilities = { growLunInPlace: false, growClosesLun: false, secretOffArgv: false, addressAcls: true } as const;

  async growLun(iqn: string, lun: number): Promise<GrowResult> {
    throw new PrerequisiteError(ietCannotGrow(this.runner.host, iqn, lun));
  }

  restoreHint(): string {
    return `restart ietd (it loads ${this.paths.confPath} when it starts)`;
  }

  async status(): Promise<DaemonStatus> {
    if ((await this.runner.run(['ietadm', '--version'], { query: true })).exitCode === 127) return 'not-installed';
    return (await this.runner.readFile(`${this.paths.procDir}/volume`)) === undefined ? 'stopped' : 'running';
  }

  async persisted(iqn: string): Promise<boolean> {
    return getIetTarget(parseIetConf((await this.runner.readFile(this.paths.confPath)) ?? ''), ietTargetName(iqn)) !== undefined;
  }

  async storedChapSecret(iqn: string, user: string): Promise<string | undefined> {
    const t = getIetTarget(parseIetConf((await this.runner.readFile(this.paths.confPath)) ?? ''), ietTargetName(iqn));
    return [...(t?.incomingUsers ?? []), ...(t?.outgoingUser ? [t.outgoingUser] : [])].find((a) => a.user === user)?.secret;
  }

  private get dryRun(): boolean {
    return this.runner.dryRun === true;
  }

  private async ietadm(args: string[], options: RunOptions & { okExitCodes?: number[] } = {}): Promise<void> {
    const argv = ['ietadm', ...args];
    const r = await this.runner.run(argv, options);
    if (r.exitCode === 127) throw new PrerequisiteError(`ietadm is not installed on ${this.runner.host}: IET (iscsitarget) must be built and installed from source`);
    if (r.exitCode === 0 || options.okExitCodes?.includes(r.exitCode)) return;
    const errno = r.exitCode > 128 ? 256 - r.exitCode : undefined;
    throw commandError(this.runner, argv, r, options, errno !== undefined ? `ietadm error -${errno}${ERRNO[errno] ? ` (${ERRNO[errno]})` : ''}` : undefined);
  }

  async ensureRunning(): Promise<void> {
    const v = await this.runner.run(['ietadm', '--version'], { query: true });
    if (v.exitCode === 127) throw new PrerequisiteError(`ietadm is not installed on ${this.runner.host}: IET (iscsitarget) must be built and installed from source`);
    if ((await this.runner.readFile(`${this.paths.procDir}/volume`)) === undefined) {
      throw new PrerequisiteError(
        `IET is not running on ${this.runner.host} (${this.paths.procDir}/volume is missing): load iscsi_trgt and start ietd (service iscsitarget start)`,
      );
    }
  }

  private async volumes(): Promise<IetVolumeTarget[]> {
    const text = await this.runner.readFile(`${this.paths.procDir}/volume`);
    if (text === undefined) throw new PrerequisiteError(`IET is not running on ${this.runner.host}: ${this.paths.procDir}/volume is missing`);
    return parseIetVolumes(text);
  }

  private async sessionTargets(): Promise<IetSessionTarget[]> {
    return parseIetSessions((await this.runner.readFile(`${this.paths.procDir}/session`)) ?? '');
  }

  private async state(v: IetVolumeTarget, sessions: IetSessionTarget[], confText: string, allowText: string): Promise<TargetState> {
    const conf = getIetTarget(parseIetConf(confText), v.name);
    const luns: LunState[] = v.luns.map((l) => {
      const s: LunState = {
        lun: l.lun,
        path: l.path ?? '',
        type: 'disk',
        sizeBytes: l.blocks !== undefined && l.blockSize !== undefined ? l.blocks * l.blockSize : 0,
        readonly: l.iomode === 'ro',
        online: l.state === 0,
      };
      const sn = conf?.luns.find((c) => c.lun === l.lun)?.scsiSn;
      if (sn !== undefined) s.serial = sn;
      return s;
    });
    const live: SessionInfo[] = (sessions.find((t) => t.tid === v.tid)?.sessions ?? []).flatMap((s) =>
      s.connections.length > 0 ? s.connections.map((c) => ({ initiator: s.initiator, address: c.ip })) : [{ initiator: s.initiator }],
    );
    const accounts = conf ? [...conf.incomingUsers.map((a) => a.user), ...(conf.outgoingUser ? [conf.outgoingUser.user] : [])] : [];
    return { iqn: v.name, tid: v.tid, luns, sessions: live, acls: this.aclsOf(allowText, v.name), accounts, persisted: conf !== undefined };
  }

  /** The initiators.allow entries ietd applies to the target; no line at all lets everyone in. */
  private aclsOf(allowText: string, iqn: string): string[] {
    const doc = parseIetAllow(allowText);
    const own = getIetAllow(doc, iqn);
    if (own) return own.map(unescapePattern);
    const all = doc.chunks.find((c) => c.kind === 'rule' && c.target === 'ALL');
    return all && all.kind === 'rule' ? parseIetAllowLine(all.text).initiators.map(unescapePattern) : ['ALL'];
  }

  async list(): Promise<TargetState[]> {
    const [vols, sess] = [await this.volumes(), await this.sessionTargets()];
    const conf = (await this.runner.readFile(this.paths.confPath)) ?? '';
    const allow = (await this.runner.readFile(this.paths.allowPath)) ?? '';
    const out: TargetState[] = [];
    for (const v of vols) out.push(await this.state(v, sess, conf, allow));
    return out;
  }

  async show(iqn: string): Promise<TargetState | undefined> {
    const name = ietTargetName(iqn);
    return (await this.list()).find((t) => t.iqn.toLowerCase() === name);
  }

  async create(spec: TargetSpec): Promise<TargetState> {
    checkBackingsServedBy('iet', spec.luns);
    const { target, allow } = targetSpecToIet(spec);
    const iqn = target.iqn;
    const vols = await this.volumes();
    if (vols.some((v) => v.name.toLowerCase() === iqn.toLowerCase())) throw new ValidationError(`target ${iqn} already exists on ${this.runner.host}`, 'target');
    for (const l of target.luns) {
      const owner = vols.find((v) => v.luns.some((x) => x.path === l.path));
      if (owner) throw new ValidationError(`${l.path} is already served by IET target ${owner.name}`, 'path');
    }
    const tid = Math.max(0, ...vols.map((v) => v.tid)) + 1;
    const t = `--tid=${tid}`;
    const { confPath, allowPath } = this.paths;

    const steps: Step[] = [
      ((): Step => {
        let undo: (() => Promise<void>) | undefined;
        return {
          title: `allow ${allow.join(', ')} to log in to ${iqn} (${allowPath})`,
          apply: async () => {
            const strip = (t: string) => formatIetAllow(removeIetAllow(parseIetAllow(t), iqn));
            undo = await replaceFile(this.runner, allowPath, (t) => formatIetAllow(upsertIetAllow(parseIetAllow(t), iqn, allow)), strip, { mode: 0o644 });
          },
          undo: async () => undo?.(),
        };
      })(),
      {
        title: `create target ${iqn} as tid ${tid}`,
        apply: () => this.ietadm(['--op', 'new', t, '--params', `Name=${iqn}`]),
        undo: () => this.ietadm(['--op', 'delete', t], { okExitCodes: [IET_ENOENT] }),
      },
      ...target.luns.map(
        (l): Step => ({
          title: `add Lun ${l.lun} (${l.path}${l.ioMode === 'ro' ? ', read-only' : ''}) to ${iqn}`,
          apply: () => this.ietadm(['--op', 'new', t, `--lun=${l.lun}`, '--params', ietLunParams(l)]),
        }),
      ),
      ...[...target.incomingUsers.map((a) => ['IncomingUser', a] as const), ...(target.outgoingUser ? [['OutgoingUser', target.outgoingUser] as const] : [])].map(
        ([kind, a]): Step => ({
          title: `add ${kind} ${a.user} to ${iqn}`,
          apply: () => this.ietadm(['--op', 'new', t, '--user', `--params=${kind}=${a.user},Password=${a.secret}`], { secrets: [a.secret] }),
        }),
      ),
    ];
    if (spec.persist) {
      let undo: (() => Promise<void>) | undefined;
      const options = { mode: 0o600, secret: spec.chap !== undefined };
      steps.push({
        title: `write ${iqn} to ${confPath}`,
        apply: async () => {
          const strip = (t: string) => formatIetConf(removeIetTarget(parseIetConf(t), iqn));
          undo = await replaceFile(this.runner, confPath, (t) => formatIetConf(upsertIetTarget(parseIetConf(t), target)), strip, options);
        },
        undo: async () => undo?.(),
      });
    }
    steps.push({
      title: `check ${iqn} in ${this.paths.procDir}/volume`,
      apply: async () => {
        if (this.dryRun) return;
        const v = (await this.volumes()).find((x) => x.tid === tid);
        const problems: string[] = [];
        if (!v || v.name.toLowerCase() !== iqn.toLowerCase()) problems.push(`tid ${tid} is not ${iqn}`);
        for (const l of target.luns) {
          const got = v?.luns.find((x) => x.lun === l.lun);
          if (!got) problems.push(`Lun ${l.lun} is missing`);
          else if (got.path !== undefined && got.path !== l.path) problems.push(`Lun ${l.lun} serves ${got.path}`);
          else if ((got.iomode === 'ro') !== (l.ioMode === 'ro')) problems.push(`Lun ${l.lun} is ${got.iomode === 'ro' ? '' : 'not '}read-only`);
        }
        if (problems.length > 0) {
          throw new CommandError(this.runner.host, ['cat', `${this.paths.procDir}/volume`], `cat ${this.paths.procDir}/volume`, 0, problems.join('; '), 'IET did not take every change');
        }
      },
    });
    const opts: { onEvent?: (e: PlanEvent) => void; signal?: AbortSignal } = {};
    if (this.options.onEvent) opts.onEvent = this.options.onEvent;
    if (this.options.signal) opts.signal = this.options.signal;
    await runPlan(steps, opts);
    if (this.dryRun) {
      return {
        iqn,
        tid,
        luns: target.luns.map((l) => ({ lun: l.lun, path: l.path ?? '', type: 'disk', sizeBytes: 0, readonly: l.ioMode === 'ro', online: true })),
        sessions: [],
        acls: allow.map(unescapePattern),
        accounts: spec.chap ? [spec.chap.user, ...(spec.chap.mutualUser ? [spec.chap.mutualUser] : [])] : [],
        persisted: spec.persist,
      };
    }
    const after = await this.show(iqn);
    if (!after) throw new ValidationError(`target ${iqn} is not there after creating it`, 'target');
    return after;
  }

  async delete(iqn: string, options: DeleteOptions = {}): Promise<void> {
    const name = ietTargetName(iqn);
    const v = (await this.volumes()).find((x) => x.name.toLowerCase() === name);
    if (v) {
      const sessions = (await this.sessionTargets()).find((s) => s.tid === v.tid)?.sessions ?? [];
      if (sessions.length > 0 && !options.force) {
        throw new ValidationError(
          `target ${name} has ${sessions.length} logged-in session(s) (${sessions.map((s) => s.initiator).join(', ')}); log them out first or use --force`,
          'force',
        );
      }
      // ietadm refuses to delete a target with sessions: close their connections first.
      for (const s of sessions) {
        for (const c of s.connections) {
          await this.ietadm(['--op', 'delete', `--tid=${v.tid}`, `--sid=${s.sid}`, `--cid=${c.cid}`], { okExitCodes: [IET_ENOENT] });
        }
      }
      await this.ietadm(['--op', 'delete', `--tid=${v.tid}`], { okExitCodes: [IET_ENOENT] });
    }
    const confText = await this.runner.readFile(this.paths.confPath);
    if (confText !== undefined && getIetTarget(parseIetConf(confText), name)) {
      await this.runner.writeFile(this.paths.confPath, formatIetConf(removeIetTarget(parseIetConf(confText), name)), { mode: 0o600, secret: true });
    }
    const allowText = await this.runner.readFile(this.paths.allowPath);
    if (allowText !== undefined) {
      const doc = parseIetAllow(allowText);
      if (doc.chunks.some((c) => c.kind === 'rule' && c.target.toLowerCase() === name)) {
        await this.runner.writeFile(this.paths.allowPath, formatIetAllow(removeIetAllow(doc, name)), { mode: 0o644 });
      }
    }
  }
}
