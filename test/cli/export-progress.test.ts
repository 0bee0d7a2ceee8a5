// The step list export and unexport print: plain lines when the output is not a terminal,
// a spinner line per step on one. Fed with the events runPlan emits for a real plan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planComments, Progress } from '../../src/cli/progress.js';
import { runPlan, type Step } from '../../src/plan/plan.js';
import type { RecordedStep } from '../../src/runner/recording.js';

function steps(failAt?: number): Step[] {
  const titles = ['start the daemon', 'create target t1', 'attach'];
  return titles.map((title, i) => ({
    title,
    ...(i === 0 ? { check: async () => true } : {}),
    apply: async () => {
      if (i === failAt) throw new Error('boom');
    },
    undo: async () => {},
  }));
}

function sink(isTTY: boolean): { text: () => string; write: (s: string) => void; isTTY: boolean } {
  let out = '';
  return { isTTY, write: (s: string) => void (out += s), text: () => out };
}

test('plain lines: "[2/3] title ... done (0.0s)", already done, failed, and the rollback', async () => {
  const out = sink(false);
  const p = new Progress(out);
  const plan = steps(2);
  p.plan(plan);
  await assert.rejects(runPlan(plan, { onEvent: p.event }), /boom/);
  assert.deepEqual(out.text().split('\n'), [
    '[1/3] start the daemon ... already done',
    '[2/3] create target t1 ... done (0.0s)',
    '[3/3] attach ... failed (0.0s)',
    '[2/3] undo: create target t1 ... undone (0.0s)',
    '',
  ]);
});

test('on a terminal: a spinner while a step runs, cleared, then the line with a mark', async () => {
  const out = sink(true);
  const p = new Progress(out);
  const plan = steps();
  p.plan(plan);
  await runPlan(plan, { onEvent: p.event });
  p.close();
  const text = out.text();
  assert.match(text, /\r\x1b\[2K⠋ \[2\/3\] create target t1/, 'the spinner frame');
  assert.match(text, /\r\x1b\[2K✔ \[2\/3\] create target t1 \.\.\. done \(0\.0s\)\n/);
  assert.match(text, /• \[1\/3\] start the daemon \.\.\. already done\n/);
  // What is left on screen once carriage returns and line clears are applied.
  const screen = text.split('\n').map((l) => l.split('\r\x1b[2K').pop());
  assert.deepEqual(screen, ['• [1/3] start the daemon ... already done', '✔ [2/3] create target t1 ... done (0.0s)', '✔ [3/3] attach ... done (0.0s)', '']);
});

test('under --dry-run each step becomes a comment in the plan, before its commands', async () => {
  const recorded: RecordedStep[] = [];
  const c = planComments(recorded);
  const plan = steps();
  c.plan(plan);
  await runPlan(plan, { onEvent: c.event });
  assert.deepEqual(
    recorded.map((r) => r.shell),
    ['# [1/3] start the daemon', '#   already done', '# [2/3] create target t1', '# [3/3] attach'],
  );
});
