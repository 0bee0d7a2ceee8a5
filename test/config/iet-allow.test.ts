// IET cannot run here (no kernel module): pure tests of initiators.allow editing against
// the documented reader (IET 1.4.20 usr/plain.c: first line naming the target or ALL wins).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { buildIetAllowLine, formatIetAllow, getIetAllow, parseIetAllow, removeIetAllow, upsertIetAllow } from '../../src/config/iet-allow.js';

const text = readFileSync(new URL('../fixtures/config/iet/initiators.allow', import.meta.url), 'utf8');
const web1 = 'iqn.2024-01.com.example:vm.web1';

test('plan-only: initiators.allow comes back byte for byte and reads the entries ietd would use', () => {
  const doc = parseIetAllow(text);
  assert.equal(formatIetAllow(doc), text);
  assert.deepEqual(getIetAllow(doc, web1), ['10.0.0.0/24', 'iqn\\.1993-08\\.org\\.debian:01:web1']);
  // no own line: the ALL line decides, so the target has no entries of its own
  assert.equal(getIetAllow(doc, 'iqn.2024-01.com.example:other'), undefined);
});

test('plan-only: replacing a line keeps every other byte; a new line goes before the first ALL line', () => {
  const doc = parseIetAllow(text);
  const oldLine = `${web1} 10.0.0.0/24, iqn\\.1993-08\\.org\\.debian:01:web1\n`;
  assert.equal(formatIetAllow(upsertIetAllow(doc, web1, ['10.9.9.9'])), text.replace(oldLine, `${web1} 10.9.9.9\n`));
  const added = formatIetAllow(upsertIetAllow(doc, 'iqn.2024-01.com.example:new', ['ALL']));
  assert.equal(added, text.replace('ALL 127.0.0.1\n', 'iqn.2024-01.com.example:new ALL\nALL 127.0.0.1\n'));
  assert.deepEqual(getIetAllow(parseIetAllow(added), 'iqn.2024-01.com.example:new'), ['ALL']);
  assert.equal(formatIetAllow(removeIetAllow(doc, web1)), text.replace(oldLine, ''));
  assert.equal(formatIetAllow(upsertIetAllow(parseIetAllow('# only a comment'), web1, ['10.0.0.1'])), `# only a comment\n${web1} 10.0.0.1\n`);
});

test('plan-only: entries that would break the line are refused', () => {
  for (const bad of ['10.0.0.1, 10.0.0.2', '10.0.0.1\nALL ALL', 'a b', '#x', '']) {
    assert.throws(() => buildIetAllowLine(web1, [bad]), (e: unknown) => e instanceof ValidationError && e.message.includes(JSON.stringify(bad).slice(1, -1).slice(0, 5)), bad);
  }
  assert.throws(() => buildIetAllowLine(web1, []), /at least one/);
  assert.throws(() => buildIetAllowLine('iqn.2024-01.com.example:a b', ['ALL']), /"iqn.2024-01.com.example:a b"/);
});
