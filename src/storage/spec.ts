// Checks on a TargetSpec that hold for every backend, done before anything runs, so bad
// input changes nothing. Secrets are never echoed: errors name the user instead.
import { ValidationError } from '../errors.js';
import { classifyAllow } from '../config/conf-values.js';
import { parseIscsiName } from '../names/iscsi-name.js';
import type { ChapSpec, CreateOptions, LunSpec, TargetSpec } from './backend.js';
import { BACKINGS, backingKind, RBD_BS_TYPE } from './backing.js';
import { parseRbdBsOpts } from './rbd/client.js';

/** Most initiators (open-iscsi, Windows, VMware) refuse CHAP secrets outside 12-16 characters. */
export const CHAP_SECRET_MIN = 12;
export const CHAP_SECRET_MAX = 16;
/** SAM allows 16384 LUNs per target with flat addressing; tgt takes larger numbers but initiators do not. */
export const LUN_MAX = 16383;

const show = (v: unknown): string => JSON.stringify(v);

function checkLun(l: LunSpec, seen: Map<number, string>, paths: Set<string>): LunSpec {
  if (!Number.isInteger(l.lun) || l.lun < 0 || l.lun > LUN_MAX) {
    throw new ValidationError(`LUN ${show(l.lun)} is not a LUN number: expected 1 to ${LUN_MAX}`, 'lun');
  }
  if (l.lun === 0) throw new ValidationError('LUN 0 is the target controller: number image LUNs from 1', 'lun');
  const other = seen.get(l.lun);
  if (other !== undefined) throw new ValidationError(`LUN ${l.lun} is given twice (${show(other)} and ${show(l.path)})`, 'lun');
  seen.set(l.lun, l.path);
  const path = BACKINGS[backingKind(l)].checkPath(l);
  if (l.bsOpts !== undefined) {
    if (l.bsType !== RBD_BS_TYPE) throw new ValidationError(`LUN ${l.lun}: bs-opts ${show(l.bsOpts)} are only taken with bs-type ${RBD_BS_TYPE}`, 'lun');
    parseRbdBsOpts(l.bsOpts);
  }
  if (paths.has(path)) throw new ValidationError(`image ${show(path)} is given for two LUNs`, 'lun');
  paths.add(path);
  const out: LunSpec = { ...l, path };
  // A CD is read-only whatever was asked: initiators must not write to an ISO.
  if (l.cdrom) out.readonly = true;
  return out;
}

function checkSecret(kind: string, user: string, secret: string, o: CreateOptions): void {
  if (typeof secret !== 'string' || secret.length === 0) throw new ValidationError(`${kind} secret for user ${show(user)} is empty`, 'chap');
  if (/[\s]/.test(secret)) throw new ValidationError(`${kind} secret for user ${show(user)} contains whitespace`, 'chap');
  if (!o.anySecretLength && (secret.length < CHAP_SECRET_MIN || secret.length > CHAP_SECRET_MAX)) {
    throw new ValidationError(
      `${kind} secret for user ${show(user)} has ${secret.length} characters; most initiators need ${CHAP_SECRET_MIN} to ${CHAP_SECRET_MAX} (force to accept it)`,
      'chap',
    );
  }
}

function checkChap(c: ChapSpec, o: CreateOptions): ChapSpec {
  if (typeof c.user !== 'string' || c.user.length === 0) throw new ValidationError('CHAP user name is empty', 'chap');
  checkSecret('CHAP', c.user, c.secret, o);
  if ((c.mutualUser === undefined) !== (c.mutualSecret === undefined)) {
    throw new ValidationError('mutual CHAP needs both a user and a secret', 'chap');
  }
  if (c.mutualUser !== undefined && c.mutualSecret !== undefined) {
    if (c.mutualUser.length === 0) throw new ValidationError('mutual CHAP user name is empty', 'chap');
    // tgt and LIO keep one secret per user name, so the two directions need two names.
    if (c.mutualUser === c.user) throw new ValidationError(`mutual CHAP user ${show(c.mutualUser)} must differ from the CHAP user`, 'chap');
    checkSecret('mutual CHAP', c.mutualUser, c.mutualSecret, o);
    // RFC 7143 12.1.3: a secret that authenticates initiators must not authenticate targets.
    if (c.mutualSecret === c.secret) throw new ValidationError('the mutual CHAP secret must differ from the CHAP secret (RFC 7143 12.1.3)', 'chap');
  }
  return { ...c };
}

/**
 * The spec with names normalised (lower-case IQNs), CD LUNs made read-only, every value
 * checked; throws a one-line ValidationError on the first problem.
 */
export function normalizeTargetSpec(spec: TargetSpec, options: CreateOptions = {}): TargetSpec {
  const iqn = parseIscsiName(spec.iqn, 'target name');
  if (spec.luns.length === 0) throw new ValidationError(`target ${show(spec.iqn)} has no LUN: give at least one (LUN 1 and up)`, 'lun');
  const seen = new Map<number, string>();
  const paths = new Set<string>();
  const luns = spec.luns.map((l) => checkLun(l, seen, paths));
  const allow: string[] = [];
  for (const a of spec.allow) {
    const v = classifyAllow(a) === 'name' ? parseIscsiName(a, 'allowed initiator') : a;
    if (!allow.includes(v)) allow.push(v);
  }
  if (spec.tid !== undefined && (!Number.isInteger(spec.tid) || spec.tid < 1 || spec.tid > 0x7fffffff)) {
    throw new ValidationError(`target id ${show(spec.tid)} is not a positive integer`, 'tid');
  }
  const out: TargetSpec = { iqn, luns, allow, persist: spec.persist };
  if (spec.chap) out.chap = checkChap(spec.chap, options);
  if (spec.tid !== undefined) out.tid = spec.tid;
  if (spec.export !== undefined) {
    // It lands in a comment of tgt's conf.d file: the export name's own characters only.
    if (!/^[a-z0-9][a-z0-9.-]{0,47}$/.test(spec.export)) throw new ValidationError(`export name ${show(spec.export)} is not one an export has`, 'name');
    out.export = spec.export;
  }
  return out;
}
