// `virt-iscsi apply -f STACK` and `destroy -f STACK` (src/workflows/stack.ts): the plan
// first (+ create, ~ change, - remove, = unchanged), then each change with its steps.
import type { Command } from 'commander';
import { withInterrupts, type PlanEvent } from '../../plan/plan.js';
import { applyStack, destroyStack, type StackChange, type StackResult } from '../../workflows/stack.js';
import { readStackFile, type StackSpec } from '../../workflows/stack-file.js';
import { addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { printText } from '../output.js';
import { withStepDisplay } from '../progress.js';
import { runCommand } from './hypervisor-common.js';

interface StackFlags extends HostCommandOptions {
  file: string;
}

const MARK = { create: '+', change: '~', remove: '-', unchanged: '=' } as const;

export function renderChange(c: StackChange): string {
  return `${MARK[c.action]} ${c.kind} ${c.name}: ${c.details.join('; ')}`;
}

/** "stack lab (lab.yaml): 1 to create, 0 to change, 2 to remove, 3 unchanged" and a line per change. */
export function renderPlan(spec: StackSpec, changes: readonly StackChange[]): string {
  const n = (a: StackChange['action']): number => changes.filter((c) => c.action === a).length;
  const head = `stack ${spec.name} (${spec.file}): ${n('create')} to create, ${n('change')} to change, ${n('remove')} to remove, ${n('unchanged')} unchanged`;
  return [head, ...changes.map((c) => `  ${renderChange(c)}`)].join('\n');
}

export function renderResult(r: StackResult): string {
  if (r.dryRun) return '';
  const n = (a: StackChange['action']): number => r.changes.filter((c) => c.action === a).length;
  const repaired = r.changes.filter((c) => c.action === 'unchanged' && c.applied > 0).map((c) => c.name);
  const fixed = repaired.length ? ` (repaired: ${repaired.join(', ')})` : '';
  return `stack ${r.stack}: ${n('create')} created, ${n('change')} re-done, ${n('remove')} removed, ${n('unchanged')} unchanged${fixed}`;
}

function register(program: Command, verb: 'apply' | 'destroy'): void {
  const what =
    verb === 'apply'
      ? 'converge to a stack file: create the exports and pools it declares, re-do changed ones, remove the ones it made that are gone from it'
      : 'remove every export and pool a stack file declares, and whatever else that stack made';
  addJson(
    addDryRun(
      addSshOptions(
        program
          .command(verb)
          .description(what)
          .requiredOption('-f, --file <stack.yaml>', 'the stack file (YAML or JSON; schema/stack.schema.json); examples/ has commented ones'),
      ),
    ),
  ).action(async (o: StackFlags) => {
    const spec = await readStackFile(o.file);
    const run = verb === 'apply' ? applyStack : destroyStack;
    await withInterrupts((signal) =>
      runCommand(
        o,
        (s) =>
          withStepDisplay(o, s.recorded, async (hooks) => {
            const talk = hooks.onEvent !== undefined;
            // An unchanged export's steps are all "already done": only one that is not gets shown.
            let quiet = false;
            let pending: PlanEvent | undefined;
            const onEvent = (e: PlanEvent): void => {
              if (quiet && e.type === 'start') return void (pending = e);
              if (quiet && e.type === 'skipped') return void (pending = undefined);
              if (pending) hooks.onEvent?.(pending);
              pending = undefined;
              hooks.onEvent?.(e);
            };
            return run(s, spec, {
              signal,
              onPlanned: (changes) => talk && printText(renderPlan(spec, changes)),
              onChange: (c, phase) => {
                if (phase !== 'start') return;
                quiet = c.action === 'unchanged';
                if (o.dryRun) s.recorded.push({ host: 'local', shell: `# ${renderChange(c)}` });
                else if (talk) printText(renderChange(c));
              },
              ...(talk ? { onPlan: hooks.onPlan, onEvent } : {}),
            });
          }),
        renderResult,
      ),
    );
  });
}

export function registerStack(program: Command): void {
  register(program, 'apply');
  register(program, 'destroy');
}
