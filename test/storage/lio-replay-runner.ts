// A Runner that answers with output captured from the real tools (test/fixtures/lio,
// iet, iscsiadm) where the real thing cannot run on this machine (no LIO modules, no
// iscsi_tcp, no IET). It records every call, so tests check both the command plan and
// how the drivers read back what the tools printed. Used by the lio, iet and iscsiadm
// tests; any command without an answer succeeds with no output, as under --dry-run.
import { readFileSync } from 'node:fs';
import type { RunOptions, RunResult, Runner, WriteFileOptions } from '../../src/runner/types.js';

export function fixture(path: string): string {
  return readFileSync(new URL(`../fixtures/${path}`, import.meta.url), 'utf8');
}

export interface Answer {
  /** The command line joined with spaces starts with this (or the predicate says yes). */
  match: string | ((argv: readonly string[], options: RunOptions) => boolean);
  /** Replies in turn; the last one repeats. */
  replies: Array<Partial<RunResult>>;
  /** What the command changes on the host (a file it writes), applied when it runs. */
  effect?: (runner: ReplayRunner) => void;
}

export interface Call {
  argv: string[];
  options: RunOptions;
}

export class ReplayRunner implements Runner {
  readonly calls: Call[] = [];
  readonly writes: Array<{ path: string; data: string; options: WriteFileOptions }> = [];
  private readonly used = new Map<Answer, number>();

  constructor(
    readonly answers: Answer[] = [],
    readonly files: Map<string, string> = new Map(),
    readonly host = 'ssh://root@storage.test',
  ) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv: [...argv], options });
    const line = argv.join(' ');
    const a = this.answers.find((x) => (typeof x.match === 'string' ? line.startsWith(x.match) : x.match(argv, options)));
    if (!a) return { stdout: '', stderr: '', exitCode: 0 };
    const n = this.used.get(a) ?? 0;
    this.used.set(a, n + 1);
    a.effect?.(this);
    const r = a.replies[Math.min(n, a.replies.length - 1)] ?? {};
    return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode: r.exitCode ?? 0 };
  }

  async writeFile(path: string, data: string, options: WriteFileOptions = {}): Promise<void> {
    this.writes.push({ path, data, options });
    this.files.set(path, data);
  }

  async readFile(path: string): Promise<string | undefined> {
    return this.files.get(path);
  }

  async removeFile(path: string): Promise<void> {
    this.files.delete(path);
  }

  async close(): Promise<void> {}

  /** The command lines run, joined with spaces, in order. */
  lines(prefix = ''): string[] {
    return this.calls.map((c) => c.argv.join(' ')).filter((l) => l.startsWith(prefix));
  }
}
