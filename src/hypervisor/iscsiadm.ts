// A typed driver for open-iscsi's iscsiadm over a Runner (local or SSH alike).
//
// Choices written down where they bite:
// - Discovery uses `--op nonpersistent`, as libvirt does: it does not write node
//   records for every target a portal offers, only for the one we log in to.
// - A portal given by host name is resolved to its IP on the hypervisor first
//   : udev's /dev/disk/by-path names carry the IP, never the name.
// - CHAP secrets never go on argv (`ps` shows it to every user). `iscsiadm -o update -v SECRET` would
//   put them in `ps`, and iscsiadm has no stdin or batch mode. Instead the node record
//   file iscsiadm keeps (NODES/IQN/ADDRESS,PORT,TPGT/IFACE, "name = value" lines, root
//   only) is edited: read, the auth lines replaced, written back 0600 through the
//   Runner's atomic write, then read back with `iscsiadm -m node` (which masks the
//   secrets) to check iscsiadm sees the new method and user. Limits: iscsiadm's own
//   record lock is not taken, so a concurrent iscsiadm writing the same record could
//   lose our change (the read-back would then fail loudly); the record directory is
//   /etc/iscsi/nodes (Debian, Ubuntu) or /var/lib/iscsi/nodes (Fedora, RHEL, SUSE),
//   found by looking, or set with `nodesDir`.
// - Exit 15 (session exists) on login and 21 (nothing found) on logout, delete and
//   listing are success (tools that took them for errors tore down healthy sessions); other codes become IscsiadmError with a hint.
import { isIP } from 'node:net';
import { PrerequisiteError, TimeoutError, ValidationError } from '../errors.js';
import { sleep } from '../plan/plan.js';
import { byPathFor } from '../names/by-path.js';
import { parseIscsiName } from '../names/iscsi-name.js';
import { formatPortal, type Portal } from '../names/portal.js';
import { commandError } from '../runner/check.js';
import type { RunOptions, RunResult, Runner } from '../runner/types.js';
import { ISCSI_ERR, iscsiadmError } from './iscsiadm-errors.js';
import {
  parseGetentHosts,
  parseIfaceList,
  parseInitiatorName,
  parseNodeList,
  parseNodeRecord,
  parseSessionTree,
  type IfaceEntry,
  type IscsiSession,
  type NodeEntry,
} from './iscsiadm-parse.js';

/** The live session's replacement timeout in sysfs (the iscsi_session class). */
export const recoveryTmoPath = (sid: number): string => {
  if (!Number.isInteger(sid) || sid < 0) throw new ValidationError(`session id ${sid} is not a session number`, 'session');
  return `/sys/class/iscsi_session/session${sid}/recovery_tmo`;
};

export const INITIATOR_NAME_FILE = '/etc/iscsi/initiatorname.iscsi';
/** Where open-iscsi keeps node records, by distribution family, in the order we look. */
export const NODE_DIRS = ['/etc/iscsi/nodes', '/var/lib/iscsi/nodes'] as const;

export interface IscsiadmOptions {
  /** Node record directory; found among NODE_DIRS when unset. */
  nodesDir?: string;
  /** iscsiadm's iface for node records and logins (default: "default"). */
  iface?: string;
  /** Milliseconds one iscsiadm call may take (login retries can be long). */
  timeoutMs?: number;
}

export interface ChapCredentials {
  user: string;
  secret: string;
  /** Mutual CHAP: the target authenticates back with these. */
  mutualUser?: string;
  mutualSecret?: string;
}

export type NodeStartup = 'automatic' | 'manual';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Stops the wait at once (Ctrl-C): it rejects with InterruptedError. */
  signal?: AbortSignal;
}

const AUTH_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;

function checkAuthValue(field: string, value: string, secret: boolean): void {
  if (!AUTH_VALUE.test(value)) {
    const shown = secret ? 'the value' : JSON.stringify(value);
    throw new ValidationError(
      `CHAP ${field} ${shown} is not allowed; expected 1 to 256 printable ASCII characters without leading or trailing spaces`,
      field,
    );
  }
}


export class Iscsiadm {
  private nodesDirFound?: string;

  constructor(
    readonly runner: Runner,
    readonly options: IscsiadmOptions = {},
  ) {}

  private get iface(): string {
    return this.options.iface ?? 'default';
  }

  private async exec(argv: string[], okCodes: number[] = [], extra: RunOptions = {}): Promise<RunResult> {
    const full = ['iscsiadm', ...argv];
    const opts: RunOptions = { timeoutMs: this.options.timeoutMs ?? 120_000, ...extra };
    const r = await this.runner.run(full, opts);
    if (r.exitCode === 127) throw new PrerequisiteError(`iscsiadm is not installed on ${this.runner.host}: install open-iscsi`);
    if (r.exitCode !== 0 && !okCodes.includes(r.exitCode)) throw iscsiadmError(this.runner, full, r, opts);
    return r;
  }

  /** The portal with its host resolved to an IP where iscsiadm runs: by-path names carry the IP. */
  async resolvePortal(portal: Portal): Promise<Portal> {
    if (isIP(portal.host) !== 0) return portal;
    const r = await this.runner.run(['getent', 'ahosts', portal.host], { query: true });
    const address = r.exitCode === 0 ? parseGetentHosts(r.stdout) : undefined;
    if (!address) {
      throw new ValidationError(`portal host ${JSON.stringify(portal.host)} does not resolve to an IP address on ${this.runner.host}`, 'portal');
    }
    return { host: address, port: portal.port };
  }

  /** SendTargets discovery that writes no node records. */
  async discover(portal: Portal): Promise<NodeEntry[]> {
    const p = await this.resolvePortal(portal);
    const r = await this.exec(['--mode', 'discovery', '--type', 'sendtargets', '--portal', formatPortal(p), '--op', 'nonpersistent'], [ISCSI_ERR.NO_OBJS_FOUND], {
      query: true,
    });
    return r.exitCode === 0 ? parseNodeList(r.stdout) : [];
  }

  /** The node records iscsiadm has (`iscsiadm -m node`); none is an empty list. */
  async nodes(): Promise<NodeEntry[]> {
    const r = await this.exec(['--mode', 'node'], [ISCSI_ERR.NO_OBJS_FOUND], { query: true });
    return r.exitCode === 0 ? parseNodeList(r.stdout) : [];
  }

  /** The ifaces iscsiadm knows (`default` and `iser` are always there). */
  async ifaces(): Promise<IfaceEntry[]> {
    return parseIfaceList((await this.exec(['--mode', 'iface'], [], { query: true })).stdout);
  }

  /** Removes the iface when no node record uses it any more; true when it removed it. */
  async deleteIfaceIfUnused(name: string): Promise<boolean> {
    const used = await this.exec(['--mode', 'node', '--interface', name], [ISCSI_ERR.NO_OBJS_FOUND], { query: true });
    if (used.exitCode === 0) return false;
    await this.exec(['--mode', 'iface', '--interface', name, '--op', 'delete'], [ISCSI_ERR.NO_OBJS_FOUND]);
    return true;
  }

  /** Creates (or resets to iscsid.conf defaults) the node record for target + portal group. */
  async addNode(iqn: string, portal: Portal, tpgt: number): Promise<void> {
    const target = parseIscsiName(iqn, 'target');
    await this.exec(['--mode', 'node', '--targetname', target, '--portal', `${formatPortal(portal)},${tpgt}`, '--interface', this.iface, '--op', 'new']);
  }

  /** Removes the node record; a record already gone is success. */
  async deleteNode(iqn: string, portal: Portal): Promise<void> {
    await this.exec(this.nodeArgs(iqn, portal, ['--op', 'delete']), [ISCSI_ERR.NO_OBJS_FOUND]);
  }

  /** Removes the target's records at the portal on every iface (no --interface); none is success. */
  async deleteNodeEverywhere(iqn: string, portal: Portal): Promise<void> {
    const target = parseIscsiName(iqn, 'target');
    await this.exec(['--mode', 'node', '--targetname', target, '--portal', formatPortal(portal), '--op', 'delete'], [ISCSI_ERR.NO_OBJS_FOUND]);
  }

  async setStartup(iqn: string, portal: Portal, startup: NodeStartup): Promise<void> {
    await this.updateNode(iqn, portal, 'node.startup', startup);
  }

  /** Sets one node record value that is not a secret (secrets: setChap), e.g. node.session.timeo.replacement_timeout. */
  async updateNode(iqn: string, portal: Portal, name: string, value: string): Promise<void> {
    if (!/^node\.[a-z0-9_.\[\]]+$/.test(name)) throw new ValidationError(`node record setting ${JSON.stringify(name)} is not one iscsiadm takes`, 'setting');
    if (/password/.test(name)) throw new TypeError('secrets go through setChap, never argv');
    if (!/^[\x21-\x7e]{1,255}$/.test(value)) throw new ValidationError(`node record value ${JSON.stringify(value)} for ${name} is not allowed`, 'setting');
    await this.exec(this.nodeArgs(iqn, portal, ['--op', 'update', '--name', name, '--value', value]));
  }

  /** Logs in; an existing session (exit 15) is success. */
  async login(iqn: string, portal: Portal): Promise<void> {
    await this.exec(this.nodeArgs(iqn, portal, ['--login']), [ISCSI_ERR.SESS_EXISTS]);
  }

  /** Logs out; no session or no record (exit 21) is success. */
  async logout(iqn: string, portal: Portal): Promise<void> {
    await this.exec(this.nodeArgs(iqn, portal, ['--logout']), [ISCSI_ERR.NO_OBJS_FOUND]);
  }

  /** Asks the kernel to rescan the session's LUNs (new LUNs, changed sizes). */
  async rescan(iqn: string, portal: Portal): Promise<void> {
    await this.exec(this.nodeArgs(iqn, portal, ['--rescan']));
  }

  /**
   * The live session's replacement timeout, as the kernel holds it:
   * /sys/class/iscsi_session/sessionSID/recovery_tmo, e.g. "120\n" (Linux 6.1). What the
   * node record says applies only at login; this is what a running session uses.
   */
  async recoveryTimeout(sid: number): Promise<number | undefined> {
    const text = await this.runner.readFile(recoveryTmoPath(sid));
    return text === undefined || !/^\d+\s*$/.test(text) ? undefined : Number(text.trim());
  }

  /** Sets the live session's replacement timeout (the kernel takes it at once; root may write the file). */
  async setRecoveryTimeout(sid: number, seconds: number): Promise<void> {
    if (!Number.isInteger(seconds) || seconds < 1) throw new ValidationError(`replacement timeout ${seconds} is not a whole number of seconds, 1 or more`, 'replacement-timeout');
    // A sysfs attribute is written in place: no temporary file and rename (writeFile's way).
    const argv = ['sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', String(seconds), recoveryTmoPath(sid)];
    const r = await this.runner.run(argv);
    if (r.exitCode !== 0) throw commandError(this.runner, argv, r);
  }

  /** Every session with its LUNs and their disks; no session is an empty list. */
  async sessions(): Promise<IscsiSession[]> {
    const r = await this.exec(['--mode', 'session', '-P', '3'], [ISCSI_ERR.NO_OBJS_FOUND], { query: true });
    return r.exitCode === 0 ? parseSessionTree(r.stdout) : [];
  }

  /** The node record as iscsiadm reads it (secrets masked by iscsiadm). */
  async nodeRecord(iqn: string, portal: Portal): Promise<Map<string, string>> {
    const r = await this.exec(this.nodeArgs(iqn, portal, []), [], { query: true });
    return parseNodeRecord(r.stdout);
  }

  /** This host's initiator name, from /etc/iscsi/initiatorname.iscsi. */
  async initiatorName(): Promise<string> {
    const text = await this.runner.readFile(INITIATOR_NAME_FILE);
    const name = text === undefined ? undefined : parseInitiatorName(text);
    if (!name) {
      throw new PrerequisiteError(`${INITIATOR_NAME_FILE} on ${this.runner.host} is missing or has no InitiatorName= line: install open-iscsi`);
    }
    return parseIscsiName(name, 'initiator name');
  }

  /**
   * Sets CHAP on the node record without putting any secret on a command line (see the
   * file comment), then reads the record back through iscsiadm to check it took.
   */
  async setChap(iqn: string, portal: Portal, tpgt: number, chap: ChapCredentials): Promise<void> {
    checkAuthValue('user', chap.user, false);
    checkAuthValue('secret', chap.secret, true);
    if ((chap.mutualUser === undefined) !== (chap.mutualSecret === undefined)) {
      throw new ValidationError('mutual CHAP needs both a user and a secret', 'chap');
    }
    if (chap.mutualUser !== undefined) checkAuthValue('mutual user', chap.mutualUser, false);
    if (chap.mutualSecret !== undefined) checkAuthValue('mutual secret', chap.mutualSecret, true);
    const values: Array<[string, string]> = [
      ['node.session.auth.authmethod', 'CHAP'],
      ['node.session.auth.username', chap.user],
      ['node.session.auth.password', chap.secret],
      ['node.session.auth.username_in', chap.mutualUser ?? ''],
      ['node.session.auth.password_in', chap.mutualSecret ?? ''],
    ];
    const path = await this.recordPath(iqn, portal, tpgt);
    const before = await this.runner.readFile(path);
    if (before === undefined && !(this.runner.dryRun === true)) {
      throw new ValidationError(`no node record for ${iqn} at ${formatPortal(portal)},${tpgt} (${path}); create it first (addNode)`, 'target');
    }
    await this.runner.writeFile(path, setRecordValues(before ?? '', values), { mode: 0o600, secret: true });
    if (this.runner.dryRun === true) return; // nothing was written to read back
    const rec = await this.nodeRecord(iqn, portal);
    const wrong = values
      .filter(([k]) => !k.includes('password'))
      .filter(([k, v]) => (rec.get(k) ?? '') !== v)
      .map(([k]) => k);
    if (wrong.length > 0) {
      throw new ValidationError(`iscsiadm does not read back ${wrong.join(', ')} from ${path} on ${this.runner.host}; is the node record directory right?`, 'nodesDir');
    }
  }

  /**
   * Waits until udev has made /dev/disk/by-path/ip-ADDR:PORT-iscsi-IQN-lun-N, running
   * `udevadm settle` between looks, and returns that path. The portal must be an IP
   * (resolvePortal), since that is what udev puts in the name.
   */
  async waitForDevice(iqn: string, portal: Portal, lun: number, options: WaitOptions = {}): Promise<string> {
    const path = byPathFor(portal, iqn, lun);
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // udevadm settle exits 1 when its own timeout passes; we only use it to pace.
      await this.runner.run(['udevadm', 'settle', `--timeout=${Math.max(1, Math.min(10, Math.ceil(timeoutMs / 1000)))}`]);
      // Not a query: under --dry-run it is printed and taken as found.
      const t = await this.runner.run(['test', '-e', path]);
      if (t.exitCode === 0) return path;
      if (Date.now() >= deadline) {
        throw new TimeoutError(
          `waited ${Math.round(timeoutMs / 1000)}s on ${this.runner.host} for ${path} (LUN ${lun} of ${iqn} through ${formatPortal(portal)}) ` +
            'to appear; is the session logged in (iscsiadm -m session -P 3) and the LUN mapped to this initiator?',
        );
      }
      await sleep(options.intervalMs ?? 500, options.signal);
    }
  }

  private nodeArgs(iqn: string, portal: Portal, rest: string[]): string[] {
    const target = parseIscsiName(iqn, 'target');
    return ['--mode', 'node', '--targetname', target, '--portal', formatPortal(portal), '--interface', this.iface, ...rest];
  }

  /** NODES/IQN/ADDRESS,PORT,TPGT/IFACE: the address unbracketed, as idbm names it. */
  private async recordPath(iqn: string, portal: Portal, tpgt: number): Promise<string> {
    const dir = await this.nodesDir(iqn);
    return `${dir}/${parseIscsiName(iqn, 'target')}/${portal.host},${portal.port},${tpgt}/${this.iface}`;
  }

  private async nodesDir(iqn: string): Promise<string> {
    if (this.options.nodesDir) return this.options.nodesDir;
    if (this.nodesDirFound) return this.nodesDirFound;
    for (const dir of NODE_DIRS) {
      const r = await this.runner.run(['test', '-d', `${dir}/${iqn}`], { query: true });
      if (r.exitCode === 0) return (this.nodesDirFound = dir);
    }
    for (const dir of NODE_DIRS) {
      const r = await this.runner.run(['test', '-d', dir], { query: true });
      if (r.exitCode === 0) return (this.nodesDirFound = dir);
    }
    return NODE_DIRS[0];
  }
}

/**
 * Sets `name = value` lines in a record file: replaced in place, or added before
 * "# END RECORD". An empty value removes the line, as iscsiadm itself leaves empty
 * values out of the file (test/fixtures/iscsiadm/node-record-new.txt).
 */
export function setRecordValues(text: string, values: ReadonlyArray<[string, string]>): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  for (const [key, value] of values) {
    const i = lines.findIndex((l) => l.startsWith(`${key} = `) || l === `${key} =`);
    if (value === '') {
      if (i >= 0) lines.splice(i, 1);
      continue;
    }
    const line = `${key} = ${value}`;
    if (i >= 0) {
      lines[i] = line;
    } else {
      const end = lines.findIndex((l) => l.startsWith('# END RECORD'));
      if (end >= 0) lines.splice(end, 0, line);
      else lines.push(line);
    }
  }
  return `${lines.join('\n')}\n`;
}
