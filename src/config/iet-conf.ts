// IET's ietd.conf as a document of opaque text and `Target` stanzas, so that editing one
// target leaves every other byte alone.
//
// The format (ietd.conf(5), IET 1.4.20), e.g. the seed's:
//   Target iqn.2001-04.org.ultimana:storage.disk1
//           Lun 0 Path=/iscsi/iscsitarget,Type=fileio
// and with more:
//   Target iqn.2001-04.com.example:storage.disk2.sys1.xyz
//       IncomingUser jim othersecret
//       OutgoingUser james yetanothersecret
//       Lun 0 Path=/dev/sdc,Type=fileio,ScsiSN=xyz,IOMode=ro
//       Alias Test
//
// Quirks of ietd's reader (usr/plain.c), which these checks follow:
// - a line is whitespace-separated tokens; it is a comment only when its first token
//   starts with '#' ('#' elsewhere is "disallowed"); keywords are case-insensitive;
// - everything after a `Target` line belongs to that target until the next `Target`;
// - `Lun N` is followed by one token `Key=Value,Key=Value...` (no blanks), so a Path
//   must not hold ',' or whitespace; users and secrets are single tokens;
// - lines are read with fgets(4096) and no continuation is honoured.
import { ValidationError } from '../errors.js';
import type { TargetSpec } from '../model/target.js';
import { classifyAllow, parseIntToken, requireInt, requireMatch, show } from './conf-values.js';
import { sameIqn } from '../names/iscsi-name.js';

export type IetIoType = 'fileio' | 'blockio' | 'nullio';
export type IetIoMode = 'wb' | 'ro' | 'wt';

export interface IetLun {
  lun: number;
  type: IetIoType;
  /** Required for fileio and blockio; nullio has none. */
  path?: string;
  ioMode?: IetIoMode;
  /** VPD 0x83 id, at most 16 characters. */
  scsiId?: string;
  /** VPD 0x80 serial, at most 16 characters. */
  scsiSn?: string;
  blockSize?: 512 | 1024 | 2048 | 4096;
  /** nullio only. */
  blocks?: number;
}

export interface IetAccount {
  user: string;
  secret: string;
}

export interface IetParam {
  key: string;
  value: string;
}

export interface IetTarget {
  iqn: string;
  luns: IetLun[];
  incomingUsers: IetAccount[];
  outgoingUser?: IetAccount;
  /** Alias, MaxConnections, HeaderDigest... in file order. */
  params: IetParam[];
}

// ---- values ---------------------------------------------------------------------------

const IQN = /^iqn\.[A-Za-z0-9.:-]+$/;
const TOKEN = /^[^\s#,\0-\x1f\x7f][^\s,\0-\x1f\x7f]*$/u;
const TOKEN_TEXT = "one word without spaces, ',', control characters or a leading '#'";
const PATH = /^\/[^\s,#=\0-\x1f\x7f]*$/u;
const PATH_TEXT = "an absolute path without spaces, ',', '=', '#' or control characters";
const SCSI_WORD = /^[A-Za-z0-9._:+-]{1,16}$/;
const PARAM_KEY = /^[A-Za-z][A-Za-z0-9]*$/;
const OWNED = new Set(['target', 'lun', 'incominguser', 'outgoinguser']);

function checkAccount(kind: string, a: IetAccount): void {
  requireMatch(`${kind} user`, a.user, TOKEN, TOKEN_TEXT);
  if (!TOKEN.test(a.secret)) {
    throw new ValidationError(`${kind} secret for user ${show(a.user)} is empty or not ${TOKEN_TEXT}`, 'secret');
  }
}

/** Refuses a target whose values would break ietd.conf. */
export function validateIetTarget(t: IetTarget): void {
  requireMatch('target name', t.iqn, IQN, 'an iqn. name of letters, digits, . : - (IET does not take eui. names)');
  if (t.luns.length > 0 && t.luns[0]!.lun !== 0) {
    throw new ValidationError(`the first Lun of ${t.iqn} is ${t.luns[0]!.lun}; ietd requires the first Lun defined to be 0`, 'lun');
  }
  const seen = new Set<number>();
  for (const l of t.luns) {
    requireInt('Lun', l.lun, 0, 16384);
    if (seen.has(l.lun)) throw new ValidationError(`Lun ${l.lun} is given twice`, 'lun');
    seen.add(l.lun);
    requireMatch(`Lun ${l.lun} Type`, l.type, /^(fileio|blockio|nullio)$/, 'fileio, blockio or nullio');
    if (l.type === 'nullio') {
      if (l.path !== undefined) throw new ValidationError(`Lun ${l.lun}: a nullio LUN has no Path`, 'path');
    } else {
      requireMatch(`Lun ${l.lun} Path`, l.path ?? '', PATH, PATH_TEXT);
      if (l.blocks !== undefined) throw new ValidationError(`Lun ${l.lun}: Blocks is for nullio LUNs only`, 'blocks');
    }
    if (l.ioMode !== undefined) requireMatch(`Lun ${l.lun} IOMode`, l.ioMode, /^(wb|ro|wt)$/, 'wb, ro or wt');
    if (l.scsiId !== undefined) requireMatch(`Lun ${l.lun} ScsiId`, l.scsiId, SCSI_WORD, 'at most 16 letters, digits or . _ : + -');
    if (l.scsiSn !== undefined) requireMatch(`Lun ${l.lun} ScsiSN`, l.scsiSn, SCSI_WORD, 'at most 16 letters, digits or . _ : + -');
    if (l.blockSize !== undefined && ![512, 1024, 2048, 4096].includes(l.blockSize)) {
      throw new ValidationError(`Lun ${l.lun} BlockSize ${String(l.blockSize)} is not 512, 1024, 2048 or 4096`, 'blockSize');
    }
    if (l.blocks !== undefined) requireInt(`Lun ${l.lun} Blocks`, l.blocks, 1, Number.MAX_SAFE_INTEGER);
  }
  for (const a of t.incomingUsers) checkAccount('IncomingUser', a);
  if (t.outgoingUser) checkAccount('OutgoingUser', t.outgoingUser);
  for (const p of t.params) {
    requireMatch('parameter name', p.key, PARAM_KEY, 'a word of letters and digits');
    if (OWNED.has(p.key.toLowerCase())) throw new ValidationError(`parameter ${show(p.key)} has its own field in the model`, p.key);
    requireMatch(`parameter ${p.key}`, p.value, TOKEN, TOKEN_TEXT);
  }
}

// ---- build ----------------------------------------------------------------------------

const INDENT = '        ';

/** A LUN's `Key=Value,...` token: the same in ietd.conf and in `ietadm --params`. */
export function ietLunParams(l: IetLun): string {
  const kv: string[] = [];
  if (l.path !== undefined) kv.push(`Path=${l.path}`);
  kv.push(`Type=${l.type}`);
  if (l.scsiId !== undefined) kv.push(`ScsiId=${l.scsiId}`);
  if (l.scsiSn !== undefined) kv.push(`ScsiSN=${l.scsiSn}`);
  if (l.ioMode !== undefined) kv.push(`IOMode=${l.ioMode}`);
  if (l.blockSize !== undefined) kv.push(`BlockSize=${l.blockSize}`);
  if (l.blocks !== undefined) kv.push(`Blocks=${l.blocks}`);
  return kv.join(',');
}

/** One `Target IQN` stanza, ending in a newline. Validates first. */
export function buildIetTarget(t: IetTarget): string {
  validateIetTarget(t);
  const lines = [`Target ${t.iqn}`];
  for (const a of t.incomingUsers) lines.push(`${INDENT}IncomingUser ${a.user} ${a.secret}`);
  if (t.outgoingUser) lines.push(`${INDENT}OutgoingUser ${t.outgoingUser.user} ${t.outgoingUser.secret}`);
  for (const l of t.luns) lines.push(`${INDENT}Lun ${l.lun} ${ietLunParams(l)}`);
  for (const p of t.params) lines.push(`${INDENT}${p.key} ${p.value}`);
  return `${lines.join('\n')}\n`;
}

// ---- parse one stanza ---------------------------------------------------------------------

function parseLun(tokens: string[], where: string): IetLun {
  if (tokens.length !== 3) throw new ValidationError(`${where}: expected "Lun N Key=Value,...", got ${tokens.length - 1} words after Lun`, 'lun');
  // fileio is IET's default Type; the model always holds it explicitly.
  const lun: IetLun = { lun: parseIntToken('Lun', tokens[1]!, where), type: 'fileio' };
  for (const pair of tokens[2]!.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ValidationError(`${where}: ${show(pair)} is not Key=Value`, 'lun');
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    switch (key) {
      case 'Path':
        lun.path = value;
        break;
      case 'Type':
        if (!/^(fileio|blockio|nullio)$/.test(value)) throw new ValidationError(`${where}: Type ${show(value)} is not fileio, blockio or nullio`, 'type');
        lun.type = value as IetIoType;
        break;
      case 'IOMode':
        if (!/^(wb|ro|wt)$/.test(value)) throw new ValidationError(`${where}: IOMode ${show(value)} is not wb, ro or wt`, 'ioMode');
        lun.ioMode = value as IetIoMode;
        break;
      case 'ScsiId':
        lun.scsiId = value;
        break;
      case 'ScsiSN':
        lun.scsiSn = value;
        break;
      case 'BlockSize':
        lun.blockSize = parseIntToken('BlockSize', value, where) as IetLun['blockSize'];
        break;
      case 'Blocks':
        lun.blocks = parseIntToken('Blocks', value, where);
        break;
      default:
        throw new ValidationError(`${where}: unknown Lun key ${show(key)}`, 'lun');
    }
  }
  return lun;
}

function parseAccountTokens(tokens: string[], where: string): IetAccount {
  if (tokens.length !== 3) throw new ValidationError(`${where}: ${tokens[0]} needs exactly USER SECRET`, tokens[0]!.toLowerCase());
  return { user: tokens[1]!, secret: tokens[2]! };
}

/** Parses one `Target IQN` stanza (comment lines dropped). */
export function parseIetTarget(stanza: string): IetTarget {
  let target: IetTarget | undefined;
  const lines = stanza.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const where = `ietd.conf stanza line ${i + 1}`;
    const tokens = lines[i]!.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0 || tokens[0]!.startsWith('#')) continue;
    const key = tokens[0]!.toLowerCase();
    if (!target) {
      if (key !== 'target' || tokens.length !== 2) throw new ValidationError(`${where}: expected "Target NAME", got ${show(lines[i]!.trim())}`, 'line');
      target = { iqn: tokens[1]!, luns: [], incomingUsers: [], params: [] };
      continue;
    }
    switch (key) {
      case 'target':
        throw new ValidationError(`${where}: a second Target in one stanza`, 'line');
      case 'lun':
        target.luns.push(parseLun(tokens, where));
        break;
      case 'incominguser':
        target.incomingUsers.push(parseAccountTokens(tokens, where));
        break;
      case 'outgoinguser':
        if (target.outgoingUser) throw new ValidationError(`${where}: only one OutgoingUser per target`, 'outgoinguser');
        target.outgoingUser = parseAccountTokens(tokens, where);
        break;
      default:
        if (tokens.length !== 2) throw new ValidationError(`${where}: ${tokens[0]} takes one value, got ${tokens.length - 1}`, tokens[0]!);
        target.params.push({ key: tokens[0]!, value: tokens[1]! });
    }
  }
  if (!target) throw new ValidationError('ietd.conf stanza: no "Target NAME" line', 'line');
  return target;
}

// ---- the whole file -------------------------------------------------------------------

export type IetChunk = { kind: 'text'; text: string } | { kind: 'target'; iqn: string; text: string };

/** An ietd.conf as written: joining every chunk's text gives the file back byte for byte. */
export interface IetConfDocument {
  chunks: IetChunk[];
}

function firstToken(line: string): string {
  return line.trim().split(/\s+/)[0] ?? '';
}

function isTargetLine(line: string): string | undefined {
  const t = line.trim().split(/\s+/);
  return t[0]?.toLowerCase() === 'target' && t[1] ? t[1] : undefined;
}

/** Blank or comment line: goes with the text around stanzas, not inside one. */
function isFiller(line: string): boolean {
  const f = firstToken(line);
  return f === '' || f.startsWith('#');
}

/**
 * Splits ietd.conf into the global part, target stanzas and the comments between them.
 * A stanza runs from its Target line to its last setting; comments and blank lines that
 * follow (often the next target's heading) stay as text.
 */
export function parseIetConf(text: string): IetConfDocument {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const chunks: IetChunk[] = [];
  let pending = '';
  let i = 0;
  while (i < lines.length) {
    const iqn = isTargetLine(lines[i]!);
    if (!iqn) {
      pending += lines[i]!;
      i++;
      continue;
    }
    let end = i + 1; // one past the stanza's last setting
    let j = i + 1;
    while (j < lines.length && !isTargetLine(lines[j]!)) {
      if (!isFiller(lines[j]!)) end = j + 1;
      j++;
    }
    if (pending) chunks.push({ kind: 'text', text: pending });
    chunks.push({ kind: 'target', iqn, text: lines.slice(i, end).join('') });
    pending = lines.slice(end, j).join('');
    i = j;
  }
  if (pending) chunks.push({ kind: 'text', text: pending });
  return { chunks };
}

export function formatIetConf(doc: IetConfDocument): string {
  return doc.chunks.map((c) => c.text).join('');
}

export function listIetTargets(doc: IetConfDocument): string[] {
  return doc.chunks.flatMap((c) => (c.kind === 'target' ? [c.iqn] : []));
}

export function getIetTarget(doc: IetConfDocument, iqn: string): IetTarget | undefined {
  const chunk = doc.chunks.find((c) => c.kind === 'target' && sameIqn(c.iqn, iqn));
  return chunk ? parseIetTarget(chunk.text) : undefined;
}

/** Text that ends a chunk so the next one starts on its own line. */
function ensureNewline(chunks: IetChunk[]): void {
  const last = chunks[chunks.length - 1];
  if (last && !last.text.endsWith('\n')) chunks.push({ kind: 'text', text: '\n' });
}

/**
 * Replaces the target's stanza in place (ietd refuses duplicates, so later ones are
 * dropped), or appends it after a blank line. Nothing else changes.
 */
export function upsertIetTarget(doc: IetConfDocument, target: IetTarget): IetConfDocument {
  const stanza = buildIetTarget(target);
  const chunks: IetChunk[] = [];
  let placed = false;
  for (const c of doc.chunks) {
    if (c.kind === 'target' && sameIqn(c.iqn, target.iqn)) {
      if (!placed) {
        // The stanza may have been the file's last line without a newline.
        const text = c.text.endsWith('\n') ? stanza : stanza.slice(0, -1);
        chunks.push({ kind: 'target', iqn: target.iqn, text });
      }
      placed = true;
    } else {
      chunks.push(c);
    }
  }
  if (!placed) {
    ensureNewline(chunks);
    const before = formatIetConf({ chunks });
    if (before !== '' && !before.endsWith('\n\n')) chunks.push({ kind: 'text', text: '\n' });
    chunks.push({ kind: 'target', iqn: target.iqn, text: stanza });
  }
  return { chunks };
}

export function removeIetTarget(doc: IetConfDocument, iqn: string): IetConfDocument {
  return { chunks: doc.chunks.filter((c) => !(c.kind === 'target' && sameIqn(c.iqn, iqn))) };
}

// ---- from a TargetSpec --------------------------------------------------------------------

/** What goes into ietd.conf and initiators.allow for one target. */
export interface IetTargetConfig {
  target: IetTarget;
  /** Entries for this target's initiators.allow line (addresses, CIDRs, name patterns, ALL). */
  allow: string[];
}

/** An initiators.allow entry matching exactly this initiator name (ietd matches names as ^regex$). */
export function ietInitiatorPattern(iqn: string): string {
  return iqn.replace(/[.[\]*^$\\]/g, (c) => `\\${c}`);
}

/**
 * The IET form of a TargetSpec. IET numbers LUNs from 0 and requires LUN 0 (there is no
 * controller LUN as in tgt), so spec LUN N becomes IET Lun N-1, in ascending order.
 * IET has no CD-ROM device type, so a cdrom LUN is refused. Type is blockio for /dev
 * paths and fileio otherwise (a guess from the path; a backend that can stat the file
 * may override it).
 */
export function targetSpecToIet(spec: TargetSpec): IetTargetConfig {
  const target: IetTarget = { iqn: spec.iqn, luns: [], incomingUsers: [], params: [] };
  for (const l of [...spec.luns].sort((a, b) => a.lun - b.lun)) {
    requireInt('lun', l.lun, 1, 16385);
    if (l.cdrom) throw new ValidationError(`LUN ${l.lun} (${l.path}): IET cannot serve a CD-ROM (it has no MMC device type); use tgt or LIO`, 'cdrom');
    if (l.vendorId !== undefined || l.productId !== undefined) {
      throw new ValidationError(`LUN ${l.lun}: IET's ietd.conf has no vendor or product id setting`, 'vendorId');
    }
    const lun: IetLun = { lun: l.lun - 1, path: l.path, type: l.path.startsWith('/dev/') ? 'blockio' : 'fileio' };
    if (l.readonly) lun.ioMode = 'ro';
    if (l.serial !== undefined) lun.scsiSn = l.serial;
    target.luns.push(lun);
  }
  if (spec.allow.length === 0) {
    throw new ValidationError('no initiator is allowed; name an address, CIDR, IQN, or ALL for initiators.allow', 'allow');
  }
  const allow = spec.allow.map((a) => (classifyAllow(a) === 'name' ? ietInitiatorPattern(a) : a));
  if (spec.chap) {
    target.incomingUsers.push({ user: spec.chap.user, secret: spec.chap.secret });
    const { mutualUser, mutualSecret } = spec.chap;
    if ((mutualUser === undefined) !== (mutualSecret === undefined)) throw new ValidationError('mutual CHAP needs both a user and a secret', 'chap');
    if (mutualUser !== undefined && mutualSecret !== undefined) target.outgoingUser = { user: mutualUser, secret: mutualSecret };
  }
  validateIetTarget(target);
  return { target, allow };
}
