// `--dry-run --json`: the plan as one versioned JSON document. Each step of the plan, in
// the order it would run, with the host it changes, whether it is already done, and the
// exact commands and documents (XML, records, files) it would run and write there, secrets
// masked. Built from the plan's events and what the dry-run Runners recorded meanwhile.
// Fields may be added in later versions, never renamed.
import type { PlanEvent } from '../plan/plan.js';
import type { RecordedStep } from '../runner/recording.js';

export const PLAN_VERSION = 1;

export interface PlannedCommand {
  host: string;
  command: string;
}

export interface PlannedDocument {
  host: string;
  /** The file it is written to; absent: the command's standard input (an XML document for virsh). */
  path?: string;
  content: string;
}

export interface PlannedStep {
  /** The kind of step ("target", "pool-start", "attach"...). */
  id?: string;
  title: string;
  /** Where it changes something. */
  host?: string;
  /** already-done: its check found it in place, so a real run would skip it. */
  state: 'planned' | 'already-done';
  commands: PlannedCommand[];
  documents: PlannedDocument[];
}

export interface PlanDocument {
  planVersion: typeof PLAN_VERSION;
  dryRun: true;
  steps: PlannedStep[];
}

/** Collects the plan document of a dry run: `event` gets the plan's events, `recorded` is the session's list. */
export class PlanRecorder {
  readonly steps: PlannedStep[] = [];
  private current?: { step: PlannedStep; from: number };

  constructor(private readonly recorded: RecordedStep[]) {}

  readonly event = (e: PlanEvent): void => {
    if (e.type === 'start') {
      this.close();
      const step: PlannedStep = { title: e.step.title, state: 'planned', commands: [], documents: [] };
      if (e.step.id) step.id = e.step.id;
      if (e.step.host) step.host = e.step.host;
      this.steps.push(step);
      this.current = { step, from: this.recorded.length };
    } else if (e.type === 'skipped' && this.current) {
      this.current.step.state = 'already-done';
    } else if (e.type === 'done' || e.type === 'skipped' || e.type === 'failed') {
      this.close();
    }
  };

  /** What was recorded since the current step started belongs to it. */
  private close(): void {
    const c = this.current;
    if (!c) return;
    for (const r of this.recorded.slice(c.from)) {
      if (r.command === undefined) continue; // a comment of ours, not a command
      c.step.commands.push({ host: r.host, command: r.command });
      if (r.document) c.step.documents.push({ host: r.host, ...(r.document.path !== undefined ? { path: r.document.path } : {}), content: r.document.content });
    }
    this.current = undefined;
  }

  /** The document; commands recorded outside any step (a command's own reads and writes) come as a last step of their own. */
  document(): PlanDocument {
    this.close();
    const attributed = new Set(this.steps.flatMap((s) => s.commands));
    const inSteps = this.steps.reduce((n, s) => n + s.commands.length, 0);
    const all = this.recorded.filter((r) => r.command !== undefined);
    const steps = [...this.steps];
    if (all.length > inSteps && attributed.size === inSteps) {
      const seen = new Set(this.steps.flatMap((s) => s.commands.map((c) => `${c.host}\0${c.command}`)));
      const rest = all.filter((r) => !seen.has(`${r.host}\0${r.command}`));
      if (rest.length > 0) {
        steps.push({
          title: 'commands',
          state: 'planned',
          commands: rest.map((r) => ({ host: r.host, command: r.command! })),
          documents: rest.flatMap((r) => (r.document ? [{ host: r.host, ...(r.document.path !== undefined ? { path: r.document.path } : {}), content: r.document.content }] : [])),
        });
      }
    }
    return { planVersion: PLAN_VERSION, dryRun: true, steps };
  }
}

const recorders = new WeakMap<RecordedStep[], PlanRecorder>();

/** The recorder of a dry-run session (one per session's recorded list). */
export function planRecorder(recorded: RecordedStep[]): PlanRecorder {
  let r = recorders.get(recorded);
  if (!r) {
    r = new PlanRecorder(recorded);
    recorders.set(recorded, r);
  }
  return r;
}
