// A workflow is a plan: steps run in order, each able to say it is already done
// (check), to do its change (apply) and to take it back (undo). When a step fails, or
// the run is interrupted, the steps this run applied are undone in reverse order.
import { constants } from 'node:os';
import { VirtIscsiError } from '../errors.js';

export interface Step {
  /** What the step does, for people: "create target iqn... on ssh://stor1". */
  title: string;
  /** True when the change is already in place: apply is skipped, and so is undo. */
  check?(): Promise<boolean>;
  apply(): Promise<void>;
  /** Takes back exactly what apply did. Missing pieces are success (teardown is idempotent). */
  undo?(): Promise<void>;
}

export type PlanEvent =
  | { type: 'start'; step: Step; index: number }
  | { type: 'done'; step: Step; index: number }
  | { type: 'skipped'; step: Step; index: number }
  | { type: 'failed'; step: Step; index: number; error: unknown }
  | { type: 'undo'; step: Step; index: number }
  | { type: 'undone'; step: Step; index: number }
  | { type: 'undo-failed'; step: Step; index: number; error: unknown };

export interface RunPlanOptions {
  onEvent?: (e: PlanEvent) => void;
  /** Aborting stops before the next step and rolls back what was applied. */
  signal?: AbortSignal;
}

export interface PlanResult {
  /** Steps whose change this run made. */
  applied: number;
  /** Steps that were already in place. */
  skipped: number;
}

/** The run was interrupted (SIGINT/SIGTERM); what it had applied was undone. */
export class InterruptedError extends VirtIscsiError {
  readonly kind = 'interrupted';
}

/** A step failed and rolling back did not fully succeed: what is left is named. */
export class RollbackError extends VirtIscsiError {
  readonly kind = 'rollback';
  constructor(
    readonly original: unknown,
    readonly leftovers: ReadonlyArray<{ title: string; error: unknown }>,
  ) {
    const first = original instanceof Error ? original.message : String(original);
    const left = leftovers.map((l) => `${l.title} (${l.error instanceof Error ? l.error.message : String(l.error)})`).join('; ');
    super(`${first}; rollback could not undo: ${left}`, { cause: original });
  }
}

export async function runPlan(steps: readonly Step[], options: RunPlanOptions = {}): Promise<PlanResult> {
  const emit = options.onEvent ?? (() => {});
  const done: Array<{ step: Step; index: number }> = [];
  let skipped = 0;
  try {
    for (const [index, step] of steps.entries()) {
      if (options.signal?.aborted) throw new InterruptedError('interrupted; undid the steps already done');
      emit({ type: 'start', step, index });
      try {
        if (step.check && (await step.check())) {
          skipped++;
          emit({ type: 'skipped', step, index });
          continue;
        }
        await step.apply();
      } catch (error) {
        emit({ type: 'failed', step, index, error });
        throw error;
      }
      done.push({ step, index });
      emit({ type: 'done', step, index });
    }
    // Interrupted during the last step: the caller asked to stop, so take it all back.
    if (options.signal?.aborted) throw new InterruptedError('interrupted; undid the steps already done');
  } catch (error) {
    const leftovers = await undoAll(done, emit);
    if (leftovers.length > 0) throw new RollbackError(error, leftovers);
    throw error;
  }
  return { applied: done.length, skipped };
}

/** Undoes steps last first; keeps going past failures and returns them. */
export async function undoAll(
  done: ReadonlyArray<{ step: Step; index: number }>,
  emit: (e: PlanEvent) => void = () => {},
): Promise<Array<{ title: string; error: unknown }>> {
  const leftovers: Array<{ title: string; error: unknown }> = [];
  for (const { step, index } of [...done].reverse()) {
    if (!step.undo) continue;
    emit({ type: 'undo', step, index });
    try {
      await step.undo();
      emit({ type: 'undone', step, index });
    } catch (error) {
      emit({ type: 'undo-failed', step, index, error });
      leftovers.push({ title: step.title, error });
    }
  }
  return leftovers;
}

/**
 * An AbortSignal that fires on SIGINT or SIGTERM while `fn` runs, so a plan rolls back
 * instead of dying half-done. A second signal exits at once. The handler stays installed
 * until `fn` ends: execa's child-process cleanup (signal-exit) listens to the same signals
 * and re-raises one that no other listener is left to handle, killing the process
 * before the rollback could run.
 */
export async function withInterrupts<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const handler = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(128 + (constants.signals[sig] ?? 0));
    process.stderr.write(`virt-iscsi: ${sig} received, rolling back (send it again to exit at once)\n`);
    controller.abort(sig);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    return await fn(controller.signal);
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}
