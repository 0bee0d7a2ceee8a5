// One YAML document (YAML 1.2, core schema; JSON is YAML too) read into a small tree that
// keeps the line and column of every node and key, so that checks made after parsing can
// name where the bad value is. Limits guard the reader itself: nesting depth is measured
// on the concrete syntax tree (which the `yaml` package builds without recursion) before
// the document is composed (which recurses), and aliases are shared, never copied, so an
// alias bomb costs no more than the text it is written in.
import { Composer, isAlias, isMap, isScalar, isSeq, LineCounter, Parser, type CST, type Document, type Node as YamlNode } from 'yaml';
import { ValidationError } from '../errors.js';

export interface Pos {
  line: number;
  col: number;
}

export type TreeNode =
  | { t: 'scalar'; pos: Pos; v: string | number | boolean | null }
  | { t: 'seq'; pos: Pos; items: TreeNode[] }
  | { t: 'map'; pos: Pos; entries: TreeEntry[] };

export interface TreeEntry {
  key: string;
  keyPos: Pos;
  value: TreeNode;
}

export interface YamlLimits {
  /** Collections inside collections; the document's top node is depth 1. */
  maxDepth: number;
}

/** `file:line:col: why` (the form editors and terminals link to). */
export function at(file: string, pos: Pos | undefined, why: string): string {
  return `${file}:${pos?.line ?? 1}:${pos?.col ?? 1}: ${why}`;
}

/** The deepest nesting of collections in a CST token, walked with a stack of its own. */
function cstDepth(root: CST.Token, max: number): { depth: number; offset: number } {
  const stack: Array<[CST.Token, number]> = [[root, 0]];
  let deepest = { depth: 0, offset: 0 };
  while (stack.length) {
    const [tok, d] = stack.pop()!;
    switch (tok.type) {
      case 'document':
        if (tok.value) stack.push([tok.value, d]);
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection': {
        const depth = d + 1;
        if (depth > deepest.depth) deepest = { depth, offset: tok.offset };
        if (depth > max) return deepest;
        for (const item of tok.items as Array<{ key?: CST.Token | null; value?: CST.Token }>) {
          if (item.key) stack.push([item.key, depth]);
          if (item.value) stack.push([item.value, depth]);
        }
        break;
      }
      default:
        break;
    }
  }
  return deepest;
}

/** Reads the one document of `text`; every error is a ValidationError `file:line:col: why`. */
export function readYamlTree(text: string, file: string, limits: YamlLimits): TreeNode {
  // A byte order mark is an encoding detail, not content (editors on Windows write one).
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = new LineCounter();
  const pos = (offset: number): Pos => {
    const p = lines.linePos(offset);
    return { line: Math.max(p.line, 1), col: Math.max(p.col, 1) };
  };
  const fail = (offset: number, why: string): never => {
    throw new ValidationError(at(file, pos(offset), why), 'stack');
  };
  const tokens = [...new Parser(lines.addNewLine).parse(source)];
  const docs = tokens.filter((tok) => tok.type === 'document');
  if (docs.length > 1) fail((docs[1] as CST.Document).offset, 'a second YAML document ("---" or "..." ends the first): a stack file is one document');
  for (const doc of docs) {
    const deep = cstDepth(doc, limits.maxDepth);
    if (deep.depth > limits.maxDepth) fail(deep.offset, `nested more than ${limits.maxDepth} levels deep`);
  }
  // Keys are checked for uniqueness below, with a Set: the yaml package's own check
  // compares each key with every earlier one (40,000 keys took 13 s).
  const composer = new Composer({ version: '1.2', schema: 'core', uniqueKeys: false, prettyErrors: false, strict: true, merge: false, intAsBigInt: false });
  const composed: Document.Parsed[] = [...composer.compose(tokens, true, source.length)];
  const doc = composed[0];
  if (!doc) return { t: 'scalar', pos: { line: 1, col: 1 }, v: null };
  // Warnings too: an unknown tag, for one, would leave a value that is not what it looks like.
  const problem = doc.errors[0] ?? composer.streamInfo().errors[0] ?? doc.warnings[0];
  if (problem) fail(problem.pos[0], problem.message.replace(/\s+at line \d+, column \d+[\s\S]*$/, ''));

  // Aliases resolve to the node their anchor names: one TreeNode per YAML node, shared.
  const made = new Map<YamlNode, TreeNode>();
  const convert = (node: unknown, fallback: number): TreeNode => {
    let n = node;
    if (isAlias(n)) {
      const target = n.resolve(doc);
      if (!target) fail(n.range?.[0] ?? fallback, `alias *${n.source} names no anchor before it`);
      n = target;
    }
    if (n === null || n === undefined) return { t: 'scalar', pos: pos(fallback), v: null };
    const known = made.get(n as YamlNode);
    if (known) return known;
    if (isScalar(n)) {
      const p = pos(n.range?.[0] ?? fallback);
      const v = n.value;
      if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return { t: 'scalar', pos: p, v };
      return fail(n.range?.[0] ?? fallback, `a value of an unexpected type (${typeof v})`);
    }
    if (isSeq(n)) {
      const out: TreeNode = { t: 'seq', pos: pos(n.range?.[0] ?? fallback), items: [] };
      made.set(n, out);
      for (const item of n.items) out.items.push(convert(item, n.range?.[0] ?? fallback));
      return out;
    }
    if (isMap(n)) {
      const out: TreeNode = { t: 'map', pos: pos(n.range?.[0] ?? fallback), entries: [] };
      made.set(n, out);
      const seen = new Map<string, Pos>();
      for (const pair of n.items) {
        const k = isAlias(pair.key) ? pair.key.resolve(doc) : pair.key;
        const keyOffset = (pair.key as YamlNode | null)?.range?.[0] ?? n.range?.[0] ?? fallback;
        if (!isScalar(k) || (k.value !== null && typeof k.value === 'object')) fail(keyOffset, 'a key that is not a plain string (a [list] or {mapping} as key)');
        const key = String((k as { value: unknown }).value);
        const keyPos = pos(keyOffset);
        const first = seen.get(key);
        if (first) fail(keyOffset, `key ${JSON.stringify(key)} is given twice (first on line ${first.line})`);
        seen.set(key, keyPos);
        const valueOffset = (pair.value as YamlNode | null)?.range?.[0] ?? keyOffset;
        out.entries.push({ key, keyPos, value: convert(pair.value, valueOffset) });
      }
      return out;
    }
    return fail(fallback, 'a YAML node of an unknown kind');
  };
  return convert(doc.contents, 0);
}
