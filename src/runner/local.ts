import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname, basename, join } from 'node:path';
import { checkArgv } from './quote.js';
import type { Held, HoldOptions, HoldResult, RunOptions, RunResult, Runner, WriteFileOptions } from './types.js';

/** Exit codes we give when the program never ran, as a shell would. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_TIMEOUT = 124;

// execa is loaded with the first local command: a command that only reaches SSH hosts
// (records here are plain file operations) saves its load time, about 130 ms.
let execaModule: Promise<typeof import('execa')> | undefined;

/**
 * Runs argv directly (no shell) on this machine. Children run in a process group of their
 * own: a Ctrl-C at the terminal reaches virt-iscsi only, which lets the running command
 * finish and then rolls back, instead of the command dying half-done under it.
 */
export class LocalRunner implements Runner {
  readonly host = 'local';

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (!argv[0]) throw new TypeError('empty argv');
    checkArgv(argv, options.env);
    // Node hands a child's stdin over as a socket, which a program that opens /dev/stdin
    // (virsh reading an XML document or a secret from it) cannot open ("No such device or
    // address"): cat turns it into a pipe. The secret thus never touches a file.
    const [file, ...args] = options.stdin === undefined ? argv : ['sh', '-c', 'cat | "$@"', 'sh', ...argv];
    const { execa } = await (execaModule ??= import('execa'));
    const sub = execa(file!, args, {
      input: options.stdin ?? '',
      // The C locale: our parsers read the tools' untranslated output (stat's "regular file").
      env: { LC_ALL: 'C', ...options.env },
      timeout: options.timeoutMs,
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
      detached: true,
    });
    const onOutput = options.onOutput;
    if (onOutput) {
      sub.stdout?.on('data', (d: Buffer) => onOutput(d.toString('utf8'), 'stdout'));
      sub.stderr?.on('data', (d: Buffer) => onOutput(d.toString('utf8'), 'stderr'));
    }
    const r = await sub;
    if (r.exitCode !== undefined && !r.timedOut) {
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode };
    }
    if (r.timedOut) {
      return { stdout: r.stdout ?? '', stderr: `${argv[0]}: timed out after ${options.timeoutMs} ms`, exitCode: EXIT_TIMEOUT };
    }
    const code = (r.cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') return { stdout: '', stderr: `${argv[0]}: command not found`, exitCode: EXIT_NOT_FOUND };
    return { stdout: r.stdout ?? '', stderr: r.stderr || (r.shortMessage ?? ''), exitCode: r.signal ? 128 + (constants.signals[r.signal] ?? 0) : 1 };
  }

  /** Temp file, fsync, rename, fsync of the directory: after a crash the file is the old one or the new one, whole. */
  async writeFile(path: string, data: string, options: WriteFileOptions = {}): Promise<void> {
    const mode = options.mode ?? 0o644;
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, 'wx', mode);
      try {
        await fh.chmod(mode); // umask may have narrowed it
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    await syncDir(dirname(path));
  }

  async readFile(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async removeFile(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  async hold(argv: readonly string[], options: HoldOptions): Promise<HoldResult> {
    const [file, ...args] = argv;
    if (!file) throw new TypeError('empty argv');
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    return awaitReady(
      {
        onStdout: (f) => child.stdout.on('data', (d: Buffer) => f(d.toString('utf8'))),
        onStderr: (f) => child.stderr.on('data', (d: Buffer) => f(d.toString('utf8'))),
        onExit: (f) => {
          child.on('error', (e: NodeJS.ErrnoException) => f(e.code === 'ENOENT' ? EXIT_NOT_FOUND : 1, e.message));
          child.on('close', (code, signal) => f(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
        },
        end: () => child.stdin.end(),
        kill: () => void child.kill('SIGKILL'),
      },
      options,
    );
  }

  async close(): Promise<void> {}
}

/** fsync of a directory makes a rename in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A started process as `awaitReady` needs it, local or remote. */
export interface HeldProcess {
  onStdout(f: (text: string) => void): void;
  onStderr(f: (text: string) => void): void;
  onExit(f: (code: number, message?: string) => void): void;
  /** Closes its stdin: the holder's cue to let go and exit. */
  end(): void;
  kill(): void;
}

/**
 * Resolves once the process prints `ready` on stdout (held), or with its result when it
 * ends first. A process that neither prints nor ends in time is killed and reported as
 * timed out.
 */
export function awaitReady(p: HeldProcess, o: HoldOptions): Promise<HoldResult> {
  return new Promise<HoldResult>((resolve) => {
    let stdout = '';
    let stderr = '';
    let state: 'waiting' | 'held' | 'ended' = 'waiting';
    let exited: ((v: void) => void) | undefined;
    const exit = new Promise<void>((r) => (exited = r));
    const timer = setTimeout(() => {
      if (state !== 'waiting') return;
      state = 'ended';
      p.kill();
      resolve({ ended: { stdout, stderr: stderr || `timed out after ${o.timeoutMs} ms`, exitCode: EXIT_TIMEOUT } });
    }, o.timeoutMs);
    p.onStdout((t) => {
      stdout += t;
      if (state === 'waiting' && stdout.split('\n').includes(o.ready)) {
        state = 'held';
        clearTimeout(timer);
        const held: Held = {
          release: async () => {
            p.end();
            await exit;
          },
        };
        resolve({ held });
      }
    });
    p.onStderr((t) => void (stderr += t));
    p.onExit((code, message) => {
      exited?.();
      if (state !== 'waiting') return;
      state = 'ended';
      clearTimeout(timer);
      resolve({ ended: { stdout, stderr: stderr || message || '', exitCode: code } });
    });
  });
}
