// A thin typed driver over tgtadm (tgt 1.0.85). Every argv goes through the Runner, so a
// storage host over SSH is driven exactly like this one.
//
// tgtadm exits 22 for every refusal and tells them apart only on stderr, e.g.
//   tgtadm: this target already exists          tgtadm: can't find the target
//   tgtadm: this target is still active         tgtadm: invalid request
// and 107 when no tgtd listens on the control port:
//   tgtadm: failed to send request hdr to tgt daemon, Transport endpoint is not connected
import { CommandError, PrerequisiteError, ValidationError } from '../../errors.js';
import { commandError } from '../../runner/check.js';
import type { RunOptions, RunResult, Runner } from '../../runner/types.js';
import { parseTgtShowAccounts, parseTgtShowSystem, parseTgtShowTargets, type TgtShowTarget, type TgtSystem } from './show-parser.js';
import { formatPortal, parsePortal, type Portal } from '../../names/portal.js';

export type TgtadmReason =
  | 'no-target'
  | 'target-exists'
  | 'target-active'
  | 'no-lun'
  | 'lun-exists'
  | 'no-account'
  | 'account-exists'
  | 'acl-exists'
  | 'no-acl'
  | 'invalid-request'
  | 'other';

const REASONS: ReadonlyArray<[RegExp, TgtadmReason]> = [
  [/can't find the target/, 'no-target'],
  [/this target already exists/, 'target-exists'],
  [/this target is still active/, 'target-active'],
  [/can't find the logical unit/, 'no-lun'],
  [/this logical unit number already exists/, 'lun-exists'],
  [/can't find the account/, 'no-account'],
  [/this account already exists/, 'account-exists'],
  [/this access control rule already exists/, 'acl-exists'],
  [/this access control rule does not exist/, 'no-acl'],
  [/invalid request/, 'invalid-request'],
];

/** tgtadm refused a request; `reason` says which refusal it was. */
export class TgtadmError extends CommandError {
  constructor(
    base: CommandError,
    readonly reason: TgtadmReason,
  ) {
    super(base.host, base.argv, base.display, base.exitCode, base.stderr, base.hint);
  }
}

export function notInstalledError(host: string): PrerequisiteError {
  return new PrerequisiteError(
    `tgt is not installed on ${host} (no tgtadm): install it with "apt-get install tgt" (Debian/Ubuntu) or "dnf install scsi-target-utils", or pass --install`,
  );
}

/** tgtadm's exit code when it cannot reach tgtd (ENOTCONN). */
export const TGTADM_NOT_CONNECTED = 107;
const NOT_FOUND = 127;

type Mode = 'target' | 'logicalunit' | 'account' | 'sys' | 'portal';

export interface LunOptions {
  deviceType?: 'disk' | 'cd';
  bsType?: string;
  /** --bsopts, e.g. "conf=FILE;id=USER" for rbd. tgtadm passes it inside its ','-joined request: no ','. */
  bsOpts?: string;
}

/** Logical unit parameters set after creation (tgtadm takes --params on update only). */
export interface LunParams {
  readonly?: boolean;
  scsi_sn?: string;
  scsi_id?: string;
  vendor_id?: string;
  product_id?: string;
}

/** tgtd reads its control port into a short: larger numbers are refused ("out of range"). */
export const MAX_CONTROL_PORT = 32767;

/**
 * `tgtadm --lld iscsi --op show --mode portal` (tgt 1.0.85): one line per listening
 * portal, with its portal group tag, e.g.
 *   Portal: 127.0.0.2:3260,1
 *   Portal: 127.0.0.1:3260,1
 *   Portal: [::]:3260,1
 */
export function parseTgtShowPortals(text: string): Portal[] {
  return text.split('\n').flatMap((l) => {
    const m = /^Portal: (.+),\d+$/.exec(l.trim());
    return m ? [parsePortal(m[1]!)] : [];
  });
}

export class Tgtadm {
  constructor(
    readonly runner: Runner,
    /** tgtd's control port (tgtadm -C); the system instance's (0) when unset. */
    readonly controlPort?: number,
  ) {
    if (controlPort !== undefined && (!Number.isInteger(controlPort) || controlPort < 0 || controlPort > MAX_CONTROL_PORT)) {
      throw new ValidationError(`control port ${JSON.stringify(controlPort)} is not one tgtd takes: expected 0 to ${MAX_CONTROL_PORT}`, 'control-port');
    }
  }

  argv(mode: Mode, op: string, args: readonly string[] = []): string[] {
    const cp = this.controlPort === undefined ? [] : ['-C', String(this.controlPort)];
    return ['tgtadm', ...cp, '--lld', 'iscsi', '--mode', mode, '--op', op, ...args];
  }

  /**
   * Runs one request. Refusals listed in `ok` count as success (teardown is idempotent);
   * others throw TgtadmError, or PrerequisiteError when tgt is missing or not running.
   */
  async run(mode: Mode, op: string, args: readonly string[], options: RunOptions & { ok?: readonly TgtadmReason[] } = {}): Promise<RunResult> {
    const argv = this.argv(mode, op, args);
    const r = await this.runner.run(argv, options);
    if (r.exitCode === 0) return r;
    const where = `${this.runner.host}${this.controlPort === undefined ? '' : ` (control port ${this.controlPort})`}`;
    if (r.exitCode === NOT_FOUND) throw notInstalledError(this.runner.host);
    if (r.exitCode === TGTADM_NOT_CONNECTED) {
      const start = this.controlPort === undefined ? 'service tgt start' : `tgtd --control-port ${this.controlPort}`;
      throw new PrerequisiteError(`tgtd is not running on ${where}: start it with "${start}", or let "virt-iscsi target create" or "target sync" start it`);
    }
    const reason = REASONS.find(([re]) => re.test(r.stderr))?.[1] ?? 'other';
    if (options.ok?.includes(reason)) return r;
    throw new TgtadmError(commandError(this.runner, argv, r, options), reason);
  }

  // ---- reading (queries: a dry run still runs them) ----------------------------------

  async showTargets(): Promise<TgtShowTarget[]> {
    return parseTgtShowTargets((await this.run('target', 'show', [], { query: true })).stdout);
  }

  async showAccounts(): Promise<string[]> {
    return parseTgtShowAccounts((await this.run('account', 'show', [], { query: true })).stdout);
  }

  async showSystem(): Promise<TgtSystem> {
    return parseTgtShowSystem((await this.run('sys', 'show', [], { query: true })).stdout);
  }

  /** Where tgtd listens (`--op show --mode portal`). */
  async showPortals(): Promise<Portal[]> {
    return parseTgtShowPortals((await this.run('portal', 'show', [], { query: true })).stdout);
  }

  /** Listens on one more address (tgtd-wide, until it stops: its own --iscsi portal= and defaults are the lasting ones). */
  async newPortal(p: Portal): Promise<void> {
    await this.run('portal', 'new', ['--param', `portal=${formatPortal(p)}`]);
  }

  async deletePortal(p: Portal): Promise<void> {
    await this.run('portal', 'delete', ['--param', `portal=${formatPortal(p)}`]);
  }

  // ---- targets -------------------------------------------------------------------------

  async newTarget(tid: number, iqn: string): Promise<void> {
    await this.run('target', 'new', ['--tid', String(tid), '--targetname', iqn]);
  }

  /** One iSCSI session parameter of a target (tgtadm takes one --name/--value a call), for logins after it. */
  async updateTarget(tid: number, name: string, value: string): Promise<void> {
    await this.run('target', 'update', ['--tid', String(tid), '--name', name, '--value', value]);
  }

  /** A target already gone is success. Without force, tgtd refuses while sessions are logged in. */
  async deleteTarget(tid: number, options: { force?: boolean } = {}): Promise<void> {
    await this.run('target', 'delete', [...(options.force ? ['--force'] : []), '--tid', String(tid)], { ok: ['no-target'] });
  }

  // ---- logical units -----------------------------------------------------------------

  async newLun(tid: number, lun: number, path: string, options: LunOptions = {}): Promise<void> {
    const extra = [
      ...(options.deviceType ? ['--device-type', options.deviceType] : []),
      ...(options.bsType ? ['--bstype', options.bsType] : []),
      ...(options.bsOpts ? ['--bsopts', options.bsOpts] : []),
    ];
    await this.run('logicalunit', 'new', ['--tid', String(tid), '--lun', String(lun), '--backing-store', path, ...extra]);
  }

  /** Values are checked by the caller: tgtadm joins them as "k=v,k=v", so a ',' would cut one short. */
  async updateLun(tid: number, lun: number, params: LunParams): Promise<void> {
    const kv: string[] = [];
    if (params.readonly !== undefined) kv.push(`readonly=${params.readonly ? 1 : 0}`);
    for (const key of ['scsi_sn', 'scsi_id', 'vendor_id', 'product_id'] as const) if (params[key] !== undefined) kv.push(`${key}=${params[key]}`);
    if (kv.length > 0) await this.run('logicalunit', 'update', ['--tid', String(tid), '--lun', String(lun), '--params', kv.join(',')]);
  }

  /**
   * Closes the LUN's backing store and opens `path` again, so tgtd reads its size anew (it
   * reads it only at open). tgtd 1.0.85 (usr/target.c tgt_device_path_update) takes a new
   * path only from an offline LUN ("invalid request" otherwise): online=0 first, in the same
   * request. It then closes, opens, and puts the LUN back online itself; its serial, SCSI id,
   * read-only flag and mode pages stay as they were. tgtd handles the request on its main
   * loop, so no new command reaches the LUN meanwhile, but one a backing-store thread is
   * running can meet the closed file: the caller drains them first.
   */
  async reopenLun(tid: number, lun: number, path: string): Promise<void> {
    // tgtd cuts --params at ',' (key=value,key=value).
    if (path.includes(',')) throw new ValidationError(`tgt cannot reopen ${JSON.stringify(path)}: its parameters are split at ',', so a path holding one cannot be given`, 'path');
    await this.run('logicalunit', 'update', ['--tid', String(tid), '--lun', String(lun), '--params', `online=0,path=${path}`]);
  }

  async deleteLun(tid: number, lun: number): Promise<void> {
    await this.run('logicalunit', 'delete', ['--tid', String(tid), '--lun', String(lun)], { ok: ['no-lun', 'no-target'] });
  }

  // ---- ACLs ------------------------------------------------------------------------------

  /** `kind` address: IP, CIDR or ALL (-I); name: initiator IQN (-Q). */
  async bind(tid: number, kind: 'address' | 'name', value: string): Promise<void> {
    await this.run('target', 'bind', ['--tid', String(tid), kind === 'name' ? '--initiator-name' : '--initiator-address', value]);
  }

  async unbind(tid: number, kind: 'address' | 'name', value: string): Promise<void> {
    await this.run('target', 'unbind', ['--tid', String(tid), kind === 'name' ? '--initiator-name' : '--initiator-address', value], { ok: ['no-acl', 'no-target'] });
  }

  // ---- CHAP accounts ---------------------------------------------------------------------

  /**
   * tgtadm has no other way to take a password than its argv: it is visible in `ps` on
   * the storage host for the few milliseconds tgtadm runs. It is masked everywhere we
   * print (secrets), and this is the only call that carries it.
   */
  async newAccount(user: string, secret: string): Promise<void> {
    await this.run('account', 'new', ['--user', user, '--password', secret], { secrets: [secret] });
  }

  /** Deleting an account also unbinds it from every target. Already gone is success. */
  async deleteAccount(user: string): Promise<void> {
    await this.run('account', 'delete', ['--user', user], { ok: ['no-account'] });
  }

  async bindAccount(tid: number, user: string, outgoing = false): Promise<void> {
    await this.run('account', 'bind', ['--tid', String(tid), '--user', user, ...(outgoing ? ['--outgoing'] : [])]);
  }

  async unbindAccount(tid: number, user: string, outgoing = false): Promise<void> {
    await this.run('account', 'unbind', ['--tid', String(tid), '--user', user, ...(outgoing ? ['--outgoing'] : [])], { ok: ['no-account', 'no-target'] });
  }
}
