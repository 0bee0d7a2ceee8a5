// libvirt storage pools over an iSCSI target, as plans of steps (src/plan/plan.ts) so the
// export workflow can compose them. Create: CHAP secret -> define -> start -> autostart ->
// wait for the LUNs, each undone in reverse when a later one fails. Delete: destroy ->
// undefine -> what an iscsi pool's login left in open-iscsi -> the secret we made for it;
// whatever is already gone counts as done.
import { PrerequisiteError, TimeoutError, ValidationError } from '../errors.js';
import { DEFAULT_ISCSI_PORT, formatPortal, type Portal } from '../names/portal.js';
import { byPathFor } from '../names/by-path.js';
import { sleep, type Step } from '../plan/plan.js';
import { buildPool, parsePool, poolDef, type PoolDef, type PoolType } from '../xml/pool.js';
import { parseSecret, secretUsageName } from '../xml/secret.js';
import { Iscsiadm } from './iscsiadm.js';
import { isMissing } from './virsh-errors.js';
import { secretStep } from './secret-steps.js';
import type { PoolListEntry, VolListEntry } from './virsh-parse.js';
import type { Virsh } from './virsh.js';
import { sameIqn } from '../names/iscsi-name.js';

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
  /** Stops the wait at once (Ctrl-C). */
  signal?: AbortSignal;
  /** Keep waiting until the volumes listed pass this (e.g. a given LUN is among them). */
  until?: (vols: readonly VolListEntry[]) => boolean;
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
 * pool-refresh until vol-list shows volumes (right after pool-start it can be empty). A
 * dry run only prints the refresh: the pool it would create is not there.
 */
export async function waitForVolumes(virsh: Virsh, pool: string, what: string, o: WaitOptions = {}): Promise<VolListEntry[]> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await virsh.poolRefresh(pool);
    if (virsh.dryRun) return [];
    const vols = await virsh.volList(pool);
    if (vols.length > 0 && (o.until === undefined || o.until(vols))) return vols;
    if (Date.now() >= deadline) {
      throw new TimeoutError(
        `waited ${Math.round(timeoutMs / 1000)}s on ${virsh.where} for pool ${JSON.stringify(pool)} to list the LUNs of ${what} (pool-refresh, vol-list); does the target map LUNs to this initiator?`,
      );
    }
    await sleep(o.intervalMs ?? 500, o.signal);
  }
}

/** unit:0:0:1 -> 1: libvirt names iSCSI volumes by their SCSI address. */
export function volumeLun(name: string): number | undefined {
  const m = /:(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export interface PoolStepsOptions {
  autostart: boolean;
  wait?: WaitOptions;
  /**
   * The pool as `pool-list` showed it before the plan ran, so the steps need not look
   * again: null when it was not there. Undefined: each step looks.
   */
  known?: PoolListEntry | null;
  /** Wait for this LUN's volume (default: any volume) and hand it to `onVolume`. */
  lun?: number;
  onVolume?: (vol: VolListEntry) => Promise<void> | void;
}

/**
 * The one builder of a pool's steps: define -> start -> autostart -> its volumes, each
 * looking first, each undone in reverse. An iscsi pool's start logs the host in; undone,
 * the node records that login left are removed too.
 */
export function poolSteps(virsh: Virsh, def: PoolDef, o: PoolStepsOptions): Step[] {
  const name = def.name;
  const host = virsh.runner.host;
  const what = `${def.device} at ${def.hosts.map((h) => formatPortal({ host: h.name, port: h.port ?? DEFAULT_ISCSI_PORT })).join(',')}`;
  const info = async (): Promise<{ state: string; autostart: boolean } | undefined> => (o.known !== undefined ? (o.known ?? undefined) : virsh.poolInfo(name));
  // A pool this run starts is waited for; one already running is looked at once.
  let startedNow = false;
  const ours = (vols: readonly VolListEntry[]): VolListEntry | undefined => (o.lun === undefined ? vols[0] : vols.find((v) => volumeLun(v.name) === o.lun));
  const steps: Step[] = [
    {
      id: 'pool-define',
      host,
      title: `define ${def.type} pool ${name} for ${what}`,
      check: async () => o.known !== null && (await poolDefined(virsh, def)),
      apply: () => virsh.poolDefine(buildPool(def)),
      async undo() {
        await undefineIfThere(virsh, name);
        // A start that logged in (or failed to) left records in open-iscsi.
        if (def.type === 'iscsi') for (const s of openIscsiLeftovers(virsh, def)) if (!(await s.check!())) await s.apply();
      },
    },
    {
      id: 'pool-start',
      host,
      title: `start pool ${name} (${def.type === 'iscsi' ? "the host's open-iscsi logs in" : 'libvirt logs in'}${def.initiator ? ` as ${def.initiator}` : ''})`,
      check: async () => (await info())?.state === 'running',
      apply: async () => {
        await virsh.poolStart(name);
        startedNow = true;
      },
      undo: () => virsh.poolDestroy(name),
    },
  ];
  if (o.autostart) {
    steps.push({
      id: 'pool-autostart',
      host,
      title: `mark pool ${name} to start with libvirtd`,
      check: async () => (await info())?.autostart === true,
      apply: () => virsh.poolAutostart(name),
      undo: () => virsh.poolAutostart(name, false),
    });
  }
  steps.push({
    id: 'volume',
    host,
    title: `wait for ${o.lun === undefined ? "the target's LUNs" : `LUN ${o.lun}`} in pool ${name}`,
    async check() {
      if (startedNow || (await info())?.state !== 'running') return false;
      const vol = ours(await virsh.volList(name));
      if (!vol) return false;
      await o.onVolume?.(vol);
      return true;
    },
    async apply() {
      // Listed already (libvirt scans at pool-start), or refreshed until they are.
      const listed = virsh.dryRun ? [] : await virsh.volList(name);
      const vols = ours(listed) ? listed : await waitForVolumes(virsh, name, what, { ...o.wait, until: (v) => ours(v) !== undefined });
      // A dry run created nothing to list: the volume is named as libvirt would name it.
      const vol = virsh.dryRun ? plannedVolume(def, o.lun ?? 1) : ours(vols);
      if (!vol) throw new ValidationError(`pool ${name} on ${virsh.where} lists ${vols.map((v) => v.name).join(', ')} but no volume for LUN ${o.lun}`, 'lun');
      await o.onVolume?.(vol);
    },
  });
  return steps;
}

/** What libvirt will list for a LUN of a pool that a dry run only planned. */
function plannedVolume(def: PoolDef, lun: number): VolListEntry {
  const h = def.hosts[0]!;
  return { name: `unit:0:0:${lun}`, path: byPathFor({ host: h.name, port: h.port ?? DEFAULT_ISCSI_PORT }, def.device, lun), type: 'block', capacityText: '' };
}

/** The steps of `pool create`: the CHAP secret (a new password each time), then the pool. */
export function createPoolSteps(virsh: Virsh, spec: PoolSpec, wait: WaitOptions = {}): Step[] {
  const def = poolDefFor(spec);
  const chap = spec.chap;
  const secret = chap
    ? [secretStep(virsh, { usage: poolSecretUsage(def.name), description: poolSecretDescription(def.name), user: chap.user, value: () => chap.secret, replace: true })]
    : [];
  return [...secret, ...poolSteps(virsh, def, { autostart: spec.autostart, wait })];
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
 * `libvirt-iface-XXXXXXXX` it made for that name. Removed so that deleting
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
