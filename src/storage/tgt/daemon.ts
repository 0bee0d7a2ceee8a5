// Is tgt installed, is tgtd running, and starting it the way the host does: its service
// manager for the system instance, tgtd itself where there is none or for a private
// instance on its own control port. Never restarts a running tgtd (that drops every
// session).
import { PrerequisiteError, TimeoutError } from '../../errors.js';
import { displayCommand, runChecked } from '../../runner/check.js';
import { readsMayBeStale } from '../../runner/read-cache.js';
import type { Runner } from '../../runner/types.js';
import { notInstalledError, type Tgtadm } from './tgtadm.js';

export type TgtStatus = 'running' | 'stopped' | 'not-installed';

export interface TgtStartOptions {
  /** A private tgtd (tgtd -C N); unset: the system instance. */
  controlPort?: number;
  /** Where a tgtd we start listens: tgtd --iscsi portal=ADDR (default: tgtd's, all addresses port 3260). */
  portal?: string;
  /** Default /run/tgtd.pid for the system instance (as Debian's init script), /run/tgtd-N.pid for a private one. */
  pidFile?: string;
  /** Install the tgt package with apt-get or dnf when it is missing. */
  install?: boolean;
  startTimeoutMs?: number;
}

/** How tgtd was (or would be) started. `daemon`: tgtd itself, so nothing loaded any configuration. */
export type StartMethod = 'systemd' | 'service' | 'daemon';

/** `tgtadm --op show --mode sys`: exit 0 running, 107 nobody on the control port, 127 no tgtadm. */
export async function tgtStatus(tgtadm: Tgtadm): Promise<TgtStatus> {
  const r = await tgtadm.runner.run(tgtadm.argv('sys', 'show'), { query: true });
  if (r.exitCode === 0) return 'running';
  if (r.exitCode === 127) return 'not-installed';
  // 107 (TGTADM_NOT_CONNECTED), or a stale socket refusing us: no tgtd to talk to.
  return 'stopped';
}

async function exists(runner: Runner, test: '-d' | '-x', path: string): Promise<boolean> {
  return (await runner.run(['test', test, path], { query: true })).exitCode === 0;
}

/** The package manager command that installs tgt, or undefined when there is none we know. */
export async function installCommand(runner: Runner): Promise<{ argv: string[]; env?: Record<string, string> } | undefined> {
  if (await exists(runner, '-x', '/usr/bin/apt-get')) return { argv: ['apt-get', 'install', '-y', 'tgt'], env: { DEBIAN_FRONTEND: 'noninteractive' } };
  if (await exists(runner, '-x', '/usr/bin/dnf')) return { argv: ['dnf', 'install', '-y', 'scsi-target-utils'] };
  return undefined;
}

export async function installTgt(runner: Runner): Promise<void> {
  const cmd = await installCommand(runner);
  if (!cmd) throw new PrerequisiteError(`tgt is not installed on ${runner.host} and neither apt-get nor dnf is there to install it: install tgt (or scsi-target-utils) by hand`);
  await runChecked(runner, cmd.argv, { env: cmd.env, timeoutMs: 15 * 60_000 });
}

/** The argv that starts tgtd, by the host's rules. */
export async function startCommand(runner: Runner, o: TgtStartOptions): Promise<{ method: StartMethod; argv: string[] }> {
  const privateInstance = o.controlPort !== undefined || o.portal !== undefined;
  if (!privateInstance) {
    // systemd: Debian names the unit tgt, RHEL-likes tgtd.
    if (await exists(runner, '-d', '/run/systemd/system')) {
      const unit = (await runner.run(['systemctl', 'cat', 'tgt.service'], { query: true })).exitCode === 0 ? 'tgt' : 'tgtd';
      return { method: 'systemd', argv: ['systemctl', 'start', unit] };
    }
    for (const name of ['tgt', 'tgtd']) {
      if (await exists(runner, '-x', `/etc/init.d/${name}`)) return { method: 'service', argv: ['service', name, 'start'] };
    }
  }
  const pidFile = o.pidFile ?? (o.controlPort === undefined ? '/run/tgtd.pid' : `/run/tgtd-${o.controlPort}.pid`);
  return {
    method: 'daemon',
    argv: [
      'tgtd',
      ...(o.controlPort === undefined ? [] : ['--control-port', String(o.controlPort)]),
      ...(o.portal === undefined ? [] : ['--iscsi', `portal=${o.portal}`]),
      '--pid-file',
      pidFile,
    ],
  };
}

/**
 * Starts tgtd when it is installed and stopped (installing it first when asked), then
 * waits until it answers. Returns how it started it, or undefined when it was running.
 * `wait: false` (dry runs) returns right after the start command.
 */
export async function startTgt(tgtadm: Tgtadm, o: TgtStartOptions, wait = true): Promise<StartMethod | undefined> {
  const runner = tgtadm.runner;
  let status = await tgtStatus(tgtadm);
  if (status === 'running') return undefined;
  if (status === 'not-installed') {
    if (!o.install) throw notInstalledError(runner.host);
    await installTgt(runner);
    status = wait ? await tgtStatus(tgtadm) : 'stopped';
    if (status === 'running') return undefined; // the package's scripts started it
    if (status === 'not-installed') throw new PrerequisiteError(`installing tgt on ${runner.host} did not provide tgtadm`);
  }
  const { method, argv } = await startCommand(runner, o);
  await runChecked(runner, argv, { timeoutMs: 60_000 });
  if (!wait) return method;
  const timeout = o.startTimeoutMs ?? 15_000;
  const deadline = Date.now() + timeout;
  while ((await tgtStatus(tgtadm)) !== 'running') {
    if (Date.now() > deadline) {
      throw new TimeoutError(`tgtd did not answer on ${runner.host}${o.controlPort === undefined ? '' : ` control port ${o.controlPort}`} within ${timeout} ms after "${displayCommand(argv)}"`);
    }
    await new Promise((r) => setTimeout(r, 100));
    readsMayBeStale();
  }
  return method;
}
