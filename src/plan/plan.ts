// A workflow is a plan: steps run in order, each able to say it is already done
// (check), to do its change (apply) and to take it back (undo). When a step fails, or
// the run is interrupted, the steps this run applied are undone in reverse order.
// A journal, when given, hears of each change before it is made and after, so a run
// killed between two steps (kill -9, a power cut) can be undone from what it wrote.
import { constants } from 'node:os';
import { VirtIscsiError } from '../errors.js';
import { readsMayBeStale } from '../runner/read-cache.js';

export interface Step {
  /** A stable name for the kind of step ("target", "pool-start"): journals, tests, plan documents. */
  id?: string;
  /** Where the step changes something (a host URI), for plan documents and journals. */
  host?: string;
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

/** Hears of every change around the moment it is made; each call is awaited (it writes to disk). */
export interface PlanJournal {
  /** Before apply: the step's change may be made from now on. */
  intent(step: Step, index: number): Promise<void>;
  /** After apply. */
  done(step: Step, index: number): Promise<void>;
  /** Before an undo. */
  undoing?(step: Step, index: number): Promise<void>;
  /** After a successful undo. */
  undone(step: Step, index: number): Promise<void>;
}

export interface RunPlanOptions {
  onEvent?: (e: PlanEvent) => void;
  /** Aborting stops before the next step and rolls back what was applied. */
  signal?: AbortSignal;
  journal?: PlanJournal;
}

export interface PlanResult {
  /** Steps whose change this run made. */
  applied: number;
  /** Steps that were already in place. */
  skipped: number;
}

/** The run was interrupted (SIGINT/SIGTERM/SIGHUP); what it had applied was undone. */
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

const interrupted = (signal: AbortSignal): InterruptedError =>
  new InterruptedError(`interrupted (${typeof signal.reason === 'string' ? signal.reason : 'aborted'}); undid the steps already done`);

export async function runPlan(steps: readonly Step[], options: RunPlanOptions = {}): Promise<PlanResult> {
  const emit = options.onEvent ?? (() => {});
  const journal = options.journal;
  const done: Array<{ step: Step; index: number }> = [];
  let skipped = 0;
  try {
    for (const [index, step] of steps.entries()) {
      if (options.signal?.aborted) throw interrupted(options.signal);
      emit({ type: 'start', step, index });
      let started = false;
      try {
        if (step.check && (await step.check())) {
          skipped++;
          emit({ type: 'skipped', step, index });
          continue;
        }
        await journal?.intent(step, index);
        started = true;
        await step.apply();
        await journal?.done(step, index);
      } catch (error) {
        emit({ type: 'failed', step, index, error });
        // Interrupted while the step ran (a child process got the terminal's Ctrl-C too):
        // not a failure of its own, and what it may have done is taken back with the rest.
        if (options.signal?.aborted) {
          if (started) done.push({ step, index });
          throw interrupted(options.signal);
        }
        throw error;
      }
      done.push({ step, index });
      emit({ type: 'done', step, index });
    }
    // Interrupted during the last step: the caller asked to stop, so take it all back.
    if (options.signal?.aborted) throw interrupted(options.signal);
  } catch (error) {
    const leftovers = await undoAll(done, emit, journal);
    if (leftovers.length > 0) throw new RollbackError(error, leftovers);
    throw error;
  }
  return { applied: done.length, skipped };
}

/** Undoes steps last first; keeps going past failures and returns them. */
export async function undoAll(
  done: ReadonlyArray<{ step: Step; index: number }>,
  emit: (e: PlanEvent) => void = () => {},
  journal?: PlanJournal,
): Promise<Array<{ title: string; error: unknown }>> {
  const leftovers: Array<{ title: string; error: unknown }> = [];
  for (const { step, index } of [...done].reverse()) {
    if (!step.undo) continue;
    emit({ type: 'undo', step, index });
    try {
      await journal?.undoing?.(step, index);
      await step.undo();
      await journal?.undone(step, index);
      emit({ type: 'undone', step, index });
    } catch (error) {
      emit({ type: 'undo-failed', step, index, error });
      leftovers.push({ title: step.title, error });
    }
  }
  return leftovers;
}

/** Resolves after `ms`, or rejects at once with an InterruptedError when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(interrupted(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(interrupted(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      // Whoever waits expects something to change meanwhile: what was read before is read again.
      readsMayBeStale();
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The signals that roll a change back: Ctrl-C, kill, and a closed terminal or SSH session. */
export const INTERRUPT_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface Interrupts {
  signal: AbortSignal;
  /** What a second signal prints before exiting: what is left and how to finish it. */
  setLeftHint(hint: () => string | undefined): void;
}

/**
 * An AbortSignal that fires on SIGINT, SIGTERM or SIGHUP while `fn` runs, so a plan rolls
 * back instead of dying half-done. A second signal says what is left (the hint) and
 * exits with 130 at once. The handler stays installed until `fn` ends: execa's
 * child-process cleanup (signal-exit) listens to the same signals and re-raises one that
 * no other listener is left to handle, killing the process before the rollback could run.
 */
export async function withInterrupts<T>(fn: (signal: AbortSignal, interrupts: Interrupts) => Promise<T>, write: (text: string) => void = (t) => void safeStderr(t)): Promise<T> {
  const controller = new AbortController();
  let hint: () => string | undefined = () => undefined;
  const handler = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      const left = hint();
      write(`virt-iscsi: ${sig} again: stopping now${left ? `; ${left}` : ''}\n`);
      process.exit(128 + (constants.signals.SIGINT ?? 2));
    }
    write(`virt-iscsi: ${sig} received, rolling back (send it again to stop at once)\n`);
    controller.abort(sig);
  };
  for (const s of INTERRUPT_SIGNALS) process.on(s, handler);
  try {
    return await fn(controller.signal, { signal: controller.signal, setLeftHint: (h) => void (hint = h) });
  } finally {
    for (const s of INTERRUPT_SIGNALS) process.off(s, handler);
  }
}

/** stderr may be gone (a closed terminal): writing to it must not throw. */
function safeStderr(text: string): void {
  try {
    process.stderr.write(text);
  } catch {
    /* nowhere to say it */
  }
}
