// Plan steps that set a target up live with tgtadm, each with the undo that takes it back,
// in the order that keeps initiators out until the target is complete: target, LUNs,
// CHAP accounts, and the ACLs that let initiators in last.
import { classifyAllow } from '../../config/conf-values.js';
import type { TgtTarget } from '../../config/tgt-conf.js';
import type { Step } from '../../plan/plan.js';
import { resolveLuns, type ResolvedLun } from './conf.js';
import { sessionParams } from './session-params.js';
import type { Tgtadm } from './tgtadm.js';

/** The target, with the session parameters its block sets (src/storage/tgt/session-params.ts). */
export function targetStep(tgtadm: Tgtadm, tid: number, t: TgtTarget): Step {
  const params = sessionParams(t);
  return {
    title: `create target ${t.iqn} as tid ${tid}${params.length ? ` (${params.map((p) => `${p.key}=${p.value}`).join(', ')})` : ''}`,
    async apply() {
      await tgtadm.newTarget(tid, t.iqn);
      for (const p of params) await tgtadm.updateTarget(tid, p.key, p.value);
    },
    // Forced: nobody can be logged in to a target whose ACLs are not bound yet.
    undo: () => tgtadm.deleteTarget(tid, { force: true }),
  };
}

function describe(l: ResolvedLun): string {
  const notes = [l.deviceType === 'cd' ? 'CD-ROM' : '', l.readonly ? 'read-only' : '', l.bsType ? `bs-type ${l.bsType}` : ''].filter(Boolean);
  return `${l.path}${notes.length ? ` (${notes.join(', ')})` : ''}`;
}

/**
 * tgtadm takes device and backing-store type at creation but readonly and the inquiry
 * values only as a later update, so one step does both; a LUN added to a target that
 * initiators can already reach (sync) is writable for that moment.
 */
export function lunStep(tgtadm: Tgtadm, tid: number, l: ResolvedLun): Step {
  return {
    title: `add LUN ${l.lun} to tid ${tid}: ${describe(l)}`,
    async apply() {
      await tgtadm.newLun(tid, l.lun, l.path, { deviceType: l.deviceType === 'cd' ? 'cd' : undefined, bsType: l.bsType, bsOpts: l.bsOpts });
      await tgtadm.updateLun(tid, l.lun, {
        readonly: l.readonly ? true : undefined,
        scsi_sn: l.scsiSn,
        scsi_id: l.scsiId,
        vendor_id: l.vendorId,
        product_id: l.productId,
      });
    },
    undo: () => tgtadm.deleteLun(tid, l.lun),
  };
}

export function removeLunStep(tgtadm: Tgtadm, tid: number, lun: number, path: string | undefined): Step {
  return { title: `remove LUN ${lun} (${path ?? 'no backing store'}) from tid ${tid}`, apply: () => tgtadm.deleteLun(tid, lun) };
}

export function accountSteps(tgtadm: Tgtadm, tid: number, user: string, secret: string | undefined, outgoing: boolean): Step[] {
  const what = outgoing ? 'mutual CHAP (outgoing) account' : 'CHAP account';
  const steps: Step[] = [];
  if (secret !== undefined) {
    steps.push({ title: `create ${what} ${user}`, apply: () => tgtadm.newAccount(user, secret), undo: () => tgtadm.deleteAccount(user) });
  }
  steps.push({
    title: `bind ${what} ${user} to tid ${tid}`,
    apply: () => tgtadm.bindAccount(tid, user, outgoing),
    undo: () => tgtadm.unbindAccount(tid, user, outgoing),
  });
  return steps;
}

export function unbindAccountStep(tgtadm: Tgtadm, tid: number, user: string, outgoing: boolean): Step {
  return { title: `unbind ${outgoing ? 'outgoing ' : ''}CHAP account ${user} from tid ${tid}`, apply: () => tgtadm.unbindAccount(tid, user, outgoing) };
}

export function aclKind(value: string): 'address' | 'name' {
  return classifyAllow(value) === 'name' ? 'name' : 'address';
}

export function bindStep(tgtadm: Tgtadm, tid: number, value: string): Step {
  const kind = aclKind(value);
  return {
    title: `allow initiator ${kind === 'name' ? 'name' : 'address'} ${value} on tid ${tid}`,
    apply: () => tgtadm.bind(tid, kind, value),
    undo: () => tgtadm.unbind(tid, kind, value),
  };
}

export function unbindStep(tgtadm: Tgtadm, tid: number, value: string): Step {
  const kind = aclKind(value);
  return { title: `disallow initiator ${value} on tid ${tid}`, apply: () => tgtadm.unbind(tid, kind, value) };
}

/**
 * Everything after the target itself: LUNs, CHAP accounts (created, unless listed in
 * `existingAccounts`, and bound), ACLs.
 */
export function contentSteps(tgtadm: Tgtadm, tid: number, t: TgtTarget, existingAccounts: readonly string[] = []): Step[] {
  const secret = (a: { user: string; secret: string }): string | undefined => (existingAccounts.includes(a.user) ? undefined : a.secret);
  return [
    ...resolveLuns(t).map((l) => lunStep(tgtadm, tid, l)),
    ...t.incomingUsers.flatMap((a) => accountSteps(tgtadm, tid, a.user, secret(a), false)),
    ...(t.outgoingUser ? accountSteps(tgtadm, tid, t.outgoingUser.user, secret(t.outgoingUser), true) : []),
    ...[...t.initiatorAddresses, ...t.initiatorNames].map((a) => bindStep(tgtadm, tid, a)),
  ];
}
