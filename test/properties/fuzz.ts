// Shared pieces of the property tests: a seed printed by every test (replay a failure
// with FC_SEED=N, and FC_PATH=... from fast-check's report), a run count (FC_RUNS), inputs
// made of real captured output and random text, mutations of real output, and the
// property itself: a parser returns, or throws one of our typed errors in one line.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { VirtIscsiError } from '../../src/errors.js';

export const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : Date.now() % 2 ** 31;
export const RUNS = Number(process.env.FC_RUNS ?? 2000);
const PATH = process.env.FC_PATH;

const root = fileURLToPath(new URL('../..', import.meta.url));
export const fixture = (path: string): string => readFileSync(`${root}test/fixtures/${path}`, 'utf8');

/** fast-check's options for this run: the seed (and path) to replay. */
export function params<T>(runs = RUNS): fc.Parameters<T> {
  return { seed: SEED, numRuns: runs, ...(PATH ? { path: PATH } : {}) };
}

/** Runs `fn`; anything thrown must be our typed error with a one-line message. */
export function returnsOrTyped(what: string, fn: () => unknown, extra?: (e: VirtIscsiError) => void): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof VirtIscsiError)) {
      throw new Error(`${what} threw ${(e as Error)?.constructor?.name ?? typeof e}, not a typed error: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    assert.ok(e.message.length > 0 && !e.message.includes('\n'), `${what}: one line, got ${JSON.stringify(e.message)}`);
    extra?.(e);
  }
}

/** Text that looks like tool output: lines of the fixtures, their pieces, and random lines. */
export function linesLike(samples: readonly string[]): fc.Arbitrary<string> {
  const lines = [...new Set(samples.flatMap((s) => s.split('\n')))];
  const words = [...new Set(lines.flatMap((l) => l.split(/(\s+|[:=,|])/)))].filter(Boolean);
  const line = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...lines) },
    { weight: 2, arbitrary: fc.array(fc.constantFrom(...words), { maxLength: 8 }).map((w) => w.join('')) },
    { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  );
  return fc.array(line, { maxLength: 40 }).map((ls) => ls.join('\n'));
}

type Mutation = { op: 'delete' | 'insert' | 'duplicate' | 'truncate' | 'swap' | 'number' | 'char'; at: number; len: number; text: string };

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('delete', 'insert', 'duplicate', 'truncate', 'swap', 'number', 'char'),
  at: fc.nat(),
  len: fc.nat({ max: 40 }),
  text: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('\n', ' ', ':', '=', '-', '"', "'", '<', '>', '/', '\t', '\0', '{', '[', '99999999999999999999', '-1', 'NaN', '')),
});

function apply(text: string, m: Mutation): string {
  const at = text.length ? m.at % (text.length + 1) : 0;
  switch (m.op) {
    case 'delete':
      return text.slice(0, at) + text.slice(at + m.len);
    case 'insert':
      return text.slice(0, at) + m.text + text.slice(at);
    case 'duplicate':
      return text.slice(0, at + m.len) + text.slice(at, at + m.len) + text.slice(at + m.len);
    case 'truncate':
      return text.slice(0, at);
    case 'swap': {
      const lines = text.split('\n');
      const i = m.at % lines.length;
      const j = (m.at + m.len) % lines.length;
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join('\n');
    }
    case 'number':
      // A number in the text becomes another: huge, negative, not a number.
      return text.replace(/\d+/g, (d, off: number) => (off >= at && off < at + 200 ? m.text || '0' : d));
    case 'char':
      return text.slice(0, at) + (m.text[0] ?? '') + text.slice(at + 1);
  }
}

/** A real sample, changed by 1 to 6 random edits. */
export function mutated(samples: readonly string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...samples), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([s, ms]) => ms.reduce(apply, s));
}

/** Real output as it is, mutated, or made of its lines and random ones. */
export function toolOutput(samples: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...samples) }, { weight: 5, arbitrary: mutated(samples) }, { weight: 3, arbitrary: linesLike(samples) });
}
