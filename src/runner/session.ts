// One command's connections: a Runner per host URI, opened once and reused by every
// step (one SSH connection per host), its reads asked once until a change (read-cache.ts),
// recording instead of changing under --dry-run.
// Workflows take a Session; the CLI makes one per invocation.
import { openRunner, type SshOptions } from './open.js';
import { CachingRunner, ReadCache } from './read-cache.js';
import { RecordingRunner, renderSteps, type RecordedStep } from './recording.js';
import { TracingRunner } from './tracing.js';
import type { Runner } from './types.js';

export interface SessionOptions extends SshOptions {
  dryRun?: boolean;
}

export class Session {
  /** Under --dry-run: what would have run, on every host, in order. */
  readonly recorded: RecordedStep[] = [];
  private readonly runners = new Map<string, Promise<Runner>>();
  /** Every host's reads, asked once until a change that may affect them (read-cache.ts). */
  readonly reads = new ReadCache();

  constructor(readonly options: SessionOptions = {}) {}

  get dryRun(): boolean {
    return this.options.dryRun === true;
  }

  runner(uri = 'local'): Promise<Runner> {
    let r = this.runners.get(uri);
    if (!r) {
      r = openRunner(uri, this.options).then((opened) => {
        const traced = process.env.VIRT_ISCSI_TRACE === '1' ? new TracingRunner(opened) : opened;
        // Inside the trace's view, so a trace shows what reached the host; a dry run's
        // recorded changes never reach the host, so they drop nothing.
        const inner = new CachingRunner(traced, this.reads);
        return this.dryRun ? new RecordingRunner(inner, this.recorded) : inner;
      });
      // A host that cannot be reached is asked again by the next caller, not cached as failed.
      r.catch(() => this.runners.delete(uri));
      this.runners.set(uri, r);
    }
    return r;
  }

  /**
   * Forgets every read: what other programs changed since is read again. The reads of one
   * command are kept until a change of its own may affect them; a Session kept for several
   * commands calls this between them.
   */
  forget(): void {
    this.reads.clear();
  }

  async close(): Promise<void> {
    const all = [...this.runners.values()];
    this.runners.clear();
    await Promise.all(all.map(async (p) => (await p.catch(() => undefined))?.close()));
  }

  /** The dry-run plan as copy-pastable shell, secrets masked. */
  renderPlan(): string {
    return renderSteps(this.recorded);
  }
}
