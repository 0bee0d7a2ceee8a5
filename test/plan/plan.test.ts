// The plan runner: journal hooks around each change, rollback of what this run applied,
// and an interruption that arrives while a step runs (its child got the terminal's Ctrl-C
// too): reported as the interruption, and that step undone with the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InterruptedError, runPlan, sleep, type PlanJournal, type Step } from '../../src/plan/plan.js';

function recorder(): { log: string[]; journal: PlanJournal } {
  const log: string[] = [];
  return {
    log,
    journal: {
      intent: async (s) => void log.push(`intent ${s.id}`),
      done: async (s) => void log.push(`done ${s.id}`),
      undoing: async (s) => void log.push(`undoing ${s.id}`),
      undone: async (s) => void log.push(`undone ${s.id}`),
    },
  };
}

const step = (id: string, log: string[], o: Partial<Step> = {}): Step => ({
  id,
  title: id,
  apply: async () => void log.push(`apply ${id}`),
  undo: async () => void log.push(`undo ${id}`),
  ...o,
});

test('the journal hears of each change before and after it, and of each undo; skipped steps are not journaled', async () => {
  const { log, journal } = recorder();
  await runPlan([step('a', log), step('b', log, { check: async () => true }), step('c', log)], { journal });
  assert.deepEqual(log, ['intent a', 'apply a', 'done a', 'intent c', 'apply c', 'done c']);
  log.length = 0;
  await assert.rejects(runPlan([step('a', log), step('b', log, { apply: async () => Promise.reject(new Error('b broke')) })], { journal }), /b broke/);
  assert.deepEqual(log, ['intent a', 'apply a', 'done a', 'intent b', 'undoing a', 'undo a', 'undone a']);
});

test('an abort while a step runs makes its failure an interruption, and that step is undone too', async () => {
  const { log, journal } = recorder();
  const controller = new AbortController();
  const failing = step('child', log, {
    apply: async () => {
      log.push('apply child');
      controller.abort('SIGINT');
      throw new Error('virsh attach-device failed (exit 130)');
    },
  });
  await assert.rejects(runPlan([step('a', log), failing, step('never', log)], { journal, signal: controller.signal }), (e: unknown) => {
    assert.ok(e instanceof InterruptedError, String(e));
    assert.equal((e as Error).message, 'interrupted (SIGINT); undid the steps already done');
    return true;
  });
  assert.deepEqual(log, ['intent a', 'apply a', 'done a', 'intent child', 'apply child', 'undoing child', 'undo child', 'undone child', 'undoing a', 'undo a', 'undone a']);
});

test('a failure with no abort is the failure itself; the failing step is not undone', async () => {
  const { log } = recorder();
  await assert.rejects(runPlan([step('a', log), step('b', log, { apply: async () => Promise.reject(new Error('plain')) })]), /^Error: plain$/);
  assert.deepEqual(log, ['apply a', 'undo a']);
});

test('waits stop at once on abort', async () => {
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort('SIGTERM'), 50);
  await assert.rejects(sleep(60_000, controller.signal), /interrupted \(SIGTERM\)/);
  assert.ok(Date.now() - started < 5_000);
});
