// Differences between a target as our record describes it and as tgtd runs it, with the
// steps that make the live target match the record. The record wins: it is what tgtd
// will load at its next start, and virt-iscsi never changes a target live without
// writing the record first, so a difference is a hand change (or a lost tgtd).
// CHAP secrets cannot be compared: tgtd never shows them, nor a LUN's bsopts (an rbd
// LUN's conf and client id).
import type { Step } from '../../plan/plan.js';
import { resolveLuns, type ResolvedLun } from './conf.js';
import type { TgtRecord } from './records.js';
import type { TgtShowLun, TgtShowTarget } from './show-parser.js';
import { accountSteps, bindStep, lunStep, removeLunStep, unbindAccountStep, unbindStep } from './steps.js';
import type { Tgtadm } from './tgtadm.js';

export interface Drift {
  /** One line per difference, for people. Empty when in sync. */
  details: string[];
  /** Applied in order, they make the live target match the record. */
  steps: Step[];
}

function lunDifferences(r: ResolvedLun, l: TgtShowLun): string[] {
  const d: string[] = [];
  if (l.backingPath !== r.path) d.push(`path ${l.backingPath ?? 'none'} (record: ${r.path})`);
  const liveCd = l.type === 'cd/dvd';
  if (liveCd !== (r.deviceType === 'cd')) d.push(`type ${l.type} (record: ${r.deviceType})`);
  if (l.readonly !== r.readonly) d.push(`${l.readonly ? 'read-only' : 'writable'} (record: ${r.readonly ? 'read-only' : 'writable'})`);
  if (r.scsiSn !== undefined && l.scsiSn !== r.scsiSn) d.push(`serial ${l.scsiSn} (record: ${r.scsiSn})`);
  if (r.bsType !== undefined && l.backingType !== r.bsType) d.push(`bs-type ${l.backingType} (record: ${r.bsType})`);
  return d;
}

/**
 * `globalAccounts`: every account tgtd knows (`--mode account`); a missing one is created
 * from the record's secret, an existing one is only bound.
 */
export function targetDrift(tgtadm: Tgtadm, rec: TgtRecord & { target: NonNullable<TgtRecord['target']> }, live: TgtShowTarget, globalAccounts: readonly string[]): Drift {
  const tid = live.tid;
  const details: string[] = [];
  const steps: Step[] = [];
  const want = resolveLuns(rec.target);
  const have = new Map(live.luns.filter((l) => l.lun !== 0).map((l) => [l.lun, l]));
  for (const r of want) {
    const l = have.get(r.lun);
    have.delete(r.lun);
    if (!l) {
      details.push(`LUN ${r.lun} (${r.path}) is in the record but not live`);
      steps.push(lunStep(tgtadm, tid, r));
      continue;
    }
    const d = lunDifferences(r, l);
    if (d.length > 0) {
      details.push(`LUN ${r.lun} differs: ${d.join(', ')}`);
      steps.push(removeLunStep(tgtadm, tid, l.lun, l.backingPath), lunStep(tgtadm, tid, r));
    }
  }
  for (const l of have.values()) {
    details.push(`LUN ${l.lun} (${l.backingPath ?? 'no backing store'}) is live but not in the record`);
    steps.push(removeLunStep(tgtadm, tid, l.lun, l.backingPath));
  }

  let wantAcls = [...rec.target.initiatorAddresses, ...rec.target.initiatorNames];
  // What tgt-admin does with a block that names no initiator-address at the next start.
  if (rec.kind === 'persistent' && rec.target.initiatorAddresses.length === 0) wantAcls = [...wantAcls, 'ALL'];
  for (const a of wantAcls.filter((a) => !live.acls.includes(a))) {
    details.push(`initiator ${a} is allowed in the record but not live`);
    steps.push(bindStep(tgtadm, tid, a));
  }
  for (const a of live.acls.filter((a) => !wantAcls.includes(a))) {
    details.push(`initiator ${a} is allowed live but not in the record`);
    steps.push(unbindStep(tgtadm, tid, a));
  }

  const accounts = (want: ReadonlyArray<{ user: string; secret: string }>, outgoing: boolean): void => {
    const liveUsers = live.accounts.filter((a) => a.outgoing === outgoing).map((a) => a.user);
    const kind = outgoing ? 'outgoing CHAP account' : 'CHAP account';
    for (const a of want.filter((a) => !liveUsers.includes(a.user))) {
      details.push(`${kind} ${a.user} is in the record but not bound live`);
      steps.push(...accountSteps(tgtadm, tid, a.user, globalAccounts.includes(a.user) ? undefined : a.secret, outgoing));
    }
    for (const u of liveUsers.filter((u) => !want.some((a) => a.user === u))) {
      details.push(`${kind} ${u} is bound live but not in the record`);
      steps.push(unbindAccountStep(tgtadm, tid, u, outgoing));
    }
  };
  accounts(rec.target.incomingUsers, false);
  accounts(rec.target.outgoingUser ? [rec.target.outgoingUser] : [], true);
  return { details, steps };
}
