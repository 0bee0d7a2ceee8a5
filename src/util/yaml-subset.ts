// Stack files are YAML, but only the plain part of it that people write by hand:
// block mappings and sequences by indentation (spaces), plain / 'single' / "double"
// quoted scalars, [flow, lists] of scalars, comments. Anchors, aliases, tags, multi-line
// scalars and {flow maps} are refused with the line that uses them, so a file never means
// something other than what it looks like. A document that starts with '{' is read as JSON.
// (We keep to the four packages the product owner chose rather than add a YAML library.)
import { ValidationError } from '../errors.js';

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  no: number;
  indent: number;
  text: string;
}

class Reader {
  private i = 0;
  constructor(
    private readonly lines: Line[],
    private readonly file: string,
  ) {}

  fail(line: Line | undefined, why: string): never {
    throw new ValidationError(`${this.file}${line ? ` line ${line.no}` : ''}: ${why}`, 'stack');
  }

  peek(): Line | undefined {
    return this.lines[this.i];
  }

  next(): Line {
    return this.lines[this.i++]!;
  }

  /** A block (mapping or sequence) whose lines are indented exactly `indent`. */
  block(indent: number): YamlValue {
    const first = this.peek();
    if (!first) return null;
    return isSeqItem(first.text) ? this.sequence(indent) : this.mapping(indent);
  }

  sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    for (let l = this.peek(); l && l.indent === indent && isSeqItem(l.text); l = this.peek()) {
      this.next();
      const rest = l.text === '-' ? '' : l.text.slice(2);
      const restTrim = rest.trimStart();
      if (restTrim === '') {
        const n = this.peek();
        out.push(n && n.indent > indent ? this.block(n.indent) : null);
      } else if (isSeqItem(restTrim) || splitKey(restTrim, l, this)) {
        // "- key: value" opens a mapping whose other keys sit under the key's column.
        const col = indent + 2 + (rest.length - restTrim.length);
        this.lines.splice(this.i, 0, { no: l.no, indent: col, text: restTrim });
        out.push(this.block(col));
      } else {
        out.push(scalar(restTrim, l, this));
      }
    }
    this.checkDedent(indent);
    return out;
  }

  mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    for (let l = this.peek(); l && l.indent === indent && !isSeqItem(l.text); l = this.peek()) {
      this.next();
      const kv = splitKey(l.text, l, this);
      if (!kv) this.fail(l, `expected "key: value", got ${JSON.stringify(l.text)}`);
      const [key, value] = kv;
      if (Object.hasOwn(out, key)) this.fail(l, `key "${key}" is given twice`);
      if (value === '') {
        const n = this.peek();
        // A sequence may sit at the same indent as its key, as people often write it.
        if (n && (n.indent > indent || (n.indent === indent && isSeqItem(n.text)))) out[key] = this.block(n.indent);
        else out[key] = null;
      } else {
        out[key] = scalar(value, l, this);
      }
    }
    this.checkDedent(indent);
    return out;
  }

  private checkDedent(indent: number): void {
    const l = this.peek();
    if (l && l.indent > indent) this.fail(l, `unexpected indentation (${l.indent} spaces)`);
  }

  done(): void {
    const l = this.peek();
    if (l) this.fail(l, `unexpected ${JSON.stringify(l.text)} (check the indentation)`);
  }
}

function isSeqItem(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

/** `key: value` -> [key, value]; undefined when the text is not a mapping entry. */
function splitKey(text: string, line: Line, r: Reader): [string, string] | undefined {
  let key: string;
  let rest: string;
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = quotedEnd(text, line, r);
    key = scalar(text.slice(0, end), line, r) as string;
    rest = text.slice(end);
    if (!/^\s*:(\s|$)/.test(rest)) return undefined;
    rest = rest.replace(/^\s*:/, '');
  } else {
    const m = /^([^\s:#][^:#]*?)\s*:(?:\s+(.*)|$)/.exec(text);
    if (!m) return undefined;
    key = m[1]!;
    rest = m[2] ?? '';
  }
  return [String(key), rest.trim()];
}

function quotedEnd(text: string, line: Line, r: Reader): number {
  const q = text[0]!;
  for (let i = 1; i < text.length; i++) {
    if (q === '"' && text[i] === '\\') {
      i++;
      continue;
    }
    if (text[i] === q) {
      if (q === "'" && text[i + 1] === "'") {
        i++;
        continue;
      }
      return i + 1;
    }
  }
  return r.fail(line, `unterminated ${q === '"' ? 'double' : 'single'}-quoted string`);
}

function scalar(raw: string, line: Line, r: Reader): YamlValue {
  const text = raw.trim();
  const first = text[0];
  if (first === '&' || first === '*') r.fail(line, 'anchors and aliases (& *) are not supported in stack files');
  if (first === '!') r.fail(line, 'tags (!) are not supported in stack files');
  if (first === '|' || first === '>') r.fail(line, 'multi-line scalars (| >) are not supported in stack files');
  if (first === '{') r.fail(line, 'flow mappings ({...}) are not supported in stack files; use indented key: value lines');
  if (first === '[') {
    if (!text.endsWith(']')) r.fail(line, 'a [list] must end on the same line');
    const inner = text.slice(1, -1).trim();
    if (inner === '') return [];
    return splitFlow(inner, line, r).map((item) => scalar(item, line, r));
  }
  if (first === '"' || first === "'") {
    const end = quotedEnd(text, line, r);
    if (end !== text.length) r.fail(line, `unexpected text after the quoted string: ${JSON.stringify(text.slice(end))}`);
    if (first === "'") return text.slice(1, -1).replace(/''/g, "'");
    try {
      return JSON.parse(text) as string;
    } catch {
      return r.fail(line, `bad escape in ${text}`);
    }
  }
  if (text === '' || text === '~' || text === 'null') return null;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?(0|[1-9][0-9]*)$/.test(text)) return Number(text);
  return text;
}

function splitFlow(inner: string, line: Line, r: Reader): string[] {
  const items: string[] = [];
  let i = 0;
  while (i <= inner.length) {
    const rest = inner.slice(i).trimStart();
    const start = inner.length - rest.length;
    let end: number;
    if (rest.startsWith('"') || rest.startsWith("'")) end = start + quotedEnd(rest, line, r);
    else end = inner.indexOf(',', start) < 0 ? inner.length : inner.indexOf(',', start);
    items.push(inner.slice(start, end).trim());
    const after = inner.slice(end).trimStart();
    if (after === '') break;
    if (!after.startsWith(',')) r.fail(line, `expected "," in the [list], got ${JSON.stringify(after)}`);
    i = inner.length - after.length + 1;
  }
  if (items.some((x) => x === '' || x.startsWith('[') || x.startsWith('{'))) r.fail(line, 'a [list] holds only non-empty scalars');
  return items;
}

/** Drops a comment: '#' at the start or after whitespace, outside quotes. */
function stripComment(text: string): string {
  let q: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (q) {
      if (q === '"' && c === '\\') i++;
      else if (c === q) q = undefined;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s[,:-]/.test(text[i - 1]!)) q = c;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) {
      return text.slice(0, i);
    }
  }
  return text;
}

export function parseYamlSubset(source: string, file = 'stack file'): YamlValue {
  if (/^\s*\{/.test(source)) {
    try {
      return JSON.parse(source) as YamlValue;
    } catch (e) {
      throw new ValidationError(`${file}: not valid JSON: ${(e as Error).message}`, 'stack');
    }
  }
  const lines: Line[] = [];
  let started = false;
  for (const [idx, raw] of source.split(/\r?\n/).entries()) {
    const no = idx + 1;
    const body = stripComment(raw).replace(/\s+$/, '');
    if (body.trim() === '') continue;
    if (/^\t| \t/.test(body.match(/^\s*/)![0])) throw new ValidationError(`${file} line ${no}: indent with spaces, not tabs`, 'stack');
    if (body === '---') {
      if (started || lines.length) throw new ValidationError(`${file} line ${no}: only one document per stack file`, 'stack');
      started = true;
      continue;
    }
    if (body === '...') break;
    const indent = body.length - body.trimStart().length;
    lines.push({ no, indent, text: body.trimStart() });
  }
  const r = new Reader(lines, file);
  if (lines.length === 0) return null;
  if (lines[0]!.indent !== 0) r.fail(lines[0], 'the first line must not be indented');
  const value = r.block(0);
  r.done();
  return value;
}
