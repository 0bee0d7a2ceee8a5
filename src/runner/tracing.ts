// VIRT_ISCSI_TRACE=1: every command, file write and read on stderr as it ends, with the
// host, its time and exit code, secrets masked. For finding which command hangs or fails
// at 2 a.m. (and where the time goes) without changing what runs.
import { maskSecrets } from '../errors.js';
import { quoteArgv } from './quote.js';
import type { HoldOptions, HoldResult, RunOptions, RunResult, Runner, WriteFileOptions } from './types.js';

export class TracingRunner implements Runner {
  private readonly start = performance.now();

  constructor(
    private readonly inner: Runner,
    private readonly write: (line: string) => void = (line) => void process.stderr.write(line),
  ) {}

  get host(): string {
    return this.inner.host;
  }

  get dryRun(): boolean | undefined {
    return this.inner.dryRun;
  }

  private async traced<T>(what: string, fn: () => Promise<T>, outcome: (t: T) => string): Promise<T> {
    const began = performance.now();
    const line = (end: string): void => this.write(`trace +${Math.round(began - this.start)}ms ${Math.round(performance.now() - began)}ms ${this.host} ${end}: ${what}\n`);
    try {
      const t = await fn();
      line(outcome(t));
      return t;
    } catch (e) {
      line('error');
      throw e;
    }
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.traced(maskSecrets(quoteArgv(argv), options.secrets), () => this.inner.run(argv, options), (r) => `exit ${r.exitCode}`);
  }

  writeFile(path: string, data: string, options?: WriteFileOptions): Promise<void> {
    return this.traced(`write ${path}`, () => this.inner.writeFile(path, data, options), () => 'ok');
  }

  readFile(path: string): Promise<string | undefined> {
    return this.traced(`read ${path}`, () => this.inner.readFile(path), (t) => (t === undefined ? 'missing' : 'ok'));
  }

  removeFile(path: string): Promise<void> {
    return this.traced(`remove ${path}`, () => this.inner.removeFile(path), () => 'ok');
  }

  get hold(): ((argv: readonly string[], options: HoldOptions) => Promise<HoldResult>) | undefined {
    const inner = this.inner;
    if (!inner.hold) return undefined;
    return (argv, options) => this.traced(`hold ${quoteArgv(argv)}`, () => inner.hold!(argv, options), (r) => ('held' in r ? 'held' : `exit ${r.ended.exitCode}`));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
