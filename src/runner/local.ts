import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { dirname, basename, join } from 'node:path';
import { checkArgv } from './quote.js';
import type { RunOptions, RunResult, Runner, WriteFileOptions } from './types.js';

/** Exit codes we give when the program never ran, as a shell would. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_TIMEOUT = 124;

// execa is loaded with the first local command: a command that only reaches SSH hosts
// (records here are plain file operations) saves its load time, about 130 ms.
let execaModule: Promise<typeof import('execa')> | undefined;

/** Runs argv directly (no shell) on this machine. */
export class LocalRunner implements Runner {
  readonly host = 'local';

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = argv;
    if (!file) throw new TypeError('empty argv');
    checkArgv(argv, options.env);
    const { execa } = await (execaModule ??= import('execa'));
    const sub = execa(file, args, {
      input: options.stdin ?? '',
      // The C locale: our parsers read the tools' untranslated output (stat's "regular file").
      env: { LC_ALL: 'C', ...options.env },
      timeout: options.timeoutMs,
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
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
      return { stdout: r.stdout ?? '', stderr: `${file}: timed out after ${options.timeoutMs} ms`, exitCode: EXIT_TIMEOUT };
    }
    const code = (r.cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') return { stdout: '', stderr: `${file}: command not found`, exitCode: EXIT_NOT_FOUND };
    return { stdout: r.stdout ?? '', stderr: r.stderr || (r.shortMessage ?? ''), exitCode: r.signal ? 128 + (constants.signals[r.signal] ?? 0) : 1 };
  }

  async writeFile(path: string, data: string, options: WriteFileOptions = {}): Promise<void> {
    const mode = options.mode ?? 0o644;
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, data, { mode, flag: 'wx' });
      await chmod(tmp, mode); // umask may have narrowed it
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
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

  async close(): Promise<void> {}
}
