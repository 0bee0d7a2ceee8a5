import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { quoteArg, quoteArgv } from '../../src/runner/quote.js';
import { HOSTILE } from './hostile.js';

/** What a real shell makes of `printf '%s\0' WORDS`: the words it received. */
function shellWords(shell: string, words: string): string[] {
  const out = execFileSync(shell, ['-c', `printf '%s\\0' ${words}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

for (const shell of ['sh', 'bash']) {
  test(`quoteArg: every hostile string survives ${shell} -c on its own`, () => {
    for (const s of HOSTILE) assert.deepEqual(shellWords(shell, quoteArg(s)), [s], `quoteArg(${JSON.stringify(s)}) = ${quoteArg(s)}`);
  });

  test(`quoteArgv: the whole hostile list survives ${shell} -c as one command line`, () => {
    assert.deepEqual(shellWords(shell, quoteArgv(HOSTILE)), HOSTILE);
  });
}

test('quoteArg leaves plain words bare and quotes the rest', () => {
  assert.equal(quoteArg('iqn.2001-04.com.example:disk1'), 'iqn.2001-04.com.example:disk1');
  assert.equal(quoteArg('/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-x-lun-1'), '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-x-lun-1');
  assert.equal(quoteArg(''), "''");
  assert.equal(quoteArg("it's"), `'it'\\''s'`);
  assert.equal(quoteArg('a b'), "'a b'");
});
