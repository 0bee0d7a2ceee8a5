import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { waitFor } from './daemon.js';

export const LIBVIRT_URI = 'qemu:///system';

function virshOk(): boolean {
  return spawnSync('virsh', ['-c', LIBVIRT_URI, 'version'], { stdio: 'ignore', timeout: 10000 }).status === 0;
}

function pidOf(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** What ensureLibvirtd returns: stops what it started; `started` says whether libvirtd was one. */
export type LibvirtdStop = (() => Promise<void>) & { started?: boolean; libvirtdPid?: number };

/**
 * Makes sure virtlogd and libvirtd run (there is no systemd here). Returns a stop
 * function that stops, by PID, only the daemons this call started; a libvirtd that
 * was already running is left alone. A test may restart libvirtd only when `started`.
 */
export async function ensureLibvirtd(): Promise<LibvirtdStop> {
  if (virshOk()) return Object.assign(async () => {}, { started: false });
  const started: number[] = [];
  if (spawnSync('pgrep', ['-x', 'virtlogd']).status !== 0) {
    execFileSync('virtlogd', ['-d']);
    await waitFor('virtlogd pid file', () => pidOf('/run/virtlogd.pid') !== undefined, 10000);
    started.push(pidOf('/run/virtlogd.pid')!);
  }
  execFileSync('libvirtd', ['-d']);
  await waitFor('libvirtd to answer virsh version', virshOk, 30000);
  const libvirtdPid = pidOf('/run/libvirtd.pid');
  const stop: LibvirtdStop = async (): Promise<void> => {
    // libvirtd first (its PID as it is now: a test may have restarted it), then virtlogd.
    for (const pid of [...(stop.libvirtdPid ? [stop.libvirtdPid] : []), ...started]) {
      try {
        process.kill(pid, 'SIGTERM');
        await waitFor(`pid ${pid} to exit`, () => !existsSync(`/proc/${pid}`), 15000);
      } catch {
        /* already gone */
      }
    }
  };
  stop.started = true;
  if (libvirtdPid) stop.libvirtdPid = libvirtdPid;
  return stop;
}

/**
 * Restarts a libvirtd this process started (ensureLibvirtd said `started`): SIGTERM by its
 * PID, then `libvirtd -d` again; resolves once virsh answers. Returns the new PID.
 */
export async function restartOwnLibvirtd(stop: LibvirtdStop): Promise<number> {
  if (!stop.started || !stop.libvirtdPid) throw new Error('this process did not start libvirtd: it must not restart it');
  const pid = stop.libvirtdPid;
  process.kill(pid, 'SIGTERM');
  await waitFor(`libvirtd pid ${pid} to exit`, () => !existsSync(`/proc/${pid}`), 30000);
  execFileSync('libvirtd', ['-d']);
  await waitFor('libvirtd to answer virsh version', virshOk, 30000);
  const next = pidOf('/run/libvirtd.pid');
  if (!next) throw new Error('libvirtd started but wrote no /run/libvirtd.pid');
  stop.libvirtdPid = next;
  return next;
}

/**
 * The minimal domain from test-machine.md that starts under KVM here and takes hot-plugged disks.
 * `scsiControllers`: how many virtio-scsi controllers (default 1). libvirt 9 places SCSI disk
 * sdX on controller index(X) / 7, unit index(X) % 7, and hot-plugs a controller that is
 * missing: a domain that takes many disks gets its controllers up front.
 */
export function minimalDomainXml(name: string, opts: { scsi?: boolean; ideCdrom?: boolean; acpi?: boolean; scsiControllers?: number } = {}): string {
  const type = existsSync('/dev/kvm') ? 'kvm' : 'qemu';
  const controllers = opts.scsiControllers ?? 1;
  const scsi =
    opts.scsi === false
      ? ''
      : controllers === 1
        ? "<controller type='scsi' model='virtio-scsi'/>"
        : Array.from({ length: controllers }, (_, i) => `<controller type='scsi' index='${i}' model='virtio-scsi'/>`).join('');
  const cdrom = opts.ideCdrom ? "<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>" : '';
  const acpi = opts.acpi === false ? '' : '<acpi/>';
  return `<domain type='${type}'><name>${name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <features>${acpi}<apic/></features>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>${scsi}${cdrom}</devices></domain>`;
}
