// Making the export's LUN visible on the hypervisor, the way the mode says: a libvirt pool
// (iscsi: the host's open-iscsi logs in and the LUN is a by-path block device; iscsi-direct:
// libvirt and QEMU log in themselves), an iscsiadm login without a pool (block), or nothing
// at all (network: QEMU logs in when the disk is attached). Each way ends by telling the
// attach step what the disk's source is. Where the host sees a block device, its SCSI
// serial must be the one set on the LUN before a VM gets it (pitfall 7).
import { ValidationError } from '../errors.js';
import { Iscsiadm, type WaitOptions } from '../hypervisor/iscsiadm.js';
import { poolDefined, waitForVolumes } from '../hypervisor/pools.js';
import { isMissing } from '../hypervisor/virsh-errors.js';
import type { PoolListEntry } from '../hypervisor/virsh-parse.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { byPathFor } from '../names/by-path.js';
import { formatPortal, type Portal, samePortal } from '../names/portal.js';
import { commandError } from '../runner/check.js';
import type { Runner } from '../runner/types.js';
import type { DiskSource } from '../xml/disk.js';
import { buildPool, poolDef, type PoolDef } from '../xml/pool.js';
import type { ExportRecord } from './records.js';
import type { WorkflowStep } from './types.js';
import { sameIqn } from '../names/iscsi-name.js';

/** Filled in as the steps run: what the disk will point at. */
export interface SourceSlot {
  source?: DiskSource;
}


/** QEMU logs in itself, with the export's initiator name and, with CHAP, the libvirt secret. */
export function networkSource(r: ExportRecord, portal: Portal): DiskSource {
  const source: DiskSource = { type: 'network', protocol: 'iscsi', target: r.target, lun: r.lun, hosts: [{ name: portal.host, port: portal.port }], initiator: r.initiator };
  if (r.secretUsage && r.chapUser) source.auth = { username: r.chapUser, secret: { usage: r.secretUsage } };
  return source;
}

/**
 * `lsblk --nodeps --noheadings --output SERIAL DEV` prints the device's serial and a
 * newline: for a SCSI disk the unit serial (VPD page 0x80, udev's ID_SCSI_SERIAL) that
 * tgt's scsi_sn / LIO's wwn sets, e.g. "VI3F2A9C01B7D4". Under --dry-run the command is
 * printed and the serial taken as right: the device is not there to read.
 */
export async function checkSerial(runner: Runner, dev: string, serial: string): Promise<void> {
  const argv = ['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev];
  const dry = runner.dryRun === true;
  const r = await runner.run(argv, { query: !dry });
  if (dry) return;
  if (r.exitCode !== 0) throw commandError(runner, argv, r);
  const seen = r.stdout.trim();
  if (seen !== serial) {
    throw new ValidationError(
      `${dev} on ${runner.host} has serial ${JSON.stringify(seen)}, not ${JSON.stringify(serial)} as set on the LUN: a stale device holds that name (log out of the target and in again)`,
      'serial',
    );
  }
}

/** unit:0:0:1 -> 1: libvirt names iSCSI volumes by their SCSI address. */
export function volumeLun(name: string): number | undefined {
  const m = /:(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function exportPoolDef(r: ExportRecord, portal: Portal): PoolDef {
  return poolDef({
    type: r.mode === 'pool' ? 'iscsi' : 'iscsi-direct',
    name: r.pool!,
    hosts: [{ name: portal.host, port: portal.port }],
    device: r.target,
    // An iscsi pool logs in as the host (a custom IQN would make libvirt add an iface: pitfall 12).
    initiator: r.mode === 'direct' ? r.initiator : undefined,
    auth: r.secretUsage && r.chapUser ? { username: r.chapUser, secret: { usage: r.secretUsage } } : undefined,
  });
}

async function undefineIfThere(virsh: Virsh, name: string): Promise<void> {
  try {
    await virsh.poolUndefine(name);
  } catch (e) {
    if (!isMissing(e, 'pool')) throw e;
  }
}

/**
 * pool-define -> pool-start -> pool-autostart (persistent exports) -> the LUN's volume.
 * `existing`: the pool of that name as pool-list showed it when the export started; a
 * pool that was not there needs no look to know it is not defined, started or autostarted.
 */
export function poolSteps(virsh: Virsh, r: ExportRecord, portal: Portal, existing: PoolListEntry | undefined, slot: SourceSlot, wait: WaitOptions): WorkflowStep[] {
  const def = exportPoolDef(r, portal);
  const name = def.name;
  const what = `${r.target} at ${formatPortal(portal)}`;
  const useVolume = (vol: { name: string; path: string }): void => {
    slot.source = r.mode === 'pool' ? { type: 'block', dev: vol.path } : { type: 'volume', pool: name, volume: vol.name };
  };
  const ourVolume = (vols: ReadonlyArray<{ name: string; path: string }>) => vols.find((v) => volumeLun(v.name) === r.lun);
  // A pool this run starts is waited for; one already running is looked at once.
  let startedNow = false;
  const steps: WorkflowStep[] = [
    {
      id: 'pool-define',
      title: `define ${def.type} pool ${name} for ${what}`,
      check: async () => existing !== undefined && (await poolDefined(virsh, def)),
      apply: () => virsh.poolDefine(buildPool(def)),
      async undo() {
        await undefineIfThere(virsh, name);
        // A started (or failed to start) iscsi pool leaves the node record its login made (seen in the lab).
        if (r.mode === 'pool') await new Iscsiadm(virsh.runner).deleteNode(r.target, portal);
      },
    },
    {
      id: 'pool-start',
      title: `start pool ${name} (${r.mode === 'pool' ? "the host's open-iscsi logs in" : 'libvirt logs in'} as ${r.initiator})`,
      check: async () => existing?.state === 'running',
      apply: async () => {
        await virsh.poolStart(name);
        startedNow = true;
      },
      undo: () => virsh.poolDestroy(name),
    },
  ];
  if (r.persist) {
    steps.push({
      id: 'pool-autostart',
      title: `mark pool ${name} to start with libvirtd`,
      check: async () => existing?.autostart === true,
      apply: () => virsh.poolAutostart(name),
      undo: () => virsh.poolAutostart(name, false),
    });
  }
  steps.push({
    id: 'volume',
    title: `wait for LUN ${r.lun} in pool ${name}${r.mode === 'pool' ? ` and check its serial ${r.serial}` : ''}`,
    async check() {
      if (startedNow || existing?.state !== 'running') return false;
      const vol = ourVolume(await virsh.volList(name));
      if (!vol) return false;
      if (r.mode === 'pool') await checkSerial(virsh.runner, vol.path, r.serial);
      useVolume(vol);
      return true;
    },
    async apply() {
      // Listed already (libvirt scans at pool-start), or refreshed until they are (pitfall 8).
      const listed = virsh.dryRun ? [] : await virsh.volList(name);
      const vols = ourVolume(listed) ? listed : await waitForVolumes(virsh, name, what, wait);
      // A dry run created nothing to list: the volume is named as libvirt would name it.
      const vol = virsh.dryRun ? { name: `unit:0:0:${r.lun}`, path: byPathFor(portal, r.target, r.lun) } : ourVolume(vols);
      if (!vol) throw new ValidationError(`pool ${name} on ${virsh.where} lists ${vols.map((v) => v.name).join(', ')} but no volume for LUN ${r.lun}`, 'lun');
      if (r.mode === 'pool') await checkSerial(virsh.runner, vol.path, r.serial);
      useVolume(vol);
    },
  });
  return steps;
}

/**
 * iscsiadm without a pool: node record (from SendTargets discovery) -> CHAP on the record
 * -> login -> the by-path device, serial checked. Undone: logout, then the record.
 */
export function loginSteps(iscsiadm: Iscsiadm, r: ExportRecord, portal: Portal, chapSecret: string | undefined, slot: SourceSlot, wait: WaitOptions): WorkflowStep[] {
  const where = `${r.target} at ${formatPortal(portal)}`;
  const dry = iscsiadm.runner.dryRun === true;
  const dev = byPathFor(portal, r.target, r.lun);
  let tpgt = 1;
  let loggedInNow = false;
  const node = async () => (await iscsiadm.nodes()).find((n) => sameIqn(n.iqn, r.target) && samePortal(n.portal, portal));
  const steps: WorkflowStep[] = [
    {
      id: 'node',
      title: `create the open-iscsi node record for ${where}`,
      async check() {
        const n = await node();
        if (n) tpgt = n.tpgt;
        return n !== undefined;
      },
      async apply() {
        // A dry run cannot discover a target it has not created: tgt's and LIO's first portal group is 1.
        if (!dry) {
          const offered = (await iscsiadm.discover(portal)).find((e) => sameIqn(e.iqn, r.target) && samePortal(e.portal, portal));
          if (!offered) throw new ValidationError(`portal ${formatPortal(portal)} does not offer target ${r.target} to ${iscsiadm.runner.host} (SendTargets discovery)`, 'portal');
          tpgt = offered.tpgt;
        }
        await iscsiadm.addNode(r.target, portal, tpgt);
      },
      undo: () => iscsiadm.deleteNode(r.target, portal),
    },
  ];
  const user = r.chapUser;
  if (user) {
    steps.push({
      id: 'node-chap',
      title: `set CHAP user ${user} on the node record`,
      check: async () => {
        if (dry && !(await node())) return false;
        const rec = await iscsiadm.nodeRecord(r.target, portal);
        return rec.get('node.session.auth.authmethod') === 'CHAP' && rec.get('node.session.auth.username') === user;
      },
      apply: async () => {
        if (chapSecret === undefined) throw new ValidationError(`the CHAP secret of ${r.target} cannot be read back from its target; unexport ${r.name} and export it again`, 'chap');
        await iscsiadm.setChap(r.target, portal, tpgt, { user, secret: chapSecret });
      },
    });
  }
  steps.push(
    {
      id: 'login',
      title: `log in to ${where} as ${r.initiator}`,
      check: async () => (await iscsiadm.sessions()).some((s) => sameIqn(s.iqn, r.target) && samePortal(s.portal, portal)),
      apply: async () => {
        await iscsiadm.login(r.target, portal);
        loggedInNow = true;
      },
      undo: () => iscsiadm.logout(r.target, portal),
    },
    {
      id: 'device',
      title: `wait for ${dev} and check its serial ${r.serial}`,
      async check() {
        if (loggedInNow || (await iscsiadm.runner.run(['test', '-b', dev], { query: true })).exitCode !== 0) return false;
        await checkSerial(iscsiadm.runner, dev, r.serial);
        slot.source = { type: 'block', dev };
        return true;
      },
      async apply() {
        await iscsiadm.waitForDevice(r.target, portal, r.lun, wait);
        await checkSerial(iscsiadm.runner, dev, r.serial);
        slot.source = { type: 'block', dev };
      },
    },
  );
  return steps;
}
