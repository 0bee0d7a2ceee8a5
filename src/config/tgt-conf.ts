// tgt's targets.conf (read by tgt-admin through Perl Config::General), as a document of
// opaque text chunks and <target> blocks, so that editing one target leaves every other
// byte of the file alone.
//
// A block as tgt-admin reads it (from tgt's targets.conf.example):
//   <target iqn.2008-09.com.example:server.target5>
//       <direct-store /dev/sdd>
//           vendor_id VENDOR1
//           device-type cd
//           lun 1
//       </direct-store>
//       backing-store /dev/LVM/somedevice     # one-line form
//       initiator-address 192.168.100.1
//       incominguser user1 secretpass12
//       outgoinguser userA secretpassA
//   </target>
//
// Format quirks handled here:
// - Config::General drops everything after an unescaped '#' on any line, joins lines
//   ending in '\', unquotes values wrapped in '"', reads `key <<EOF` as a here-doc,
//   and splits a line at its first run of whitespace or '=' (whichever comes first).
// - tgt-admin pastes values into shell command lines run by system(): the path inside
//   double quotes, IQNs, users, secrets and addresses bare, and splits
//   `incominguser USER SECRET` at single spaces. So values are held to a small, safe
//   character set instead of being escaped (the format has no escaping that survives).
// - A target without any initiator-address is bound to ALL by tgt-admin.
// - tgt-admin skips a backing-store whose path is not an existing file ("does not exist")
//   unless the *target's* bs-type is rbd (or glfs): a per-LUN bs-type rbd is not enough.
//   So a target serving RBD images says `bs-type rbd` at target level, and serves RBD
//   images only (targetSpecToTgtConf).
// - tgt-admin pastes bsopts unquoted into its shell command line, where the ';' of
//   "conf=FILE;id=USER" would end the command: the value is written in single quotes,
//   which Config::General keeps (it strips double quotes only) and the shell removes.
import { ValidationError } from '../errors.js';
import type { TargetSpec } from '../model/target.js';
import { classifyAllow, parseIntToken, requireInt, requireMatch, show } from './conf-values.js';
import { sameIqn } from '../names/iscsi-name.js';

export type TgtStoreKind = 'backing-store' | 'direct-store';

/** Per-LUN (or, on the target, default-for-every-LUN) settings. */
export interface TgtLunParams {
  lun?: number;
  readonly?: boolean;
  /** tgtadm --device-type: disk, cd, tape, ssc, changer, pt, osd. */
  deviceType?: string;
  /** tgtadm --bstype: rdwr, aio, mmap, sg, rbd, ... */
  bsType?: string;
  /** tgtadm --bsopts, e.g. "conf=FILE;id=USER" for rbd. */
  bsOpts?: string;
  writeCache?: boolean;
  vendorId?: string;
  productId?: string;
  scsiSn?: string;
  /** Hex digits tgt builds the LUN's NAA designator (WWID) from. */
  scsiId?: string;
}

export interface TgtOption {
  key: string;
  value: string;
}

export interface TgtLun extends TgtLunParams {
  kind: TgtStoreKind;
  path: string;
  /** Options this model has no field for (mode_page, params, removable...), in file order. */
  extra: TgtOption[];
}

export interface TgtAccount {
  user: string;
  secret: string;
}

export interface TgtTarget extends TgtLunParams {
  iqn: string;
  luns: TgtLun[];
  initiatorAddresses: string[];
  initiatorNames: string[];
  incomingUsers: TgtAccount[];
  outgoingUser?: TgtAccount;
  /** Target options this model has no field for (controller_tid, MaxConnections...), in file order. */
  extra: TgtOption[];
}

// ---- values ---------------------------------------------------------------------------

// ',' is out too: tgtadm sends its arguments to tgtd as one "key=value,key=value" string,
// so a comma in a path or user name cuts it short (seen with tgt 1.0.85).
const SAFE_WORD = /^[A-Za-z0-9._:@+%/-][A-Za-z0-9._:@+%/=-]*$/;
const SAFE_WORD_TEXT = "letters, digits and . _ : @ + % / - = only, not starting with '=' (tgt-admin passes it through a shell)";
const IQN = /^(iqn|eui|naa)\.[A-Za-z0-9.:-]+$/;
const PATH = /^\/[\p{L}\p{N}._:@+%=~/-]*[\p{L}\p{N}._:@+%=~-]$/u;
const PATH_TEXT =
  "an absolute path of letters, digits and . _ : @ + % = ~ - / not ending in '/' (no spaces, ',', quotes, '#', '<', '>', '$' or shell characters)";
const RBD_SPEC = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*\/[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;
const RBD_SPEC_TEXT = 'POOL/IMAGE of letters, digits and . _ + -';
// No ',' (tgtadm's request separator), quotes, whitespace, '#' or '$'.
const BSOPTS = /^[A-Za-z0-9._:@+%/=;-]+$/;
const BSOPTS_TEXT = 'key=value pairs separated by \';\' of letters, digits and . _ : @ + % / = - (e.g. conf=/etc/ceph/ceph.conf;id=admin)';
const INQUIRY = /^[A-Za-z0-9._:@+%/=-](?:[A-Za-z0-9 ._:@+%/=-]*[A-Za-z0-9._:@+%/=-])?$/;
const INQUIRY_TEXT = "printable letters, digits, inner spaces and . _ : @ + % / = - (no ',', quotes or '#')";
const OPTION_KEY = /^[A-Za-z][A-Za-z0-9_-]*$/;
const OPTION_VALUE = /^[^\s"\\#<>=`$](?:[^\n\r\t\f\v\0"\\#<>`$]*[^\s"\\#<>`$])?$/;
const OPTION_VALUE_TEXT = "a value without newlines, quotes, '\\', '#', '<', '>', '$', '`' or a leading '='";

// tgt limits for SCSI inquiry strings (tgtd.h: VENDOR_ID_LEN, PRODUCT_ID_LEN, SCSI_SN_LEN).
const INQUIRY_MAX = { vendor_id: 8, product_id: 16, scsi_sn: 36, scsi_id: 36 } as const;

/** Keys the typed model owns, in the order the builder writes them. */
const LUN_KEYS = ['lun', 'device-type', 'readonly', 'scsi_sn', 'scsi_id', 'vendor_id', 'product_id', 'bs-type', 'bsopts', 'write-cache'] as const;
const TARGET_ONLY_KEYS = ['backing-store', 'direct-store', 'initiator-address', 'initiator-name', 'incominguser', 'outgoinguser'];
const OWNED_KEYS = new Set<string>([...LUN_KEYS, ...TARGET_ONLY_KEYS, 'target']);

function checkInquiry(field: keyof typeof INQUIRY_MAX, value: string): void {
  requireMatch(field, value, INQUIRY, INQUIRY_TEXT);
  if (value.length > INQUIRY_MAX[field]) {
    throw new ValidationError(`${field} ${show(value)} is longer than tgt's ${INQUIRY_MAX[field]} characters`, field);
  }
}

function checkParams(p: TgtLunParams, where: string): void {
  if (p.lun !== undefined) requireInt(`${where} lun`, p.lun, 1, 65535);
  if (p.deviceType !== undefined) requireMatch(`${where} device-type`, p.deviceType, /^(disk|cd|tape|ssc|changer|pt|osd)$/, 'disk, cd, tape, ssc, changer, pt or osd');
  if (p.bsType !== undefined) requireMatch(`${where} bs-type`, p.bsType, /^[a-z0-9_]+$/, 'a tgt backing store type such as rdwr or aio');
  if (p.bsOpts !== undefined) requireMatch(`${where} bsopts`, p.bsOpts, BSOPTS, BSOPTS_TEXT);
  if (p.vendorId !== undefined) checkInquiry('vendor_id', p.vendorId);
  if (p.productId !== undefined) checkInquiry('product_id', p.productId);
  if (p.scsiSn !== undefined) checkInquiry('scsi_sn', p.scsiSn);
  if (p.scsiId !== undefined) checkInquiry('scsi_id', p.scsiId);
}

function checkExtra(extra: readonly TgtOption[], where: string): void {
  for (const { key, value } of extra) {
    requireMatch(`${where} option name`, key, OPTION_KEY, 'a word of letters, digits, _ and -');
    if (OWNED_KEYS.has(key)) {
      throw new ValidationError(`${where} option ${show(key)} has its own field in the model; set that instead of an extra option`, key);
    }
    requireMatch(`${where} option ${key}`, value, OPTION_VALUE, OPTION_VALUE_TEXT);
  }
}

function checkAccount(kind: string, a: TgtAccount): void {
  requireMatch(`${kind} user`, a.user, SAFE_WORD, SAFE_WORD_TEXT);
  if (!SAFE_WORD.test(a.secret)) {
    // Never echo a secret: name the account instead.
    throw new ValidationError(`${kind} secret for user ${show(a.user)} is empty or has characters tgt-admin cannot pass on; expected ${SAFE_WORD_TEXT}`, 'secret');
  }
}

/** Refuses a target whose values would break targets.conf or tgt-admin's shell commands. */
export function validateTgtTarget(t: TgtTarget): void {
  requireMatch('target name', t.iqn, IQN, 'an iSCSI name (iqn./eui./naa. followed by letters, digits, . : -)');
  checkParams(t, 'target');
  for (const lun of t.luns) {
    if ((lun.bsType ?? t.bsType) === 'rbd') requireMatch(`${lun.kind} path`, lun.path, RBD_SPEC, RBD_SPEC_TEXT);
    else requireMatch(`${lun.kind} path`, lun.path, PATH, PATH_TEXT);
    checkParams(lun, `${lun.kind} ${lun.path}`);
    checkExtra(lun.extra, `${lun.kind} ${lun.path}`);
  }
  for (const a of t.initiatorAddresses) {
    requireMatch('initiator-address', a, SAFE_WORD, SAFE_WORD_TEXT);
    if (classifyAllow(a) === 'name') throw new ValidationError(`initiator-address ${show(a)} is an initiator name; put it in initiator-name`, 'initiator-address');
  }
  for (const n of t.initiatorNames) requireMatch('initiator-name', n, IQN, 'an iSCSI initiator name (iqn./eui./naa.)');
  for (const a of t.incomingUsers) checkAccount('incominguser', a);
  if (t.outgoingUser) checkAccount('outgoinguser', t.outgoingUser);
  checkExtra(t.extra, 'target');
}

// ---- build ----------------------------------------------------------------------------

function paramLines(p: TgtLunParams): string[] {
  const out: string[] = [];
  if (p.lun !== undefined) out.push(`lun ${p.lun}`);
  if (p.deviceType !== undefined) out.push(`device-type ${p.deviceType}`);
  if (p.readonly !== undefined) out.push(`readonly ${p.readonly ? 1 : 0}`);
  if (p.scsiSn !== undefined) out.push(`scsi_sn ${p.scsiSn}`);
  if (p.scsiId !== undefined) out.push(`scsi_id ${p.scsiId}`);
  if (p.vendorId !== undefined) out.push(`vendor_id ${p.vendorId}`);
  if (p.productId !== undefined) out.push(`product_id ${p.productId}`);
  if (p.bsType !== undefined) out.push(`bs-type ${p.bsType}`);
  if (p.bsOpts !== undefined) out.push(`bsopts '${p.bsOpts}'`);
  if (p.writeCache !== undefined) out.push(`write-cache ${p.writeCache ? 'on' : 'off'}`);
  return out;
}

/** One `<target IQN> ... </target>` block, ending in a newline. Validates first. */
export function buildTgtTarget(t: TgtTarget): string {
  validateTgtTarget(t);
  const lines = [`<target ${t.iqn}>`];
  for (const lun of t.luns) {
    const inner = [...paramLines(lun), ...lun.extra.map((o) => `${o.key} ${o.value}`)];
    if (inner.length === 0) {
      lines.push(`    ${lun.kind} ${lun.path}`);
    } else {
      lines.push(`    <${lun.kind} ${lun.path}>`, ...inner.map((l) => `        ${l}`), `    </${lun.kind}>`);
    }
  }
  lines.push(...paramLines(t).map((l) => `    ${l}`));
  for (const a of t.initiatorAddresses) lines.push(`    initiator-address ${a}`);
  for (const n of t.initiatorNames) lines.push(`    initiator-name ${n}`);
  for (const a of t.incomingUsers) lines.push(`    incominguser ${a.user} ${a.secret}`);
  if (t.outgoingUser) lines.push(`    outgoinguser ${t.outgoingUser.user} ${t.outgoingUser.secret}`);
  for (const o of t.extra) lines.push(`    ${o.key} ${o.value}`);
  lines.push('</target>');
  return `${lines.join('\n')}\n`;
}

// ---- parse one block --------------------------------------------------------------------

/** Config::General's split: at the first run of whitespace or `=`; a value in "..." is unquoted. */
function splitOption(line: string, where: string): TgtOption {
  const m = /^(\S+?)(?:\s*=\s*|\s+)(.*)$/.exec(line);
  if (!m || m[2] === '') throw new ValidationError(`${where}: option ${show(line)} has no value`, line);
  let value = m[2]!;
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  return { key: m[1]!, value };
}

function parseBool(key: string, value: string, yes: string, no: string, where: string): boolean {
  if (value === yes) return true;
  if (value === no) return false;
  throw new ValidationError(`${where}: ${key} ${show(value)} is not ${yes} or ${no}`, key);
}

/** Sets a typed field from `key value`; false when the key is not one the model owns. */
function applyParam(p: TgtLunParams, o: TgtOption, where: string): boolean {
  const set = <K extends keyof TgtLunParams>(field: K, v: TgtLunParams[K]): true => {
    if (p[field] !== undefined) throw new ValidationError(`${where}: ${o.key} is given more than once (tgt-admin refuses that)`, o.key);
    p[field] = v;
    return true;
  };
  switch (o.key) {
    case 'lun':
      return set('lun', parseIntToken('lun', o.value, where));
    case 'readonly':
      return set('readonly', parseBool('readonly', o.value, '1', '0', where));
    case 'write-cache':
      return set('writeCache', parseBool('write-cache', o.value, 'on', 'off', where));
    case 'device-type':
      return set('deviceType', o.value);
    case 'bs-type':
      return set('bsType', o.value);
    case 'bsopts':
      return set('bsOpts', o.value.replace(/^'(.*)'$/, '$1'));
    case 'vendor_id':
      return set('vendorId', o.value);
    case 'product_id':
      return set('productId', o.value);
    case 'scsi_sn':
      return set('scsiSn', o.value);
    case 'scsi_id':
      return set('scsiId', o.value);
    default:
      return false;
  }
}

function parseAccount(key: string, value: string, where: string): TgtAccount {
  const parts = value.split(' ');
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new ValidationError(`${where}: ${key} needs exactly "USER SECRET" separated by one space`, key);
  }
  return { user: parts[0], secret: parts[1] };
}

const BLOCK_OPEN = /^<(backing-store|direct-store)\s+(.+?)>$/;
const BLOCK_CLOSE = /^<\/(backing-store|direct-store)>$/;

/** Parses one `<target IQN> ... </target>` block (comments dropped). */
export function parseTgtTarget(block: string): TgtTarget {
  const raw = block.split('\n');
  let target: TgtTarget | undefined;
  let lun: TgtLun | undefined;
  let closed = false;
  for (let i = 0; i < raw.length; i++) {
    const where = `targets.conf block line ${i + 1}`;
    const original = raw[i]!;
    if (/(?<!\\)\\\s*$/.test(original.replace(/(?<!\\)#.*$/, ''))) {
      throw new ValidationError(`${where}: continued lines ('\\' at the end) are not supported in a target block`, 'line');
    }
    const line = original.replace(/(?<!\\)#.*$/, '').trim();
    if (line === '') continue;
    if (closed) throw new ValidationError(`${where}: text after </target>: ${show(line)}`, 'line');
    if (!target) {
      const m = /^<target\s+(.+?)>$/.exec(line);
      if (!m) throw new ValidationError(`${where}: expected <target NAME>, got ${show(line)}`, 'line');
      target = { iqn: m[1]!.replace(/^"(.*)"$/, '$1'), luns: [], initiatorAddresses: [], initiatorNames: [], incomingUsers: [], extra: [] };
      continue;
    }
    if (line === '</target>') {
      if (lun) throw new ValidationError(`${where}: <${lun.kind} ${lun.path}> is not closed`, 'line');
      closed = true;
      continue;
    }
    const open = BLOCK_OPEN.exec(line);
    if (open) {
      if (lun) throw new ValidationError(`${where}: <${open[1]}> inside <${lun.kind}>`, 'line');
      lun = { kind: open[1] as TgtStoreKind, path: open[2]!.replace(/^"(.*)"$/, '$1'), extra: [] };
      continue;
    }
    const close = BLOCK_CLOSE.exec(line);
    if (close) {
      if (!lun || lun.kind !== close[1]) throw new ValidationError(`${where}: ${show(line)} closes nothing`, 'line');
      target.luns.push(lun);
      lun = undefined;
      continue;
    }
    if (line.startsWith('<')) throw new ValidationError(`${where}: unsupported section ${show(line)}`, 'line');
    const o = splitOption(line, where);
    if (lun) {
      if (!applyParam(lun, o, where)) lun.extra.push(o);
      continue;
    }
    if (applyParam(target, o, where)) continue;
    switch (o.key) {
      case 'backing-store':
      case 'direct-store':
        target.luns.push({ kind: o.key, path: o.value, extra: [] });
        break;
      case 'initiator-address':
        target.initiatorAddresses.push(o.value);
        break;
      case 'initiator-name':
        target.initiatorNames.push(o.value);
        break;
      case 'incominguser':
        target.incomingUsers.push(parseAccount(o.key, o.value, where));
        break;
      case 'outgoinguser':
        if (target.outgoingUser) throw new ValidationError(`${where}: only one outgoinguser per target`, o.key);
        target.outgoingUser = parseAccount(o.key, o.value, where);
        break;
      default:
        target.extra.push(o);
    }
  }
  if (!target) throw new ValidationError('targets.conf block: no <target NAME> line', 'line');
  if (!closed) throw new ValidationError(`targets.conf block for ${show(target.iqn)}: no </target>`, 'line');
  return target;
}

// ---- the whole file -------------------------------------------------------------------

export type TgtChunk = { kind: 'text'; text: string } | { kind: 'target'; iqn: string; text: string };

/** A targets.conf as written: joining every chunk's text gives the file back byte for byte. */
export interface TgtConfDocument {
  chunks: TgtChunk[];
}

const TARGET_OPEN = /^\s*<target\s+("?)([^>"]+?)\1\s*>\s*(?:#.*)?$/;
const TARGET_CLOSE = /^\s*<\/target>\s*(?:#.*)?$/;

/**
 * Splits a targets.conf into target blocks and the text around them (comments, includes,
 * default-driver...). Target blocks are only located here; parseTgtTarget reads one, so
 * a target this tool cannot read never stops it from editing another.
 */
export function parseTgtConf(text: string): TgtConfDocument {
  const lines = text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const chunks: TgtChunk[] = [];
  let pending = '';
  for (let i = 0; i < lines.length; i++) {
    const open = TARGET_OPEN.exec(lines[i]!);
    if (!open) {
      pending += lines[i]!;
      continue;
    }
    let j = i;
    while (j < lines.length && !TARGET_CLOSE.test(lines[j]!)) j++;
    if (j === lines.length) throw new ValidationError(`targets.conf line ${i + 1}: <target ${open[2]}> has no </target>`, 'line');
    if (pending) chunks.push({ kind: 'text', text: pending });
    pending = '';
    chunks.push({ kind: 'target', iqn: open[2]!, text: lines.slice(i, j + 1).join('') });
    i = j;
  }
  if (pending) chunks.push({ kind: 'text', text: pending });
  return { chunks };
}

export function formatTgtConf(doc: TgtConfDocument): string {
  return doc.chunks.map((c) => c.text).join('');
}

/** iSCSI names compare case-insensitively (RFC 3720 3.2.6.1). */
export function listTgtTargets(doc: TgtConfDocument): string[] {
  return doc.chunks.flatMap((c) => (c.kind === 'target' ? [c.iqn] : []));
}

export function getTgtTarget(doc: TgtConfDocument, iqn: string): TgtTarget | undefined {
  const chunk = doc.chunks.find((c) => c.kind === 'target' && sameIqn(c.iqn, iqn));
  return chunk ? parseTgtTarget(chunk.text) : undefined;
}

/**
 * Replaces the target's block in place (later duplicates, which tgt-admin would merge
 * into it, are dropped), or appends it after a blank line. Nothing else changes.
 */
export function upsertTgtTarget(doc: TgtConfDocument, target: TgtTarget): TgtConfDocument {
  const block = buildTgtTarget(target);
  const chunks: TgtChunk[] = [];
  let placed = false;
  for (const c of doc.chunks) {
    if (c.kind === 'target' && sameIqn(c.iqn, target.iqn)) {
      if (!placed) chunks.push({ kind: 'target', iqn: target.iqn, text: block });
      placed = true;
    } else {
      chunks.push(c);
    }
  }
  if (!placed) {
    const before = formatTgtConf(doc);
    const sep = before === '' ? '' : before.endsWith('\n\n') ? '' : before.endsWith('\n') ? '\n' : '\n\n';
    if (sep) chunks.push({ kind: 'text', text: sep });
    chunks.push({ kind: 'target', iqn: target.iqn, text: block });
  }
  return { chunks };
}

/** Drops the target's block(s); removing a target that is not there is not an error. */
export function removeTgtTarget(doc: TgtConfDocument, iqn: string): TgtConfDocument {
  return { chunks: doc.chunks.filter((c) => !(c.kind === 'target' && sameIqn(c.iqn, iqn))) };
}

// ---- from a TargetSpec --------------------------------------------------------------------

/**
 * An initiator-address no initiator ever has (the unspecified IPv4 address). tgt-admin
 * binds ALL to a target block without any initiator-address, even one that allows
 * initiators by name, and tgtd lets in an initiator whose address OR name matches: so
 * a block allowing names only, or nobody yet, would open up to everyone at the next
 * start. This address keeps it closed (checked with tgt 1.0.85 and libiscsi).
 */
export const NO_INITIATOR_ADDRESS = '0.0.0.0/32';

/**
 * The targets.conf form of what `target create` sets up live: one <backing-store> section
 * per LUN, CD-ROMs as read-only `device-type cd`, ACLs by address or name, CHAP accounts.
 * A block that allows no address gets NO_INITIATOR_ADDRESS so it stays closed.
 */
export function targetSpecToTgtConf(spec: TargetSpec): TgtTarget {
  const target: TgtTarget = { iqn: spec.iqn, luns: [], initiatorAddresses: [], initiatorNames: [], incomingUsers: [], extra: [] };
  const seen = new Set<number>();
  const rbd = spec.luns.filter((l) => l.bsType === 'rbd').length;
  if (rbd > 0 && rbd < spec.luns.length) {
    throw new ValidationError(
      `target ${spec.iqn} mixes RBD images and files: tgt-admin reads bs-type rbd per target when it loads targets.conf, so serve them from separate targets`,
      'lun',
    );
  }
  if (rbd > 0) target.bsType = 'rbd';
  for (const l of spec.luns) {
    requireInt('lun', l.lun, 1, 65535);
    if (seen.has(l.lun)) throw new ValidationError(`lun ${l.lun} is given twice`, 'lun');
    seen.add(l.lun);
    const lun: TgtLun = { kind: 'backing-store', path: l.path, lun: l.lun, extra: [] };
    if (l.cdrom) lun.deviceType = 'cd';
    if (l.cdrom || l.readonly) lun.readonly = true;
    if (l.serial !== undefined) lun.scsiSn = l.serial;
    if (l.scsiId !== undefined) lun.scsiId = l.scsiId;
    if (l.vendorId !== undefined) lun.vendorId = l.vendorId;
    if (l.productId !== undefined) lun.productId = l.productId;
    if (l.bsType !== undefined && target.bsType === undefined) lun.bsType = l.bsType;
    if (l.bsOpts !== undefined) lun.bsOpts = l.bsOpts;
    target.luns.push(lun);
  }
  for (const a of spec.allow) {
    if (classifyAllow(a) === 'name') target.initiatorNames.push(a);
    else target.initiatorAddresses.push(a);
  }
  if (target.initiatorAddresses.length === 0) target.initiatorAddresses.push(NO_INITIATOR_ADDRESS);
  if (spec.chap) {
    target.incomingUsers.push({ user: spec.chap.user, secret: spec.chap.secret });
    const { mutualUser, mutualSecret } = spec.chap;
    if ((mutualUser === undefined) !== (mutualSecret === undefined)) {
      throw new ValidationError('mutual CHAP needs both a user and a secret', 'chap');
    }
    if (mutualUser !== undefined && mutualSecret !== undefined) target.outgoingUser = { user: mutualUser, secret: mutualSecret };
  }
  validateTgtTarget(target);
  return target;
}
