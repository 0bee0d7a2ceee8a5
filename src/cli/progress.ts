// A plan's steps as they run. On a terminal: one line per step with a spinner while it
// runs, then a mark and its time. Otherwise (pipes, logs, CI) plain lines, one per step
// when it ends: "[3/8] attach ... done (0.4s)". Rollback steps are shown the same way.
import { printable } from '../names/values.js';
import type { PlanEvent } from '../plan/plan.js';
import type { RecordedStep } from '../runner/recording.js';
import { planRecorder } from './plan-document.js';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR = '\r\x1b[2K';

export class Progress {
  private total = 0;
  private started = 0;
  private spinner?: { timer: NodeJS.Timeout; text: string; frame: number };

  constructor(
    private readonly out: ProgressStream,
    private readonly tty = out.isTTY === true,
  ) {}

  /** The plan is known: how many steps it has. */
  plan(steps: readonly unknown[]): void {
    this.total = steps.length;
  }

  private label(index: number, title: string): string {
    return `[${index + 1}/${this.total}] ${printable(title)}`;
  }

  private since(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(1)}s`;
  }

  private spin(text: string): void {
    this.stopSpinner();
    this.started = Date.now();
    if (!this.tty) return;
    const s = { text, frame: 0, timer: setInterval(() => this.draw(), 80) };
    s.timer.unref();
    this.spinner = s;
    this.draw();
  }

  private draw(): void {
    const s = this.spinner;
    if (!s) return;
    this.out.write(`${CLEAR}${FRAMES[s.frame++ % FRAMES.length]} ${s.text}`);
  }

  private stopSpinner(): void {
    if (!this.spinner) return;
    clearInterval(this.spinner.timer);
    this.spinner = undefined;
    this.out.write(CLEAR);
  }

  /** "[3/8] attach ... done (0.4s)", after a mark on a terminal. */
  private end(mark: string, text: string, outcome: string, timed = true): void {
    this.stopSpinner();
    const line = `${text} ... ${outcome}${timed ? ` (${this.since()})` : ''}`;
    this.out.write(this.tty ? `${mark} ${line}\n` : `${line}\n`);
  }

  readonly event = (e: PlanEvent): void => {
    const text = this.label(e.index, e.step.title);
    const undo = this.label(e.index, `undo: ${e.step.title}`);
    switch (e.type) {
      case 'start':
        return this.spin(text);
      case 'done':
        return this.end('✔', text, 'done');
      case 'skipped':
        return this.end('•', text, 'already done', false);
      case 'failed':
        return this.end('✘', text, 'failed');
      case 'undo':
        return this.spin(undo);
      case 'undone':
        return this.end('↶', undo, 'undone');
      case 'undo-failed':
        return this.end('✘', undo, 'could not undo');
    }
  };

  /** Stops a spinner left running (the plan threw between events). */
  close(): void {
    this.stopSpinner();
  }
}

/** Where a command shows its plan's steps. */
export interface StepDisplay {
  plan(steps: readonly unknown[]): void;
  event(e: PlanEvent): void;
}

/** Under --dry-run: each step's title as a comment in the printed plan, before its commands. */
export function planComments(recorded: RecordedStep[]): StepDisplay {
  let total = 0;
  return {
    plan: (steps) => void (total = steps.length),
    event: (e) => {
      if (e.type === 'start') recorded.push({ host: 'local', shell: `# [${e.index + 1}/${total}] ${printable(e.step.title)}` });
      if (e.type === 'skipped') recorded.push({ host: 'local', shell: '#   already done' });
    },
  };
}

/** What a workflow reports its plan's steps to (its onPlan and onEvent options). */
export interface StepHooks {
  onPlan?: (steps: readonly unknown[]) => void;
  onEvent?: (e: PlanEvent) => void;
}

/**
 * Runs `fn` with the hooks a command's steps go to: the plan's comments under --dry-run,
 * live progress on stdout otherwise; none under --json, whose stdout is one document.
 */
export async function withStepDisplay<T>(o: { json?: boolean; dryRun?: boolean }, recorded: RecordedStep[], fn: (hooks: StepHooks) => Promise<T>): Promise<T> {
  const hooks = (d: StepDisplay): StepHooks => ({ onPlan: d.plan.bind(d), onEvent: d.event.bind(d) });
  if (o.json && o.dryRun) return fn({ onEvent: planRecorder(recorded).event });
  if (o.json) return fn({});
  if (o.dryRun) return fn(hooks(planComments(recorded)));
  // stdout may be a pipe that closes (`| head -1`): progress is not worth dying over.
  const progress = new Progress(guarded(process.stdout));
  try {
    return await fn(hooks(progress));
  } finally {
    progress.close();
  }
}

/** A stream whose writes never throw (EPIPE on a closed pipe): the run goes on, unseen. */
function guarded(out: NodeJS.WriteStream): ProgressStream {
  return {
    isTTY: out.isTTY,
    write: (text: string) => {
      try {
        return out.write(text);
      } catch {
        return false;
      }
    },
  };
}
