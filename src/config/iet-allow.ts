// IET's /etc/iet/initiators.allow: which initiators may log in to which target.
//
//   # comment
//   iqn.2001-04.com.example:storage.disk1 192.168.0.0/24, 10.0.0.5, iqn\.1993-08\.org\.debian:01:abc
//   ALL 127.0.0.1
//
// How ietd reads it (usr/plain.c, match()):
// - the first token is a target name or ALL, the rest of the line is a ','-separated list
//   of ALL, an address ([IPv6] allowed), ADDR/BITS, or an initiator-name pattern matched
//   as a POSIX basic regex anchored with ^...$;
// - only the FIRST line naming the target (or ALL) is used, so a target's own line must
//   come before any ALL line;
// - a line is only read when it ends in '\n' (fgets into 4096 bytes).
import { ValidationError } from '../errors.js';
import { requireMatch, show } from './conf-values.js';
import { sameIqn } from '../names/iscsi-name.js';

export type IetAllowChunk = { kind: 'text'; text: string } | { kind: 'rule'; target: string; text: string };

/** initiators.allow as written: joining every chunk's text gives the file back byte for byte. */
export interface IetAllowDocument {
  chunks: IetAllowChunk[];
}

const ENTRY = /^[^\s,#\0-\x1f\x7f][^\s,\0-\x1f\x7f]*$/;
const ENTRY_TEXT = "ALL, an address, ADDR/BITS or a name pattern, without spaces, ',' or a leading '#'";
const TARGET = /^(ALL|iqn\.[A-Za-z0-9.:-]+)$/;

/** The line for one target, ending in a newline. */
export function buildIetAllowLine(target: string, initiators: readonly string[]): string {
  requireMatch('initiators.allow target', target, TARGET, 'ALL or an iqn. target name');
  if (initiators.length === 0) throw new ValidationError(`initiators.allow line for ${show(target)} needs at least one initiator`, 'allow');
  for (const e of initiators) requireMatch('initiators.allow entry', e, ENTRY, ENTRY_TEXT);
  const line = `${target} ${initiators.join(', ')}\n`;
  if (Buffer.byteLength(line) >= 4096) throw new ValidationError(`initiators.allow line for ${show(target)} is longer than ietd's 4095 bytes`, 'allow');
  return line;
}

/** Reads one rule line back: target and entries (spaces around entries dropped, as ietd does). */
export function parseIetAllowLine(line: string): { target: string; initiators: string[] } {
  const m = /^\s*(\S+)\s+(.*?)\s*$/.exec(line.replace(/\n$/, ''));
  if (!m || m[1]!.startsWith('#')) throw new ValidationError(`initiators.allow: ${show(line)} is not "TARGET INITIATOR[, INITIATOR]..."`, 'line');
  return { target: m[1]!, initiators: m[2]!.split(',').map((e) => e.trim()).filter(Boolean) };
}

function ruleTarget(line: string): string | undefined {
  const m = /^\s*(\S+)\s+\S/.exec(line);
  return m && !m[1]!.startsWith('#') ? m[1] : undefined;
}

export function parseIetAllow(text: string): IetAllowDocument {
  const chunks: IetAllowChunk[] = [];
  for (const line of text.match(/[^\n]*\n|[^\n]+$/g) ?? []) {
    const target = ruleTarget(line);
    const last = chunks[chunks.length - 1];
    if (target) chunks.push({ kind: 'rule', target, text: line });
    else if (last?.kind === 'text') last.text += line;
    else chunks.push({ kind: 'text', text: line });
  }
  return { chunks };
}

export function formatIetAllow(doc: IetAllowDocument): string {
  return doc.chunks.map((c) => c.text).join('');
}

/** The entries ietd uses for this target: its first own line, unless an ALL line comes first. */
export function getIetAllow(doc: IetAllowDocument, iqn: string): string[] | undefined {
  const rule = doc.chunks.find((c) => c.kind === 'rule' && (sameIqn(c.target, iqn) || c.target === 'ALL'));
  return rule && rule.kind === 'rule' && sameIqn(rule.target, iqn) ? parseIetAllowLine(rule.text).initiators : undefined;
}

/**
 * Sets the target's line: replaced in place (later lines for it, which ietd never reads,
 * are dropped), or inserted before the first ALL line so that it is the one ietd uses.
 */
export function upsertIetAllow(doc: IetAllowDocument, iqn: string, initiators: readonly string[]): IetAllowDocument {
  const line = buildIetAllowLine(iqn, initiators);
  const chunks: IetAllowChunk[] = [];
  let placed = false;
  for (const c of doc.chunks) {
    const mine = c.kind === 'rule' && sameIqn(c.target, iqn);
    if (!placed && (mine || (c.kind === 'rule' && c.target === 'ALL'))) {
      chunks.push({ kind: 'rule', target: iqn, text: line });
      placed = true;
      if (mine) continue;
    } else if (mine) {
      continue;
    }
    chunks.push(c);
  }
  if (!placed) {
    const last = chunks[chunks.length - 1];
    if (last && !last.text.endsWith('\n')) chunks.push({ kind: 'text', text: '\n' });
    chunks.push({ kind: 'rule', target: iqn, text: line });
  }
  return { chunks };
}

export function removeIetAllow(doc: IetAllowDocument, iqn: string): IetAllowDocument {
  return { chunks: doc.chunks.filter((c) => !(c.kind === 'rule' && sameIqn(c.target, iqn))) };
}
