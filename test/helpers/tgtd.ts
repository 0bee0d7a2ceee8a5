import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from './ports.js';
import { startDaemon, waitFor, portOpen, type Daemon } from './daemon.js';

/** A private tgtd beside any system one: its own control port (socket) and portal. */
export interface Tgtd {
  readonly pid: number;
  /** tgtadm -C value. */
  readonly controlPort: number;
  /** iSCSI portal port on 127.0.0.1. */
  readonly port: number;
  /** '127.0.0.1:PORT' */
  readonly portal: string;
  /** Runs `tgtadm -C N ARGS...` and returns stdout; throws on failure. */
  tgtadm(args: readonly string[]): string;
  /** Stops tgtd by PID (every session drops with it). */
  stop(): Promise<void>;
  /** Stops and starts it again on the same control port and portal. */
  restart(): Promise<void>;
}

function unusedControlPort(): number {
  for (;;) {
    const n = 20000 + Math.floor(Math.random() * 10000);
    if (!existsSync(`/run/tgtd/socket.${n}`) && !existsSync(`/var/run/tgtd/socket.${n}`)) return n;
  }
}

/** `args`: more tgtd options, e.g. ['--nr_iothreads', '4']. */
export async function startTgtd(opts: { args?: readonly string[] } = {}): Promise<Tgtd> {
  const controlPort = unusedControlPort();
  const port = await freePort();
  const argv = ['tgtd', '-f', '--control-port', String(controlPort), '--iscsi', `portal=127.0.0.1:${port}`, ...(opts.args ?? [])];
  const ready = (): boolean =>
    spawnSync('tgtadm', ['-C', String(controlPort), '--lld', 'iscsi', '--op', 'show', '--mode', 'sys'], { stdio: 'ignore' }).status === 0;
  let daemon: Daemon;
  const launch = async (): Promise<void> => {
    // tgtd ignores SIGTERM while it has targets; it keeps no state worth a clean exit.
    daemon = startDaemon(argv, undefined, 'SIGKILL');
    await waitFor(`tgtd on control port ${controlPort} and portal 127.0.0.1:${port}`, async () => ready() && (await portOpen(port)), 15000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${daemon.output()}`);
    });
  };
  await launch();
  return {
    get pid() {
      return daemon.pid;
    },
    controlPort,
    port,
    portal: `127.0.0.1:${port}`,
    tgtadm: (args) => execFileSync('tgtadm', ['-C', String(controlPort), ...args], { encoding: 'utf8' }),
    stop: () => daemon.stop(),
    async restart() {
      await daemon.stop();
      await launch();
    },
  };
}
