// The host's own iSCSI initiator (open-iscsi) as plans of steps over the iscsiadm driver:
// login = discovery -> node record -> CHAP -> login -> wait for the by-path devices;
// logout = logout -> delete the node record (pitfall 4's teardown order, after the disks
// are detached). "Already logged in" and "already gone" are done, not errors (pitfall 2).
import { ValidationError } from '../errors.js';
import { formatPortal, type Portal, samePortal } from '../names/portal.js';
import type { Step } from '../plan/plan.js';
import type { ChapCredentials, Iscsiadm, WaitOptions } from './iscsiadm.js';
import { parseIscsiName } from '../names/iscsi-name.js';

export interface LoginSpec {
  portal: Portal;
  target: string;
  chap?: ChapCredentials;
  /** LUNs whose by-path devices to wait for; default: every LUN the session shows. */
  luns?: number[];
  wait?: WaitOptions;
}

export interface LoginPlan {
  steps: Step[];
  /** The portal with its host resolved to an IP on the hypervisor. */
  portal: Portal;
  /** Filled in by the last step: the /dev/disk/by-path devices that appeared. */
  devices: string[];
}


export async function planLogin(iscsiadm: Iscsiadm, spec: LoginSpec): Promise<LoginPlan> {
  const target = parseIscsiName(spec.target, 'target');
  const portal = await iscsiadm.resolvePortal(spec.portal);
  const offered = await iscsiadm.discover(portal);
  const entry = offered.find((e) => e.iqn === target && samePortal(e.portal, portal));
  if (!entry) {
    const list = offered.map((e) => `${e.iqn} at ${formatPortal(e.portal)}`).join(', ') || 'nothing';
    throw new ValidationError(`portal ${formatPortal(portal)} does not offer target ${target}; discovery found ${list}`, 'target');
  }
  const where = `${target} at ${formatPortal(portal)}`;
  const plan: LoginPlan = { steps: [], portal, devices: [] };
  plan.steps.push({
    title: `create the open-iscsi node record for ${where}`,
    check: async () => (await iscsiadm.nodes()).some((n) => n.iqn === target && samePortal(n.portal, portal)),
    apply: () => iscsiadm.addNode(target, portal, entry.tpgt),
    undo: () => iscsiadm.deleteNode(target, portal),
  });
  const chap = spec.chap;
  if (chap) {
    plan.steps.push({
      title: `set CHAP user ${chap.user}${chap.mutualUser ? ` (mutual: ${chap.mutualUser})` : ''} on the node record`,
      apply: () => iscsiadm.setChap(target, portal, entry.tpgt, chap),
    });
  }
  plan.steps.push(
    {
      title: `log in to ${where}`,
      check: async () => (await iscsiadm.sessions()).some((s) => s.iqn === target && samePortal(s.portal, portal)),
      apply: () => iscsiadm.login(target, portal),
      undo: () => iscsiadm.logout(target, portal),
    },
    {
      title: `wait for the LUNs of ${where} in /dev/disk/by-path`,
      async apply() {
        const luns = spec.luns ?? (await iscsiadm.sessions()).filter((s) => s.iqn === target).flatMap((s) => s.devices.filter((d) => d.disk).map((d) => d.lun));
        for (const lun of luns) plan.devices.push(await iscsiadm.waitForDevice(target, portal, lun, spec.wait));
      },
    },
  );
  return plan;
}

export async function planLogout(iscsiadm: Iscsiadm, spec: { portal: Portal; target: string }): Promise<Step[]> {
  const target = parseIscsiName(spec.target, 'target');
  const portal = await iscsiadm.resolvePortal(spec.portal);
  const where = `${target} at ${formatPortal(portal)}`;
  return [
    {
      title: `log out of ${where}`,
      check: async () => !(await iscsiadm.sessions()).some((s) => s.iqn === target && samePortal(s.portal, portal)),
      apply: () => iscsiadm.logout(target, portal),
    },
    {
      title: `delete the open-iscsi node record for ${where}`,
      check: async () => !(await iscsiadm.nodes()).some((n) => n.iqn === target && samePortal(n.portal, portal)),
      apply: () => iscsiadm.deleteNode(target, portal),
    },
  ];
}
