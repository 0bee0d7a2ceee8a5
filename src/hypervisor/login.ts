// The host's own iSCSI initiator (open-iscsi) as steps over the iscsiadm driver, one
// builder for every caller (`login`, `export` in block and multipath modes, `repair`):
// node record (from SendTargets discovery) -> its settings -> CHAP -> login -> the by-path
// devices, each checked for the LUN's serial. Logout takes the session, then the record,
// after the disks are detached: deleting a target an initiator is still logged in to leaves
// it retrying for ever. "Already logged in" and "already gone" are done, not errors.
import { ValidationError } from '../errors.js';
import { byPathFor } from '../names/by-path.js';
import { parseIscsiName, sameIqn } from '../names/iscsi-name.js';
import { formatPortal, samePortal, type Portal } from '../names/portal.js';
import type { Step } from '../plan/plan.js';
import { checkDeviceSerial, isBlockDevice } from './host.js';
import type { ChapCredentials, Iscsiadm, WaitOptions } from './iscsiadm.js';

export interface LoginSpec {
  target: string;
  /** The portal with its host resolved to an IP on the hypervisor (Iscsiadm.resolvePortal). */
  portal: Portal;
  /** The portal group discovery found; unset: discovered when the node step runs (the target may not exist before). */
  tpgt?: number;
  /** CHAP for the node record; a function when the secret is known only when the step runs. */
  chap?: ChapCredentials | (() => ChapCredentials);
  /** Set CHAP even when the record already names the user (the secret may have changed; iscsiadm never shows it). */
  chapReplace?: boolean;
  /** Node record values set before login, e.g. node.session.timeo.replacement_timeout. */
  settings?: Readonly<Record<string, string>>;
  /** LUNs whose by-path devices to wait for; default: every LUN the session shows. */
  luns?: number[];
  wait?: WaitOptions;
  /** The SCSI serial every device must carry before it is handed on (a stale device otherwise). */
  serial?: string;
  /** Each device as it is there (and checked). */
  onDevice?: (dev: string, lun: number) => void;
}

/**
 * The steps of one login. Each looks first: a record, session or device already there is
 * done (and the device still has its serial checked).
 */
export function loginSteps(iscsiadm: Iscsiadm, spec: LoginSpec): Step[] {
  const target = parseIscsiName(spec.target, 'target');
  const portal = spec.portal;
  const host = iscsiadm.runner.host;
  const dry = iscsiadm.runner.dryRun === true;
  const where = `${target} at ${formatPortal(portal)}`;
  let tpgt = spec.tpgt ?? 1;
  let loggedInNow = false;
  const node = async () => (await iscsiadm.nodes()).find((n) => sameIqn(n.iqn, target) && samePortal(n.portal, portal));
  const steps: Step[] = [
    {
      id: 'node',
      host,
      title: `create the open-iscsi node record for ${where}`,
      async check() {
        const n = await node();
        if (n) tpgt = n.tpgt;
        return n !== undefined;
      },
      async apply() {
        // A dry run cannot discover a target it has not created: tgt's and LIO's first portal group is 1.
        if (spec.tpgt === undefined && !dry) {
          const offered = await iscsiadm.discover(portal);
          const entry = offered.find((e) => sameIqn(e.iqn, target) && samePortal(e.portal, portal));
          if (!entry) {
            const list = offered.map((e) => `${e.iqn} at ${formatPortal(e.portal)}`).join(', ') || 'nothing';
            throw new ValidationError(`portal ${formatPortal(portal)} does not offer target ${target} to ${host}; SendTargets discovery found ${list}`, 'portal');
          }
          tpgt = entry.tpgt;
        }
        await iscsiadm.addNode(target, portal, tpgt);
      },
      undo: () => iscsiadm.deleteNode(target, portal),
    },
  ];
  const settings = Object.entries(spec.settings ?? {});
  if (settings.length > 0) {
    steps.push({
      id: 'node-settings',
      host,
      title: `set ${settings.map(([k, v]) => `${k.replace(/^node\.(session|conn\[0\])\./, '')}=${v}`).join(', ')} on the node record`,
      check: async () => {
        if (dry && !(await node())) return false;
        const rec = await iscsiadm.nodeRecord(target, portal);
        return settings.every(([k, v]) => rec.get(k) === v);
      },
      async apply() {
        for (const [k, v] of settings) await iscsiadm.updateNode(target, portal, k, v);
      },
    });
  }
  const chapSpec = spec.chap;
  if (chapSpec) {
    const chap = (): ChapCredentials => (typeof chapSpec === 'function' ? chapSpec() : chapSpec);
    const user = typeof chapSpec === 'function' ? undefined : chapSpec.user;
    steps.push({
      id: 'node-chap',
      host,
      title: `set CHAP${user ? ` user ${user}` : ''} on the node record`,
      check: async () => {
        if (spec.chapReplace || (dry && !(await node()))) return false;
        const rec = await iscsiadm.nodeRecord(target, portal);
        const want = chap();
        return rec.get('node.session.auth.authmethod') === 'CHAP' && rec.get('node.session.auth.username') === want.user && (rec.get('node.session.auth.username_in') ?? '') === (want.mutualUser ?? '');
      },
      apply: () => iscsiadm.setChap(target, portal, tpgt, chap()),
    });
  }
  steps.push(
    {
      id: 'login',
      host,
      title: `log in to ${where}`,
      check: async () => (await iscsiadm.sessions()).some((s) => sameIqn(s.iqn, target) && samePortal(s.portal, portal)),
      apply: async () => {
        await iscsiadm.login(target, portal);
        loggedInNow = true;
      },
      undo: () => iscsiadm.logout(target, portal),
    },
    {
      id: 'device',
      host,
      title: `wait for the ${spec.luns?.length === 1 ? `LUN ${spec.luns[0]}` : 'LUNs'} of ${where} in /dev/disk/by-path${spec.serial ? ` and check serial ${spec.serial}` : ''}`,
      async check() {
        if (loggedInNow || !spec.luns) return false;
        for (const lun of spec.luns) if (!(await isBlockDevice(iscsiadm.runner, byPathFor(portal, target, lun)))) return false;
        for (const lun of spec.luns) await handOn(byPathFor(portal, target, lun), lun);
        return true;
      },
      async apply() {
        const luns = spec.luns ?? (await iscsiadm.sessions()).filter((s) => sameIqn(s.iqn, target)).flatMap((s) => s.devices.filter((d) => d.disk).map((d) => d.lun));
        for (const lun of luns) await handOn(await iscsiadm.waitForDevice(target, portal, lun, spec.wait), lun);
      },
    },
  );
  async function handOn(dev: string, lun: number): Promise<void> {
    if (spec.serial !== undefined) await checkDeviceSerial(iscsiadm.runner, dev, spec.serial);
    spec.onDevice?.(dev, lun);
  }
  return steps;
}

/** Logout, then the node record; each already gone is done. */
export function logoutSteps(iscsiadm: Iscsiadm, spec: { target: string; portal: Portal; sessionOnly?: false }): Step[] {
  const target = parseIscsiName(spec.target, 'target');
  const portal = spec.portal;
  const host = iscsiadm.runner.host;
  const where = `${target} at ${formatPortal(portal)}`;
  return [
    {
      id: 'logout',
      host,
      title: `log out of ${where}`,
      check: async () => !(await iscsiadm.sessions()).some((s) => sameIqn(s.iqn, target) && samePortal(s.portal, portal)),
      apply: () => iscsiadm.logout(target, portal),
    },
    nodeDeleteStep(iscsiadm, target, portal),
  ];
}

/** The node record alone (what an iscsi pool's login leaves behind once the pool is gone). */
export function nodeDeleteStep(iscsiadm: Iscsiadm, target: string, portal: Portal): Step {
  return {
    id: 'node-delete',
    host: iscsiadm.runner.host,
    title: `delete the open-iscsi node record for ${target} at ${formatPortal(portal)}`,
    check: async () => !(await iscsiadm.nodes()).some((n) => sameIqn(n.iqn, target) && samePortal(n.portal, portal)),
    apply: () => iscsiadm.deleteNode(target, portal),
  };
}

/** `virt-iscsi login`: discovery first, so a target the portal does not offer fails before anything changes. */
export async function planLogin(iscsiadm: Iscsiadm, spec: Omit<LoginSpec, 'tpgt'>): Promise<{ steps: Step[]; portal: Portal; devices: string[] }> {
  const target = parseIscsiName(spec.target, 'target');
  const portal = await iscsiadm.resolvePortal(spec.portal);
  const offered = await iscsiadm.discover(portal);
  const entry = offered.find((e) => sameIqn(e.iqn, target) && samePortal(e.portal, portal));
  if (!entry) {
    const list = offered.map((e) => `${e.iqn} at ${formatPortal(e.portal)}`).join(', ') || 'nothing';
    throw new ValidationError(`portal ${formatPortal(portal)} does not offer target ${target}; discovery found ${list}`, 'target');
  }
  const devices: string[] = [];
  const steps = loginSteps(iscsiadm, { ...spec, target, portal, tpgt: entry.tpgt, chapReplace: true, onDevice: (dev) => devices.push(dev) });
  return { steps, portal, devices };
}

/** `virt-iscsi logout`. */
export async function planLogout(iscsiadm: Iscsiadm, spec: { portal: Portal; target: string }): Promise<Step[]> {
  return logoutSteps(iscsiadm, { target: spec.target, portal: await iscsiadm.resolvePortal(spec.portal) });
}
