// Making the export's LUN visible on one hypervisor, taking it away again, and looking at
// it, one way per mode (the modes table, modes.ts, says which mode uses which): a libvirt
// pool (iscsi: the host's open-iscsi logs in and the LUN is a by-path block device;
// iscsi-direct: libvirt and QEMU log in themselves), an iscsiadm login without a pool, or
// nothing at all (QEMU logs in when the disk is attached). Each ends by telling the attach
// step what the disk's source is. Where the host sees a block device, its SCSI serial
// must be the one set on the LUN before a VM gets it.
import { attachmentOf, findOurs, type FoundDisk } from '../hypervisor/disk-steps.js';
import { blockDeviceSize, checkDeviceSerial, isBlockDevice } from '../hypervisor/host.js';
import { Iscsiadm, type ChapCredentials, type WaitOptions } from '../hypervisor/iscsiadm.js';
import { loginSteps, logoutSteps, nodeDeleteStep } from '../hypervisor/login.js';
import { poolSteps, volumeLun } from '../hypervisor/pools.js';
import { nodeSettings, sessionSettingsDrift, sessionSettingsSteps } from '../hypervisor/session-settings.js';
import { isMissing } from '../hypervisor/virsh-errors.js';
import type { PoolListEntry } from '../hypervisor/virsh-parse.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { byPathFor } from '../names/by-path.js';
import type { Portal } from '../names/portal.js';
import { sleep, type Step } from '../plan/plan.js';
import { TimeoutError } from '../errors.js';
import type { DiskSource } from '../xml/disk.js';
import { poolDef, type PoolDef, type PoolType } from '../xml/pool.js';
import { parsePortal } from '../names/portal.js';
import { DEFAULT_CEPH_ID } from '../storage/rbd/client.js';
import { parseRbdRef, rbdImageSpec } from '../storage/rbd/ref.js';
import { asIscsi, isIscsi, recordPool, recordSecretUsage, type ExportRecord, type IscsiExportRecord, type RbdExportRecord } from './records.js';

/** Filled in as the steps run: what the disk will point at. */
export interface SourceSlot {
  source?: DiskSource;
}

/** What the visibility steps of one hypervisor need. */
export interface VisibilityContext {
  record: ExportRecord;
  virsh: Virsh;
  /** The portal with its host resolved to an IP on this hypervisor. */
  portal: Portal;
  /** The initiator this hypervisor logs in as. */
  initiator: string;
  /** The pool as pool-list showed it on this hypervisor before the plan (null: not there). */
  knownPool: PoolListEntry | null;
  /** CHAP for a node record (modes whose host logs in); known when the step runs. */
  chap?: () => ChapCredentials;
  wait: WaitOptions;
  slot: SourceSlot;
}

/** QEMU logs in itself, with the hypervisor's initiator name and, with CHAP, the libvirt secret. */
export function networkSource(r: IscsiExportRecord, portal: Portal, initiator: string): DiskSource {
  const source: DiskSource = { type: 'network', protocol: 'iscsi', target: r.target, lun: r.lun, hosts: [{ name: portal.host, port: portal.port }], initiator };
  const usage = recordSecretUsage(r);
  if (usage && r.chapUser) source.auth = { username: r.chapUser, secret: { usage } };
  return source;
}

export function exportPoolDef(r: IscsiExportRecord, type: PoolType, portal: Portal, initiator: string): PoolDef {
  const usage = recordSecretUsage(r);
  return poolDef({
    type,
    name: recordPool(r)!,
    hosts: [{ name: portal.host, port: portal.port }],
    device: r.target,
    // An iscsi pool logs in as the host: a custom IQN would make libvirt add an iface of its own.
    initiator: type === 'iscsi-direct' ? initiator : undefined,
    auth: usage && r.chapUser ? { username: r.chapUser, secret: { usage } } : undefined,
  });
}

// ---- make visible -----------------------------------------------------------------------

/** A pool holds the LUN: its volume is a block device (iscsi) or a pool volume (iscsi-direct). */
export function poolVisibility(type: PoolType): (c: VisibilityContext) => Step[] {
  return (c) => {
    const r = asIscsi(c.record);
    const def = exportPoolDef(r, type, c.portal, c.initiator);
    const steps = poolSteps(c.virsh, def, {
      autostart: r.persist,
      wait: c.wait,
      known: c.knownPool,
      lun: r.lun,
      async onVolume(vol) {
        if (type === 'iscsi') {
          await checkDeviceSerial(c.virsh.runner, vol.path, r.serial);
          c.slot.source = { type: 'block', dev: vol.path };
        } else {
          c.slot.source = { type: 'volume', pool: def.name, volume: vol.name };
        }
      },
    });
    // libvirt's pool-start logs the host in itself, writing the node record from iscsid.conf
    // first: the settings go on the record after it, and on the live session.
    if (type === 'iscsi' && r.session) steps.push(...sessionSettingsSteps(new Iscsiadm(c.virsh.runner), r.target, c.portal, r.session, { nodeRecord: true }));
    return steps;
  };
}

/** The host's open-iscsi logs in without a pool; the disk is the by-path device. */
export function loginVisibility(c: VisibilityContext): Step[] {
  const r = asIscsi(c.record);
  const iscsiadm = new Iscsiadm(c.virsh.runner);
  const steps = loginSteps(iscsiadm, {
    target: r.target,
    portal: c.portal,
    ...(c.chap ? { chap: c.chap } : {}),
    // On the node record before the login, which takes them.
    ...(r.session ? { settings: nodeSettings(r.session) } : {}),
    luns: [r.lun],
    wait: c.wait,
    serial: r.serial,
    onDevice: (dev) => (c.slot.source = { type: 'block', dev }),
  });
  // A session already logged in (a second run with other settings) takes the timeout live.
  if (r.session) steps.push(...sessionSettingsSteps(iscsiadm, r.target, c.portal, r.session, { nodeRecord: false }));
  return steps;
}

/** Nothing to make: QEMU logs in when the disk is attached. */
export function networkVisibility(c: VisibilityContext): Step[] {
  c.slot.source = networkSource(asIscsi(c.record), c.portal, c.initiator);
  return [];
}

/** QEMU opens the RBD image itself, with the cluster's monitors and the client's key from the libvirt `ceph` secret. */
export function rbdSource(r: RbdExportRecord): DiskSource {
  return {
    type: 'network',
    protocol: 'rbd',
    name: rbdImageSpec(parseRbdRef(r.image)),
    hosts: r.monitors.map((m) => {
      const p = parsePortal(m);
      return { name: p.host, port: p.port };
    }),
    auth: { username: r.ceph?.id ?? DEFAULT_CEPH_ID, secret: { usage: r.secretUsage } },
  };
}

/** Nothing to make before the attach (the secret comes first, as for CHAP). */
export function rbdVisibility(c: VisibilityContext): Step[] {
  c.slot.source = rbdSource(c.record as RbdExportRecord);
  return [];
}

// ---- grow --------------------------------------------------------------------------------

/** What the steps that show a grown LUN on one hypervisor need. */
export interface ResizeContext {
  record: IscsiExportRecord;
  virsh: Virsh;
  /** The record's portal resolved there. */
  portal: Portal;
  /** The size the target reports now. */
  sizeBytes: number;
  wait: WaitOptions;
}

/** Polls the host's block device until the kernel shows the new size (a rescan re-reads capacity). */
async function waitForDeviceSize(c: ResizeContext, dev: string): Promise<void> {
  const runner = c.virsh.runner;
  if (runner.dryRun) return;
  const timeoutMs = c.wait.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const size = await blockDeviceSize(runner, dev);
    if (size !== undefined && size >= c.sizeBytes) return;
    if (Date.now() >= deadline) {
      throw new TimeoutError(`waited ${Math.round(timeoutMs / 1000)}s on ${runner.host} for ${dev} to show ${c.sizeBytes} bytes after the rescan; it shows ${size ?? 'nothing'}`);
    }
    await sleep(250, c.wait.signal);
  }
}

const deviceGrown = async (c: ResizeContext, dev: string): Promise<boolean> => ((await blockDeviceSize(c.virsh.runner, dev)) ?? 0) >= c.sizeBytes;

/**
 * iscsi pool: libvirt's pool-refresh rescans the session (iscsiadm -m session -r SID -R,
 * which re-reads every LUN's capacity) and the volume's size with it; the by-path device
 * then shows the new size. iscsi-direct: pool-refresh asks the target itself (libiscsi),
 * so the pool's volume shows it; QEMU reads it at blockresize.
 */
export function poolResize(type: PoolType): (c: ResizeContext) => Step[] {
  return (c) => {
    const pool = recordPool(c.record)!;
    const host = c.virsh.runner.host;
    if (type === 'iscsi-direct') {
      return [
        {
          id: 'pool-refresh',
          host,
          title: `refresh pool ${pool} on ${host} (libvirt reads the LUN's new capacity)`,
          // libvirt 9.0 shows an iscsi-direct volume 512 bytes short (the last LBA times the block size).
          check: async () => (await c.virsh.volumes(pool)).some((v) => volumeLun(v.name) === c.record.lun && v.capacity + 512 >= c.sizeBytes),
          apply: () => c.virsh.poolRefresh(pool),
        },
      ];
    }
    const dev = byPathFor(c.portal, c.record.target, c.record.lun);
    return [
      {
        id: 'rescan',
        host,
        title: `rescan the session of ${c.record.target} on ${host} (pool-refresh ${pool}) until ${dev} shows ${c.sizeBytes} bytes`,
        check: () => deviceGrown(c, dev),
        async apply() {
          await c.virsh.poolRefresh(pool);
          await waitForDeviceSize(c, dev);
        },
      },
    ];
  };
}

/** The host's own session (block mode): iscsiadm rescans it, and the by-path device shows the new size. */
export function loginResize(c: ResizeContext): Step[] {
  const dev = byPathFor(c.portal, c.record.target, c.record.lun);
  const iscsiadm = new Iscsiadm(c.virsh.runner);
  return [
    {
      id: 'rescan',
      host: c.virsh.runner.host,
      title: `rescan the session of ${c.record.target} on ${c.virsh.runner.host} until ${dev} shows ${c.sizeBytes} bytes`,
      check: () => deviceGrown(c, dev),
      async apply() {
        await iscsiadm.rescan(c.record.target, c.portal);
        await waitForDeviceSize(c, dev);
      },
    },
  ];
}

/** QEMU holds the session: it reads the LUN's capacity again at blockresize. */
export const noResize = (): Step[] => [];

// ---- take away ----------------------------------------------------------------------------

/** What one hypervisor holds of the export, looked at once before teardown. */
export interface HypervisorLeftovers {
  pool?: { state: string } | undefined;
}

export function poolTeardown(type: PoolType): (virsh: Virsh, r: ExportRecord, portal: Portal, f: HypervisorLeftovers) => Step[] {
  return (virsh, record, portal, f) => {
    const r = asIscsi(record);
    const name = recordPool(r)!;
    const host = virsh.runner.host;
    const steps: Step[] = [
      {
        id: 'pool-stop',
        host,
        title: `stop pool ${name}`,
        check: async () => f.pool?.state !== 'running',
        apply: () => virsh.poolDestroy(name),
      },
      {
        id: 'pool-undefine',
        host,
        title: `undefine pool ${name}`,
        check: async () => f.pool === undefined,
        async apply() {
          try {
            await virsh.poolUndefine(name);
          } catch (e) {
            if (!isMissing(e, 'pool')) throw e;
          }
        },
      },
    ];
    // An iscsi pool's login leaves its node record in open-iscsi after the pool stops.
    if (type === 'iscsi') steps.push(nodeDeleteStep(new Iscsiadm(virsh.runner), r.target, portal));
    return steps;
  };
}

export function logoutTeardown(virsh: Virsh, r: ExportRecord, portal: Portal): Step[] {
  return logoutSteps(new Iscsiadm(virsh.runner), { target: asIscsi(r).target, portal });
}

export const noTeardown = (): Step[] => [];

// ---- look -------------------------------------------------------------------------------------

/** inactive: defined but not running (a pool), or in the definition only (a disk); transient: in the running domain only, not in its definition. */
export type Health = 'ok' | 'missing' | 'inactive' | 'transient' | 'wrong' | 'unknown' | 'n/a';

/** The hypervisor's side of the LUN: the pool and its volume, or the by-path device. */
export interface VisibilityHealth {
  pool: Health;
  volume: Health;
  problems: string[];
  /** Multipath: each path of the map. */
  paths?: PathHealth[];
}

/** One path of a multipath map as status shows it. */
export interface PathHealth {
  /** The portal its session came through. */
  portal?: string;
  dev: string;
  /** dm state, checker state, device state as multipath -ll prints them: "active ready running". */
  state: string;
}

/** Where the host's node record or live session differ from the record's settings (modes whose host logs in). */
export async function inspectSessionSettings(virsh: Virsh, record: ExportRecord, portal: Portal): Promise<{ settings: Health; problems: string[] }> {
  if (!isIscsi(record) || !record.session) return { settings: 'n/a', problems: [] };
  const drift = await sessionSettingsDrift(new Iscsiadm(virsh.runner), record.target, portal, record.session);
  return { settings: drift.length === 0 ? 'ok' : 'wrong', problems: drift.map((d) => `${d}: run the export again to apply the recorded settings`) };
}

export async function inspectPool(virsh: Virsh, record: ExportRecord): Promise<VisibilityHealth> {
  const r = asIscsi(record);
  const name = recordPool(r)!;
  const info = await virsh.poolInfo(name);
  const pool: Health = info === undefined ? 'missing' : info.state === 'running' ? 'ok' : 'inactive';
  const problems: string[] = [];
  if (pool !== 'ok') problems.push(`pool ${name} is ${info === undefined ? 'not defined' : info.state} on ${virsh.runner.host}`);
  let volume: Health = 'missing';
  if (pool === 'ok') {
    volume = (await virsh.volList(name)).some((v) => volumeLun(v.name) === r.lun) ? 'ok' : 'missing';
    if (volume !== 'ok') problems.push(`pool ${name} on ${virsh.runner.host} lists no volume for LUN ${r.lun}`);
  }
  return { pool, volume, problems };
}

export async function inspectDevice(virsh: Virsh, record: ExportRecord, portal: Portal): Promise<VisibilityHealth> {
  const r = asIscsi(record);
  const dev = byPathFor(portal, r.target, r.lun);
  const there = await isBlockDevice(virsh.runner, dev);
  return { pool: 'n/a', volume: there ? 'ok' : 'missing', problems: there ? [] : [`${dev} is not there on ${virsh.runner.host}`] };
}

export const inspectNothing = async (): Promise<VisibilityHealth> => ({ pool: 'n/a', volume: 'n/a', problems: [] });

/** Where the export's disk is in the domain, for status. */
export function diskHealth(found: FoundDisk | undefined, running: boolean, persist = false): { disk: Health; attachment?: ReturnType<typeof attachmentOf> } {
  if (!found) return { disk: 'missing' };
  return { disk: running && !found.live ? 'inactive' : persist && !found.inactive ? 'transient' : 'ok', attachment: attachmentOf(found) };
}

export { findOurs };
