// libvirt storage pools over an iSCSI target, as plans of steps (src/plan/plan.ts) so the
// export workflow can compose them. Create: CHAP secret -> define -> start -> autostart ->
// wait for the LUNs, each undone in reverse when a later one fails. Delete: destroy ->
// undefine -> what an iscsi pool's login left in open-iscsi -> the secret we made for it;
// whatever is already gone counts as done.
import { randomUUID } from 'node:crypto';
import { PrerequisiteError, TimeoutError, ValidationError } from '../errors.js';
import { DEFAULT_ISCSI_PORT, formatPortal, type Portal } from '../names/portal.js';
import type { Step } from '../plan/plan.js';
import { buildPool, parsePool, poolDef, type PoolDef, type PoolType } from '../xml/pool.js';
import { iscsiChapSecret, parseSecret, secretUsageName } from '../xml/secret.js';
import { Iscsiadm } from './iscsiadm.js';
import { isMissing } from './virsh-errors.js';
import type { VolListEntry } from './virsh-parse.js';
import type { Virsh } from './virsh.js';

export interface PoolSpec {
  name: string;
  type: PoolType;
  portal: Portal;
  /** The target IQN. */
  target: string;
  /** Required for iscsi-direct; for iscsi, libvirt logs in with this IQN instead of the host's. */
  initiator?: string;
  /** CHAP: the user, and the secret's value (it goes into a libvirt secret, never on argv). */
  chap?: { user: string; secret: string };
  autostart: boolean;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/** The usage name of the libvirt secret virt-iscsi makes for a pool's CHAP password. */
export const poolSecretUsage = (pool: string): string => `virt-iscsi-pool-${pool}`;
/** Written on that secret, so `pool delete` removes only secrets it made for this pool. */
export const poolSecretDescription = (pool: string): string => `virt-iscsi: CHAP for pool ${pool}`;

/** The pool document a spec describes (validated). */
export function poolDefFor(spec: PoolSpec): PoolDef {
  return poolDef({
    type: spec.type,
    name: spec.name,
    hosts: [{ name: spec.portal.host, port: spec.portal.port }],
    device: spec.target,
    initiator: spec.initiator,
    auth: spec.chap && { username: spec.chap.user, secret: { usage: poolSecretUsage(spec.name) } },
  });
}

/** What makes two definitions the same pool: everything but what libvirt fills in. */
function sourceOf(p: PoolDef): unknown {
  const { uuid: _u, capacity: _c, allocation: _a, available: _v, ...rest } = p;
  return rest;
}

const describe = (p: PoolDef): string => `${p.type} pool of ${p.device} at ${p.hosts.map((h) => formatPortal({ host: h.name, port: h.port ?? DEFAULT_ISCSI_PORT })).join(',')}`;

/**
 * Whether the pool is already defined as `want`: false when the name is free; throws when
 * the name belongs to a different pool (it is not ours to change).
 */
export async function poolDefined(virsh: Virsh, want: PoolDef): Promise<boolean> {
  const xml = await virsh.poolDumpXml(want.name);
  if (xml === undefined) return false;
  let have: PoolDef | undefined;
  try {
    have = parsePool(xml);
  } catch {
    /* not an iSCSI pool at all */
  }
  if (have && JSON.stringify(sourceOf(have)) === JSON.stringify(sourceOf(want))) return true;
  const what = have ? `an ${describe(have)}` : 'a pool that is not an iSCSI pool';
  throw new ValidationError(
    `pool name ${JSON.stringify(want.name)} is already used on ${virsh.where} by ${what}; pick another name, or delete that pool first (virt-iscsi pool delete ${want.name})`,
    'name',
  );
}

/**
 * pool-refresh until vol-list shows volumes (right after pool-start it can be empty,
 * pitfall 8). A dry run only prints the refresh: the pool it would create is not there.
 */
export async function waitForVolumes(virsh: Virsh, pool: string, what: string, o: WaitOptions = {}): Promise<VolListEntry[]> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await virsh.poolRefresh(pool);
    if (virsh.dryRun) return [];
    const vols = await virsh.volList(pool);
    if (vols.length > 0) return vols;
    if (Date.now() >= deadline) {
      throw new TimeoutError(
        `waited ${Math.round(timeoutMs / 1000)}s on ${virsh.where} for pool ${JSON.stringify(pool)} to list the LUNs of ${what} (pool-refresh, vol-list); does the target map LUNs to this initiator?`,
      );
    }
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 500));
  }
}

/** The steps of `pool create`. */
export function createPoolSteps(virsh: Virsh, spec: PoolSpec, wait: WaitOptions = {}): Step[] {
  const def = poolDefFor(spec);
  const name = def.name;
  const what = `${def.device} at ${formatPortal(spec.portal)}`;
  const steps: Step[] = [];
  const chap = spec.chap;
  if (chap) {
    const usage = poolSecretUsage(name);
    let created: string | undefined;
    steps.push({
      title: `define libvirt secret ${usage} for CHAP user ${chap.user} and set its value`,
      async apply() {
        const existing = await virsh.secretByUsage(usage);
        const uuid = existing?.uuid ?? (await virsh.secretDefine({ ...iscsiChapSecret({ usage, description: poolSecretDescription(name) }), uuid: randomUUID() }));
        if (!existing) created = uuid;
        await virsh.secretSetValue(uuid, chap.secret);
      },
      async undo() {
        if (created) await virsh.secretUndefine(created);
      },
    });
  }
  steps.push(
    {
      title: `define ${def.type} pool ${name} for ${what}`,
      check: () => poolDefined(virsh, def),
      apply: () => virsh.poolDefine(buildPool(def)),
      async undo() {
        await undefineIfThere(virsh, name);
        // A start that logged in (or failed to) left records in open-iscsi.
        if (def.type === 'iscsi') for (const s of openIscsiLeftovers(virsh, def)) if (!(await s.check!())) await s.apply();
      },
    },
    {
      title: `start pool ${name} (libvirt logs in to the target)`,
      check: async () => (await virsh.poolInfo(name))?.state === 'running',
      apply: () => virsh.poolStart(name),
      undo: () => virsh.poolDestroy(name),
    },
  );
  if (spec.autostart) {
    steps.push({
      title: `mark pool ${name} to start with libvirtd`,
      check: async () => (await virsh.poolInfo(name))?.autostart === true,
      apply: () => virsh.poolAutostart(name),
      undo: () => virsh.poolAutostart(name, false),
    });
  }
  steps.push({
    title: `wait for pool ${name} to list the target's LUNs`,
    apply: async () => void (await waitForVolumes(virsh, name, what, wait)),
  });
  return steps;
}

async function undefineIfThere(virsh: Virsh, name: string): Promise<void> {
  try {
    await virsh.poolUndefine(name);
  } catch (e) {
    if (!isMissing(e, 'pool')) throw e;
  }
}

/**
 * The steps of `pool delete`. Reads the pool first to find its CHAP secret; the secret is
 * removed only when virt-iscsi made it for this pool (its description says so). A pool
 * that is not an iSCSI pool is refused; a pool that is not there is already deleted.
 */
export async function deletePoolSteps(virsh: Virsh, name: string): Promise<Step[]> {
  const xml = await virsh.poolDumpXml(name);
  if (xml === undefined) return [];
  let def: PoolDef;
  try {
    def = parsePool(xml);
  } catch (e) {
    throw new ValidationError(`pool ${JSON.stringify(name)} on ${virsh.where} is not an iSCSI pool (${(e as Error).message}); leaving it alone`, 'name');
  }
  const steps: Step[] = [
    {
      title: `stop pool ${name}`,
      check: async () => (await virsh.poolInfo(name))?.state !== 'running',
      apply: () => virsh.poolDestroy(name),
    },
    {
      title: `undefine pool ${name}`,
      check: async () => (await virsh.poolInfo(name)) === undefined,
      apply: () => undefineIfThere(virsh, name),
    },
  ];
  if (def.type === 'iscsi') steps.push(...openIscsiLeftovers(virsh, def));
  const secret = await ownSecret(virsh, def);
  if (secret) {
    steps.push({
      title: `undefine libvirt secret ${secret.usage} (its CHAP password)`,
      check: async () => (await virsh.secretDumpXml(secret.uuid)) === undefined,
      apply: () => virsh.secretUndefine(secret.uuid),
    });
  }
  return steps;
}

const sameIqn = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** No open-iscsi on the host: it holds no node records or ifaces to clean up. */
async function unlessNoIscsiadm(fn: () => Promise<boolean>): Promise<boolean> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof PrerequisiteError) return true;
    throw e;
  }
}

/**
 * What libvirt's iscsi backend leaves in open-iscsi when the pool stops (seen in the lab,
 * libvirt 9.0): it logs out, but keeps the node records its discovery and login made, on
 * the default iface and, for a pool with an initiator name of its own, on the iface
 * `libvirt-iface-XXXXXXXX` it made for that name (pitfall 12). Removed so that deleting
 * the pool leaves open-iscsi as it was; the iface only when no other record uses it.
 */
function openIscsiLeftovers(virsh: Virsh, def: PoolDef): Step[] {
  const iscsiadm = new Iscsiadm(virsh.runner);
  const host = def.hosts[0]!;
  const given: Portal = { host: host.name, port: host.port ?? DEFAULT_ISCSI_PORT };
  let resolved: Portal | undefined;
  const portal = async (): Promise<Portal> => (resolved ??= await iscsiadm.resolvePortal(given));
  const steps: Step[] = [
    {
      title: `delete the open-iscsi node records the pool's login left for ${def.device} at ${formatPortal(given)}`,
      check: () => unlessNoIscsiadm(async () => {
        const p = await portal();
        return !(await iscsiadm.nodes()).some((n) => sameIqn(n.iqn, def.device) && n.portal.host === p.host && n.portal.port === p.port);
      }),
      apply: async () => iscsiadm.deleteNodeEverywhere(def.device, await portal()),
    },
  ];
  const initiator = def.initiator;
  if (initiator !== undefined) {
    const libvirtIfaces = async () => (await iscsiadm.ifaces()).filter((i) => i.name.startsWith('libvirt-iface-') && i.initiatorName === initiator);
    steps.push({
      title: `remove the iscsiadm iface libvirt made for initiator ${initiator} (unless another node record uses it)`,
      check: () => unlessNoIscsiadm(async () => (await libvirtIfaces()).length === 0),
      async apply() {
        for (const i of await libvirtIfaces()) await iscsiadm.deleteIfaceIfUnused(i.name);
      },
    });
  }
  return steps;
}

/** The pool's CHAP secret when virt-iscsi made it for this pool. */
async function ownSecret(virsh: Virsh, def: PoolDef): Promise<{ uuid: string; usage: string } | undefined> {
  const ref = def.auth?.secret;
  if (!ref) return undefined;
  const uuid = 'uuid' in ref ? ref.uuid : (await virsh.secretByUsage(ref.usage))?.uuid;
  const xml = uuid === undefined ? undefined : await virsh.secretDumpXml(uuid);
  if (uuid === undefined || xml === undefined) return undefined;
  const secret = parseSecret(xml);
  return secret.description === poolSecretDescription(def.name) ? { uuid, usage: secretUsageName(secret.usage) } : undefined;
}
