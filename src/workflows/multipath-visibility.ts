// Mode multipath on one hypervisor: the host's open-iscsi logs in on every portal (one
// path each, a short replacement_timeout so a dead path fails over fast), multipathd
// claims the LUN's WWID with a drop-in of ours and an entry in its wwids file, and the VM
// gets the map (/dev/disk/by-id/dm-uuid-mpath-WWID) as a block disk once at least
// min-paths paths are active, each showing the LUN's WWID and size.
//
// Taken away in the order that does not hang (after the disk left the domain): the map
// flushed while its paths are still there (a map without paths queues I/O), the WWID out
// of the wwids file (multipathd makes no map of it again), the SCSI disks of the paths
// deleted, each portal logged out and its node record deleted, the drop-in removed.
import { ValidationError, TimeoutError } from '../errors.js';
import { blockDeviceSize, isBlockDevice } from '../hypervisor/host.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { loginSteps, logoutSteps } from '../hypervisor/login.js';
import { dropInPath, dropInText, MULTIPATH_CONF_DIR } from '../hypervisor/multipath-dropins.js';
import { mapDevice, Multipath, type MultipathMap } from '../hypervisor/multipath.js';
import { nodeSettings, sessionSettingsSteps } from '../hypervisor/session-settings.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { sameIqn } from '../names/iscsi-name.js';
import { formatPortal, parsePortal, samePortal, type Portal } from '../names/portal.js';
import { sleep, type Step } from '../plan/plan.js';
import { runChecked } from '../runner/check.js';
import type { ExportRecord, IscsiExportRecord, MultipathFields } from './records.js';
import { asIscsi } from './records.js';
import type { PathHealth, ResizeContext, VisibilityContext, VisibilityHealth } from './visibility.js';

type MultipathRecord = IscsiExportRecord & MultipathFields;

function asMultipath(r: ExportRecord): MultipathRecord {
  const x = asIscsi(r);
  if (!('wwid' in x)) throw new TypeError(`export ${r.name} is not a multipath export`);
  return x as MultipathRecord;
}

/** The record's portals: IP addresses (checked against the storage host's at export), so the same on every hypervisor. */
export const recordPortals = (r: ExportRecord): Portal[] => asMultipath(r).portals.map((p) => parsePortal(p));

const active = (m: MultipathMap | undefined): number => m?.paths.filter((p) => p.dmState === 'active' && p.checkerState === 'ready').length ?? 0;

/** The SCSI disks of the export's LUN in the host's sessions of its target, with the portal each came through. */
async function pathDisks(iscsiadm: Iscsiadm, r: MultipathRecord): Promise<Array<{ portal: Portal; dev: string }>> {
  return (await iscsiadm.sessions())
    .filter((s) => sameIqn(s.iqn, r.target))
    .flatMap((s) => s.devices.filter((d) => d.lun === r.lun && d.disk).map((d) => ({ portal: s.portal, dev: d.disk! })));
}

export function multipathVisibility(c: VisibilityContext): Step[] {
  const r = asMultipath(c.record);
  const runner = c.virsh.runner;
  const host = runner.host;
  const dry = runner.dryRun === true;
  const iscsiadm = new Iscsiadm(runner);
  const mp = new Multipath(runner);
  const portals = recordPortals(r);
  const failed = new Map<string, string>();
  // Every portal is tried; one whose login fails is named, and the export goes on while
  // min-paths can still be reached (all of them: the first failure stops it).
  const tolerant = r.minPaths < portals.length;
  const steps: Step[] = [];
  for (const portal of portals) {
    const where = formatPortal(portal);
    const own = [
      ...loginSteps(iscsiadm, {
        target: r.target,
        portal,
        ...(c.chap ? { chap: c.chap } : {}),
        ...(r.session ? { settings: nodeSettings(r.session) } : {}),
        luns: [r.lun],
        wait: c.wait,
        serial: r.serial,
      }),
      ...(r.session ? sessionSettingsSteps(iscsiadm, r.target, portal, r.session, { nodeRecord: false }) : []),
    ];
    for (const s of own) {
      steps.push({
        ...s,
        title: `${s.title}${s.title.includes(where) ? '' : ` (path ${where})`}`,
        check: async () => failed.has(where) || (s.check ? s.check() : false),
        async apply() {
          try {
            await s.apply();
          } catch (e) {
            const why = `portal ${where}: ${(e as Error).message.split('\n')[0]}`;
            if (!tolerant) throw new ValidationError(why, 'portal');
            failed.set(where, why);
          }
        },
      });
    }
  }
  const file = dropInPath(r.name);
  const text = dropInText(r.name, r.wwid, r.target);
  steps.push(
    {
      id: 'paths',
      host,
      title: `go on with at least ${r.minPaths} of the ${portals.length} paths logged in`,
      check: async () => failed.size === 0,
      async apply() {
        if (portals.length - failed.size >= r.minPaths) return;
        throw new ValidationError(`only ${portals.length - failed.size} of ${portals.length} paths to ${r.target} came up on ${host}, fewer than --min-paths ${r.minPaths}: ${[...failed.values()].join('; ')}`, 'portal');
      },
    },
    {
      id: 'multipath-conf',
      host,
      title: `write the multipath drop-in ${file} (WWID ${r.wwid})`,
      check: async () => (await runner.readFile(file)) === text,
      async apply() {
        await runChecked(runner, ['mkdir', '-p', MULTIPATH_CONF_DIR]);
        await runner.writeFile(file, text);
      },
      undo: () => runner.removeFile(file),
    },
    {
      id: 'multipath-wwid',
      host,
      title: `let multipathd claim WWID ${r.wwid} (multipath -a: find_multipaths strict)`,
      check: () => mp.claimed(r.wwid),
      apply: () => mp.claim(r.wwid),
      undo: () => mp.forget(r.wwid),
    },
    {
      id: 'multipath-map',
      host,
      title: `start multipathd (or reconfigure it) and wait for map ${r.wwid} with at least ${r.minPaths} active paths, each with the LUN's WWID and size`,
      async check() {
        if (dry) return false;
        const map = await mp.map(r.wwid);
        if (active(map) < r.minPaths) return false;
        await checkPaths(c, r, mp, map!);
        return true;
      },
      async apply() {
        await mp.startOrReconfigure();
        if (dry) return void (await runner.run(['multipath', '-ll', r.wwid]));
        const timeoutMs = c.wait.timeoutMs ?? 30_000;
        const deadline = Date.now() + timeoutMs;
        try {
          let map: MultipathMap | undefined;
          for (let i = 1; ; i++) {
            map = await mp.map(r.wwid);
            // udev makes the by-id link a moment after the map: the VM gets that name.
            if (active(map) >= r.minPaths && (await isBlockDevice(runner, mapDevice(r.wwid)))) break;
            if (Date.now() >= deadline) {
              const seen = map ? `${active(map)} active of ${map.paths.length} (${map.paths.map((p) => `${p.dev} ${p.dmState} ${p.checkerState}`).join(', ')})` : 'no map';
              throw new TimeoutError(`waited ${Math.round(timeoutMs / 1000)}s on ${host} for map ${r.wwid} with ${r.minPaths} active paths and ${mapDevice(r.wwid)}; multipath -ll shows ${seen}`);
            }
            // multipathd looks at the paths again on reconfigure; `multipath WWID` makes the map now if it has not.
            if (i % 6 === 0) await mp.assemble(r.wwid);
            await runner.run(['udevadm', 'settle', '--timeout=5']);
            await sleep(500, c.wait.signal);
          }
          await checkPaths(c, r, mp, map!);
        } catch (e) {
          // This step failed, so the rollback does not undo it: a map made meanwhile goes now, while its paths are there.
          if ((await mp.map(r.wwid).catch(() => undefined)) !== undefined) await mp.flush(r.wwid).catch(() => undefined);
          throw e;
        }
      },
      undo: () => mp.flush(r.wwid),
    },
  );
  c.slot.source = { type: 'block', dev: mapDevice(r.wwid) };
  return steps;
}

/** Every path of the map shows the record's WWID and the map's size: another LUN merged in would be a wrong disk. */
async function checkPaths(c: VisibilityContext, r: MultipathRecord, mp: Multipath, map: MultipathMap): Promise<void> {
  const runner = c.virsh.runner;
  const size = await blockDeviceSize(runner, mapDevice(r.wwid));
  for (const p of map.paths) {
    const [wwid, bytes] = await Promise.all([mp.pathWwid(p.dev), blockDeviceSize(runner, `/dev/${p.dev}`)]);
    if (wwid !== r.wwid) throw new ValidationError(`path ${p.dev} of map ${r.wwid} on ${runner.host} shows WWID ${wwid ?? 'none'}: two LUNs share a WWID`, 'wwid');
    if (bytes !== size) throw new ValidationError(`path ${p.dev} of map ${r.wwid} on ${runner.host} shows ${bytes ?? 'no'} bytes, the map ${size ?? 'none'}`, 'wwid');
  }
}

export function multipathTeardown(virsh: Virsh, record: ExportRecord): Step[] {
  const r = asMultipath(record);
  const runner = virsh.runner;
  const host = runner.host;
  const iscsiadm = new Iscsiadm(runner);
  const mp = new Multipath(runner);
  const file = dropInPath(r.name);
  const steps: Step[] = [
    {
      id: 'multipath-flush',
      host,
      title: `flush multipath map ${r.wwid}`,
      check: async () => (await mp.map(r.wwid)) === undefined,
      apply: () => mp.flush(r.wwid),
    },
    {
      id: 'multipath-wwid',
      host,
      title: `take WWID ${r.wwid} out of multipathd's wwids file (multipath -w)`,
      check: async () => !(await mp.claimed(r.wwid)),
      apply: () => mp.forget(r.wwid),
    },
    {
      id: 'scsi-delete',
      host,
      title: `delete the SCSI disks of LUN ${r.lun} of ${r.target} (the map's paths)`,
      check: async () => (await pathDisks(iscsiadm, r)).length === 0,
      async apply() {
        for (const d of await pathDisks(iscsiadm, r)) {
          // Only a disk that shows the export's WWID (or none any more, its session lost).
          const wwid = await mp.pathWwid(d.dev);
          if (wwid !== undefined && wwid !== r.wwid) throw new ValidationError(`${d.dev} (LUN ${r.lun} of ${r.target} at ${formatPortal(d.portal)}) shows WWID ${wwid}, not ${r.wwid}: left alone`, 'wwid');
          await mp.deleteScsiDevice(d.dev);
        }
      },
    },
  ];
  for (const portal of recordPortals(r)) steps.push(...logoutSteps(iscsiadm, { target: r.target, portal }));
  steps.push({
    id: 'multipath-conf',
    host,
    title: `remove the multipath drop-in ${file}`,
    check: async () => (await runner.readFile(file)) === undefined,
    apply: () => runner.removeFile(file),
  });
  return steps;
}

/** Every session rescanned, every path then showing the new size; multipathd resizes the map. */
export function multipathResize(c: ResizeContext): Step[] {
  const r = asMultipath(c.record);
  const runner = c.virsh.runner;
  const iscsiadm = new Iscsiadm(runner);
  const mp = new Multipath(runner);
  const dev = mapDevice(r.wwid);
  const grown = async (path: string): Promise<boolean> => ((await blockDeviceSize(runner, path)) ?? 0) >= c.sizeBytes;
  return [
    {
      id: 'rescan',
      host: runner.host,
      title: `rescan the sessions of ${r.target} on ${runner.host} on every portal, resize map ${r.wwid} until ${dev} shows ${c.sizeBytes} bytes`,
      check: () => grown(dev),
      async apply() {
        const sessions = (await iscsiadm.sessions()).filter((s) => sameIqn(s.iqn, r.target));
        for (const p of recordPortals(r)) if (sessions.some((s) => samePortal(s.portal, p))) await iscsiadm.rescan(r.target, p);
        if (runner.dryRun) return void (await mp.resize(r.wwid));
        const deadline = Date.now() + (c.wait.timeoutMs ?? 30_000);
        for (const d of await pathDisks(iscsiadm, r)) {
          while (!(await grown(`/dev/${d.dev}`))) {
            if (Date.now() >= deadline) throw new TimeoutError(`path ${d.dev} of map ${r.wwid} on ${runner.host} does not show ${c.sizeBytes} bytes after the rescan`);
            await sleep(250, c.wait.signal);
          }
        }
        await mp.resize(r.wwid);
        while (!(await grown(dev))) {
          if (Date.now() >= deadline) throw new TimeoutError(`map ${r.wwid} on ${runner.host} does not show ${c.sizeBytes} bytes after multipathd resized it`);
          await sleep(250, c.wait.signal);
        }
      },
    },
  ];
}

export async function inspectMultipath(virsh: Virsh, record: ExportRecord): Promise<VisibilityHealth> {
  const r = asMultipath(record);
  const runner = virsh.runner;
  const [map, disks] = await Promise.all([new Multipath(runner).map(r.wwid), pathDisks(new Iscsiadm(runner), r)]);
  const problems: string[] = [];
  const portals = recordPortals(r);
  const paths: PathHealth[] = (map?.paths ?? []).map((p) => {
    const portal = disks.find((d) => d.dev === p.dev)?.portal;
    return { ...(portal ? { portal: formatPortal(portal) } : {}), dev: p.dev, state: `${p.dmState} ${p.checkerState} ${p.devState}` };
  });
  for (const p of portals) if (!disks.some((d) => samePortal(d.portal, p))) problems.push(`no session on ${runner.host} through portal ${formatPortal(p)}`);
  for (const p of paths) if (p.state !== 'active ready running') problems.push(`path ${p.dev}${p.portal ? ` (portal ${p.portal})` : ''} of map ${r.wwid} on ${runner.host} is ${p.state}`);
  if (!map) problems.push(`no multipath map ${r.wwid} on ${runner.host}`);
  else if (active(map) < r.minPaths) problems.push(`map ${r.wwid} on ${runner.host} has ${active(map)} active paths, fewer than min-paths ${r.minPaths}`);
  const volume = !map ? 'missing' : active(map) < r.minPaths ? 'wrong' : 'ok';
  return { pool: 'n/a', volume, problems, paths };
}
