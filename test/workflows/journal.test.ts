// The crash journal's reading of what a run was doing: an export, or a resize with the
// command that finishes it and the domains it paused. Lines as Journal writes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJournal } from '../../src/workflows/journal.js';
import { sampleRecord } from '../helpers/records.js';

const record = sampleRecord();
const lines = (...entries: object[]): string => entries.map((e) => `${JSON.stringify(e)}\n`).join('');
const at = '2026-01-01T00:00:00.000Z';

test('a resize journal: its op, the command that finishes it, the domains it paused and resumed', () => {
  const finish = 'virt-iscsi resize data --size 2097152';
  const j = parseJournal(
    '/j/data.jsonl',
    'data',
    lines(
      { t: 'begin', at, pid: 42, record, op: 'resize', finish },
      { t: 'intent', at, step: 'target', host: 'local', title: 'pause web1, make target ... resume web1' },
      { t: 'piece', at, piece: { kind: 'paused', host: 'local', vm: 'web1' } },
    ),
  )!;
  assert.deepEqual([j.op, j.finish, j.runs], ['resize', finish, 1]);
  assert.deepEqual(j.pieces, [{ kind: 'paused', host: 'local', vm: 'web1' }]);
  assert.deepEqual(j.open.map((o) => [o.step, o.done]), [['target', false]]);
  // An export's journal says nothing of the kind.
  assert.deepEqual(parseJournal('/j/data.jsonl', 'data', lines({ t: 'begin', at, pid: 1, record }))!.op, 'export');
  // The finish command is printed by status: anything but a resize command is dropped.
  for (const bad of ['rm -rf /', 'virt-iscsi resize data\nrm -rf /', 'virt-iscsi unexport data']) {
    assert.equal(parseJournal('/j/data.jsonl', 'data', lines({ t: 'begin', at, pid: 1, record, op: 'resize', finish: bad }))!.finish, undefined, bad);
  }
  // Ended: nothing left.
  assert.equal(parseJournal('/j/data.jsonl', 'data', lines({ t: 'begin', at, pid: 1, record, op: 'resize', finish }, { t: 'end', at, outcome: 'done' })), undefined);
});
