// Read-only questions to a host that are not about libvirt or iscsiadm: its name, whether a
// program or kernel module is there, a block device and its SCSI serial. Workflows ask
// through these instead of running commands themselves; every one is a query (a dry run
// asks too), with the tool's output parsed here.
import { ValidationError } from '../errors.js';
import { parseIscsiName } from '../names/iscsi-name.js';
import { commandError } from '../runner/check.js';
import type { Runner } from '../runner/types.js';
import { INITIATOR_NAME_FILE } from './iscsiadm.js';
import { parseInitiatorName } from './iscsiadm-parse.js';

const names = new WeakMap<Runner, Promise<string>>();

/**
 * `hostname -f` (e.g. "stor1.example.com"), else `uname -n` when the name does not resolve.
 * Asked once per Runner: storage host and hypervisor are often the same one.
 */
export function hostName(runner: Runner): Promise<string> {
  let name = names.get(runner);
  if (!name) {
    name = askHostName(runner);
    names.set(runner, name);
  }
  return name;
}

async function askHostName(runner: Runner): Promise<string> {
  const full = await runner.run(['hostname', '-f'], { query: true });
  if (full.exitCode === 0 && full.stdout.trim() !== '') return full.stdout.trim();
  const short = await runner.run(['uname', '-n'], { query: true });
  return short.stdout.trim() || 'localhost';
}

/** Exit 127: no such program. Anything else (even `--version` refused) means it is installed. */
export async function hasProgram(runner: Runner, argv: readonly string[]): Promise<boolean> {
  return (await runner.run(argv, { query: true })).exitCode !== 127;
}

export type ModuleState = 'loaded' | 'loadable' | 'missing';

/** Loaded (/sys/module/NAME), or loadable (`modprobe -n -q` finds it), or neither. */
export async function kernelModule(runner: Runner, name: string): Promise<ModuleState> {
  if (!/^[a-z0-9_]+$/.test(name)) throw new ValidationError(`kernel module name ${JSON.stringify(name)} is not valid`, 'module');
  if ((await runner.run(['test', '-d', `/sys/module/${name}`], { query: true })).exitCode === 0) return 'loaded';
  return (await runner.run(['modprobe', '--dry-run', '--quiet', name], { query: true })).exitCode === 0 ? 'loadable' : 'missing';
}

/** /etc/iscsi/initiatorname.iscsi's InitiatorName=, checked as an iSCSI name; undefined when there is none. */
export async function initiatorName(runner: Runner): Promise<string | undefined> {
  const text = await runner.readFile(INITIATOR_NAME_FILE);
  const name = text === undefined ? undefined : parseInitiatorName(text);
  return name === undefined ? undefined : parseIscsiName(name, `InitiatorName in ${INITIATOR_NAME_FILE} on ${runner.host}`);
}

/** /etc/machine-id, trimmed; undefined when the host has none. */
export async function machineId(runner: Runner): Promise<string | undefined> {
  return (await runner.readFile('/etc/machine-id'))?.trim() || undefined;
}

/** `test -b PATH`: a block device is there (udev made its link). */
export async function isBlockDevice(runner: Runner, path: string): Promise<boolean> {
  return (await runner.run(['test', '-b', path], { query: true })).exitCode === 0;
}

/**
 * `lsblk --nodeps --noheadings --output SERIAL DEV` prints the device's serial and a
 * newline: for a SCSI disk the unit serial (VPD page 0x80, udev's ID_SCSI_SERIAL) that
 * tgt's scsi_sn / LIO's wwn sets (util-linux 2.38), e.g.
 *   VI3F2A9C01B7D4
 */
export async function deviceSerial(runner: Runner, dev: string): Promise<string> {
  const argv = ['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) throw commandError(runner, argv, r);
  return r.stdout.trim();
}

/**
 * The device must carry the serial set on the LUN before a VM gets it: a device name can
 * still point at a LUN of an earlier session (a reused LUN number shows a stale device).
 */
export async function checkDeviceSerial(runner: Runner, dev: string, serial: string): Promise<void> {
  // A dry run has no device to read (the login that makes it was only recorded): the plan shows the check.
  if (runner.dryRun) return void (await runner.run(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev]));
  const seen = await deviceSerial(runner, dev);
  if (seen !== serial) {
    throw new ValidationError(
      `${dev} on ${runner.host} has serial ${JSON.stringify(seen)}, not ${JSON.stringify(serial)} as set on the LUN: a stale device holds that name (log out of the target and in again)`,
      'serial',
    );
  }
}

/**
 * The image formats and protocols this host's QEMU can open: `qemu-img --help` (QEMU 7.2)
 * ends with a line such as
 *   Supported formats: blkdebug blklogwrites ... iscsi iser ... qcow2 ... raw rbd ... vvfat
 * which lists the block drivers its modules provide too (rbd comes with qemu-block-extra).
 */
export function parseQemuFormats(help: string): string[] {
  const line = help.split('\n').find((l) => l.startsWith('Supported formats:'));
  return line === undefined ? [] : line.slice('Supported formats:'.length).trim().split(/\s+/).filter(Boolean);
}

export async function qemuFormats(runner: Runner): Promise<string[]> {
  const r = await runner.run(['qemu-img', '--help'], { query: true });
  return r.exitCode === 0 ? parseQemuFormats(r.stdout) : [];
}

/**
 * `blockdev --getsize64 DEV` prints the device's size in bytes and a newline (util-linux
 * 2.38), e.g. "67108864"; undefined when it is not there.
 */
export async function blockDeviceSize(runner: Runner, dev: string): Promise<number | undefined> {
  const r = await runner.run(['blockdev', '--getsize64', dev], { query: true });
  if (r.exitCode !== 0) return undefined;
  const n = Number(r.stdout.trim());
  if (!Number.isSafeInteger(n) || !/^\d+$/.test(r.stdout.trim())) throw new ValidationError(`blockdev --getsize64 ${dev} printed ${JSON.stringify(r.stdout.trim())}, not a number of bytes`, 'blockdev');
  return n;
}
