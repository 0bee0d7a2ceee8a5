// open-iscsi's session recovery settings on the sessions the hypervisor's host holds:
//   replacement_timeout  how long I/O waits for a lost session to come back before it fails
//                        (the guest then sees errors); single path: long enough to ride out a
//                        target restart or a storage host reboot.
//   noop_out_interval    how often the initiator pings the target on an idle connection,
//   noop_out_timeout     and how long a ping may go unanswered before the connection counts
//                        as lost (recovery starts, replacement_timeout runs).
// The node record holds them for the next login; a running session keeps what it logged in
// with, except the replacement timeout, which the kernel takes at once through sysfs.
import { ValidationError } from '../errors.js';
import { sameIqn } from '../names/iscsi-name.js';
import { formatPortal, samePortal, type Portal } from '../names/portal.js';
import type { Step } from '../plan/plan.js';
import type { Iscsiadm } from './iscsiadm.js';

export interface SessionSettings {
  /** Seconds (node.session.timeo.replacement_timeout). */
  replacementTimeout: number;
  /** Seconds (node.conn[0].timeo.noop_out_interval). */
  noopOutInterval: number;
  /** Seconds (node.conn[0].timeo.noop_out_timeout). */
  noopOutTimeout: number;
}

/** The node record key of each setting. */
export const SESSION_SETTING_KEYS: Readonly<Record<keyof SessionSettings, string>> = {
  replacementTimeout: 'node.session.timeo.replacement_timeout',
  noopOutInterval: 'node.conn[0].timeo.noop_out_interval',
  noopOutTimeout: 'node.conn[0].timeo.noop_out_timeout',
};

/** The flag (and stack key) that sets each one. */
export const SESSION_SETTING_FLAGS: Readonly<Record<keyof SessionSettings, string>> = {
  replacementTimeout: '--replacement-timeout',
  noopOutInterval: '--noop-out-interval',
  noopOutTimeout: '--noop-out-timeout',
};

/**
 * A single path (modes pool and block): open-iscsi's own defaults, written down so every
 * node record we make says them whatever the host's iscsid.conf says. 120 s covers a
 * target daemon restart or a storage host reboot without the guest seeing an error;
 * multipath wants 5-15 s instead, so a dead path fails over fast.
 */
export const SINGLE_PATH_SESSION: Readonly<SessionSettings> = { replacementTimeout: 120, noopOutInterval: 5, noopOutTimeout: 5 };

/**
 * One path of several (mode multipath): a lost session fails its I/O after 5 s, and
 * dm-multipath sends it down another path; a noop-out every 5 s, unanswered for 5 s, finds
 * a dead connection on an idle path.
 */
export const MULTIPATH_SESSION: Readonly<SessionSettings> = { replacementTimeout: 5, noopOutInterval: 5, noopOutTimeout: 5 };

/** The largest value open-iscsi reads (an int of seconds). */
const MAX_SECONDS = 2 ** 31 - 1;

export function checkSessionSettings(s: Partial<SessionSettings>): void {
  for (const k of Object.keys(SESSION_SETTING_KEYS) as Array<keyof SessionSettings>) {
    const v = s[k];
    if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > MAX_SECONDS)) {
      throw new ValidationError(`${SESSION_SETTING_FLAGS[k]} ${JSON.stringify(v)} is not a whole number of seconds, 1 or more`, SESSION_SETTING_FLAGS[k].slice(2));
    }
  }
}

/** The node record values, for loginSteps' `settings`. */
export function nodeSettings(s: SessionSettings): Record<string, string> {
  return Object.fromEntries((Object.keys(SESSION_SETTING_KEYS) as Array<keyof SessionSettings>).map((k) => [SESSION_SETTING_KEYS[k], String(s[k])]));
}

const describe = (s: SessionSettings): string => `replacement_timeout=${s.replacementTimeout}, noop_out_interval=${s.noopOutInterval}, noop_out_timeout=${s.noopOutTimeout}`;

async function sessionOf(iscsiadm: Iscsiadm, target: string, portal: Portal): Promise<number | undefined> {
  return (await iscsiadm.sessions()).find((x) => sameIqn(x.iqn, target) && samePortal(x.portal, portal))?.sid;
}

/**
 * After a login: the node record (`nodeRecord`: when someone else logged in, libvirt's
 * iscsi pool, which writes the record from iscsid.conf first) and the live session's
 * replacement timeout. Each looks first.
 */
export function sessionSettingsSteps(iscsiadm: Iscsiadm, target: string, portal: Portal, s: SessionSettings, o: { nodeRecord: boolean }): Step[] {
  const host = iscsiadm.runner.host;
  const dry = iscsiadm.runner.dryRun === true;
  const where = `${target} at ${formatPortal(portal)}`;
  const settings = Object.entries(nodeSettings(s));
  const steps: Step[] = [];
  if (o.nodeRecord) {
    steps.push({
      id: 'node-settings',
      host,
      title: `set ${describe(s)} on the node record of ${where} (the session's next login uses them)`,
      async check() {
        // A dry run has not started the pool whose login makes the record.
        if (dry && !(await iscsiadm.nodes()).some((n) => sameIqn(n.iqn, target) && samePortal(n.portal, portal))) return false;
        const rec = await iscsiadm.nodeRecord(target, portal);
        return settings.every(([k, v]) => rec.get(k) === v);
      },
      async apply() {
        for (const [k, v] of settings) await iscsiadm.updateNode(target, portal, k, v);
      },
    });
  }
  steps.push({
    id: 'session-timeout',
    host,
    title: `set the live session's replacement timeout of ${where} to ${s.replacementTimeout} s (sysfs recovery_tmo)`,
    async check() {
      const sid = await sessionOf(iscsiadm, target, portal);
      return sid !== undefined && (await iscsiadm.recoveryTimeout(sid)) === s.replacementTimeout;
    },
    async apply() {
      const sid = await sessionOf(iscsiadm, target, portal);
      if (sid === undefined) {
        if (dry) return; // the login that makes it was only recorded
        throw new ValidationError(`no session of ${where} on ${host} to set the replacement timeout on`, 'session');
      }
      await iscsiadm.setRecoveryTimeout(sid, s.replacementTimeout);
    },
  });
  return steps;
}

/** Where the node record or the live session differ from `s`, one line each (status). */
export async function sessionSettingsDrift(iscsiadm: Iscsiadm, target: string, portal: Portal, s: SessionSettings): Promise<string[]> {
  const host = iscsiadm.runner.host;
  const out: string[] = [];
  const nodes = await iscsiadm.nodes();
  if (nodes.some((n) => sameIqn(n.iqn, target) && samePortal(n.portal, portal))) {
    const rec = await iscsiadm.nodeRecord(target, portal);
    for (const [k, v] of Object.entries(nodeSettings(s))) {
      const seen = rec.get(k);
      if (seen !== v) out.push(`the node record of ${target} on ${host} has ${k} = ${seen ?? 'nothing'}, not ${v}`);
    }
  }
  const sid = await sessionOf(iscsiadm, target, portal);
  if (sid !== undefined) {
    const live = await iscsiadm.recoveryTimeout(sid);
    if (live !== undefined && live !== s.replacementTimeout) out.push(`the session of ${target} on ${host} waits ${live} s for a lost connection (recovery_tmo), not ${s.replacementTimeout}`);
  }
  return out;
}
