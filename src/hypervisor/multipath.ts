// dm-multipath on a hypervisor (multipath-tools): the map of a WWID and the state of its
// paths, the wwids file that lets multipathd claim a WWID (find_multipaths "strict", Debian
// 12's default, makes maps only for WWIDs listed there), the daemon, and the SCSI devices
// behind a map. Thin typed wrappers over the tools; output parsed here.
import { ValidationError } from '../errors.js';
import { commandError, runChecked } from '../runner/check.js';
import type { Runner } from '../runner/types.js';
import { sleep } from '../plan/plan.js';

/** One path of a map, as `multipath -ll` prints it. */
export interface MultipathPath {
  /** host:channel:id:lun of the SCSI device. */
  hctl: string;
  /** The SCSI disk, e.g. sda. */
  dev: string;
  /** Device-mapper's view: active or failed. */
  dmState: string;
  /** The path checker's: ready, faulty, ghost, shaky, ... */
  checkerState: string;
  /** The kernel's SCSI device state: running, offline, ... */
  devState: string;
}

export interface MultipathMap {
  wwid: string;
  /** The dm device, e.g. dm-0. */
  sysfs: string;
  /** "VENDOR,PRODUCT" of the LUN. */
  vendorProduct: string;
  /** As multipath prints it, e.g. 64M. */
  size: string;
  paths: MultipathPath[];
}

const PATH_LINE = /^[\s|`'-]*[|`]- (\d+:\d+:\d+:\d+) (\S+) +\d+:\d+ +(\S+) +(\S+) +(\S+)/;

/**
 * `multipath -ll [WWID]` (multipath-tools 0.9.4; user_friendly_names no, so the map's name
 * is its WWID), e.g.
 *   360000000f1c7a0e5b2d94c38a6e1d0b7 dm-0 IET,VIRTUAL-DISK
 *   size=64M features='1 queue_if_no_path' hwhandler='0' wp=rw
 *   `-+- policy='service-time 0' prio=1 status=active
 *     |- 6:0:0:1 sda 8:0  active ready  running
 *     `- 7:0:0:1 sdb 8:16 failed faulty running
 * A map with a friendly name prints "NAME (WWID) dm-N ...". Nothing at all (exit 0) when
 * there is no such map, or no daemon.
 */
export function parseMultipathLl(text: string): MultipathMap[] {
  const maps: MultipathMap[] = [];
  for (const line of text.split('\n')) {
    const path = PATH_LINE.exec(line);
    if (path) {
      const map = maps.at(-1);
      if (!map) throw new ValidationError(`multipath -ll output: path line ${JSON.stringify(line)} before any map`, 'multipath');
      map.paths.push({ hctl: path[1]!, dev: path[2]!, dmState: path[3]!, checkerState: path[4]!, devState: path[5]! });
      continue;
    }
    const size = /^size=(\S+) /.exec(line);
    if (size && maps.length > 0) {
      maps.at(-1)!.size = size[1]!;
      continue;
    }
    if (/^[\s|`]/.test(line)) continue;
    // "NAME (WWID) dm-N VENDOR,PRODUCT" with a friendly name, else "WWID dm-N VENDOR,PRODUCT";
    // "TIMESTAMP | message" lines the tools print besides match neither.
    const m = /^\S+ \(([0-9a-z.]+)\) (dm-\d+) ?(.*)$/.exec(line) ?? /^([0-9a-z.]+) (dm-\d+) ?(.*)$/.exec(line);
    if (m) maps.push({ wwid: m[1]!, sysfs: m[2]!, vendorProduct: m[3]!.trim(), size: '', paths: [] });
  }
  return maps;
}

/**
 * `/sys/block/sdX/device/wwid` (kernel 6.1) holds the VPD 0x83 designator the kernel
 * prefers, e.g. "naa.60000000f1c7a0e5b2d94c38a6e1d0b7"; udev's scsi_id (and so multipath)
 * prints an NAA one as "3" and the same hex digits: 360000000f1c7a0e5b2d94c38a6e1d0b7.
 */
export function sysfsWwid(text: string): string | undefined {
  const t = text.trim();
  const naa = /^naa\.([0-9a-fA-F]+)$/.exec(t);
  return naa ? `3${naa[1]!.toLowerCase()}` : t || undefined;
}

const SCSI_DISK = /^sd[a-z]{1,4}$/;

export const WWIDS_FILE = '/etc/multipath/wwids';

/** The map device the VM gets: udev's link named by the map's dm uuid (mpath-WWID). */
export const mapDevice = (wwid: string): string => `/dev/disk/by-id/dm-uuid-mpath-${wwid}`;

export class Multipath {
  constructor(readonly runner: Runner) {}

  /** The map of `wwid`, or undefined when there is none. */
  async map(wwid: string): Promise<MultipathMap | undefined> {
    const argv = ['multipath', '-ll', wwid];
    const r = await this.runner.run(argv, { query: true });
    if (r.exitCode !== 0) throw commandError(this.runner, argv, r);
    return parseMultipathLl(r.stdout).find((m) => m.wwid === wwid);
  }

  /**
   * The wwids file lists it (`/WWID/` a line, e.g.
   *   # Valid WWIDs:
   *   /360000000f1c7a0e5b2d94c38a6e1d0b7/
   * ), so multipathd makes its map under find_multipaths "strict".
   */
  async claimed(wwid: string): Promise<boolean> {
    const text = await this.runner.readFile(WWIDS_FILE);
    return text !== undefined && text.split('\n').includes(`/${wwid}/`);
  }

  /** `multipath -a WWID` prints "wwid 'WWID' added" (again when it was there). */
  async claim(wwid: string): Promise<void> {
    await runChecked(this.runner, ['multipath', '-a', wwid]);
  }

  /** `multipath -w WWID` prints "wwid 'WWID' removed". */
  async forget(wwid: string): Promise<void> {
    await runChecked(this.runner, ['multipath', '-w', wwid]);
  }

  /**
   * `multipath -f WWID`: silent on success; exit 1 with "TIMESTAMP | WWID: map in use" while
   * something holds the map open (udev's blkid, just after the map appears): tried again.
   */
  async flush(wwid: string, o: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    const deadline = Date.now() + (o.timeoutMs ?? 15_000);
    for (;;) {
      const argv = ['multipath', '-f', wwid];
      const r = await this.runner.run(argv);
      if (r.exitCode === 0) return;
      if (!/map in use/.test(r.stdout + r.stderr) || Date.now() >= deadline) throw commandError(this.runner, argv, { ...r, stderr: r.stderr || r.stdout });
      await sleep(500, o.signal);
    }
  }

  /** `systemctl is-active --quiet multipathd`: exit 0 when it runs. */
  async daemonRunning(): Promise<boolean> {
    return (await this.runner.run(['systemctl', 'is-active', '--quiet', 'multipathd'], { query: true })).exitCode === 0;
  }

  /** Starts multipathd, or makes a running one read its configuration again (our drop-in) and look at every path. */
  async startOrReconfigure(): Promise<void> {
    if (await this.daemonRunning()) await runChecked(this.runner, ['multipathd', 'reconfigure']);
    else await runChecked(this.runner, ['systemctl', 'start', 'multipathd']);
  }

  /** `multipath WWID`: makes (or reloads) that map now, from the paths there are. */
  async assemble(wwid: string): Promise<void> {
    await this.runner.run(['multipath', wwid]);
  }

  /** `multipathd resize map WWID` (after every path shows the new size). */
  async resize(wwid: string): Promise<void> {
    await runChecked(this.runner, ['multipathd', 'resize', 'map', wwid]);
  }

  /** The WWID a SCSI disk shows (sysfs), or undefined when it is gone. */
  async pathWwid(dev: string): Promise<string | undefined> {
    if (!SCSI_DISK.test(dev)) throw new ValidationError(`${JSON.stringify(dev)} is not a SCSI disk name`, 'multipath');
    const text = await this.runner.readFile(`/sys/block/${dev}/device/wwid`);
    return text === undefined ? undefined : sysfsWwid(text);
  }

  /** Takes the SCSI disk away from the kernel (it must hold no map: flush first). */
  async deleteScsiDevice(dev: string): Promise<void> {
    if (!SCSI_DISK.test(dev)) throw new ValidationError(`${JSON.stringify(dev)} is not a SCSI disk name`, 'multipath');
    const path = `/sys/block/${dev}/device/delete`;
    const r = await this.runner.run(['tee', path], { stdin: '1\n' });
    // Gone already (its session ended meanwhile): done.
    if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr)) throw commandError(this.runner, ['tee', path], r);
  }
}
