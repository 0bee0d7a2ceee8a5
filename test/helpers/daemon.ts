import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';

/** A process a test started; stopped by PID, never by name. */
export interface Daemon {
  readonly pid: number;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** Starts a program in the foreground (it must not daemonise) and keeps its output. */
/** `stopSignal`: what stop() sends first (tgtd ignores SIGTERM while it has targets). */
export function startDaemon(argv: readonly string[], env?: NodeJS.ProcessEnv, stopSignal: NodeJS.Signals = 'SIGTERM'): Daemon {
  const [file, ...args] = argv;
  const child: ChildProcess = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  const pid = child.pid;
  return {
    pid,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(pid, stopSignal);
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes; the error says what was awaited. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
