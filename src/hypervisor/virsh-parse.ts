// Parsers for what virsh prints (libvirt 9.0). Each takes the real text (a sample above
// each function; the whole captures are in test/fixtures/virsh) and returns plain data;
// none of them runs anything. Tables are read by the columns their header line sets, not
// by splitting on spaces, so names with spaces in them come through whole. virsh pads
// cells by display width: wide (CJK) characters in a name would shift the columns.
import { ValidationError } from '../errors.js';

const bad = (what: string, text: string): never => {
  throw new ValidationError(`virsh output for ${what} is not in the expected form: ${JSON.stringify(text.slice(0, 200))}`, 'virsh');
};

/**
 * A virsh table: header, a line of dashes, then rows. Columns start where the header's
 * words do (every header word is one column; virsh's headers have no spaces inside).
 *
 *    Name       State    Autostart
 *   --------------------------------
 *    vit-fcap   active   yes
 */
export function parseTable(stdout: string, what: string): Array<Record<string, string>> {
  const lines = stdout.split('\n');
  const at = lines.findIndex((l) => l.trim() !== '');
  if (at < 0) return [];
  const header = lines[at]!;
  if (!/^-+$/.test(lines[at + 1]?.trim() ?? '')) bad(what, stdout);
  const columns = [...header.matchAll(/\S+/g)].map((m) => ({ name: m[0], start: m.index! }));
  return lines
    .slice(at + 2)
    .filter((l) => l.trim() !== '')
    .map((line) =>
      Object.fromEntries(columns.map((c, i) => [c.name, line.slice(c.start, columns[i + 1]?.start ?? line.length).trim()])),
    );
}

/**
 * `Key:   value` lines (pool-info, vol-info, domblkinfo), keys as printed.
 *
 *   Name:           vit-fcap
 *   UUID:           73f76c5c-93ee-4466-a169-cb23e430085b
 */
function parseKeyValues(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^([A-Za-z][A-Za-z ]*):\s*(.*)$/.exec(line.trimEnd());
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

const bytes = (what: string, text: string | undefined): number => {
  const m = /^(\d{1,16})(?: bytes)?$/.exec(text ?? '');
  if (!m || !Number.isSafeInteger(Number(m[1]))) return bad(what, text ?? '');
  return Number(m[1]);
};

const yes = (text: string | undefined): boolean => text === 'yes';

export interface PoolListEntry {
  name: string;
  /** running, inactive, building, degraded, inaccessible. */
  state: string;
  autostart: boolean;
  persistent: boolean;
}

/**
 * `virsh pool-list --all --details`:
 *    Name            State      Autostart   Persistent   Capacity    Allocation   Available
 *   -----------------------------------------------------------------------------------------
 *    vit-fcap        running    yes         yes          40.00 MiB   40.00 MiB    0.00 B
 *    vit-fcap-chap   inactive   no          yes          -           -            -
 * (Sizes are rounded for people; pool-info --bytes has them exact.)
 */
export function parsePoolList(stdout: string): PoolListEntry[] {
  return parseTable(stdout, 'pool-list').map((r) => ({
    name: r.Name ?? bad('pool-list', stdout),
    state: r.State ?? bad('pool-list', stdout),
    autostart: yes(r.Autostart),
    persistent: yes(r.Persistent),
  }));
}

export interface PoolInfo {
  name: string;
  uuid: string;
  state: string;
  persistent: boolean;
  autostart: boolean;
  /** Bytes; only while the pool runs. */
  capacity?: number;
  allocation?: number;
  available?: number;
}

/**
 * `virsh dominfo --domain NAME` (libvirt 9.0), of which only Persistent matters here:
 *   Id:             3
 *   Name:           vit-x
 *   UUID:           1b0c...
 *   OS Type:        hvm
 *   State:          running
 *   ...
 *   Persistent:     no
 *   Autostart:      disable
 * A domain started with `virsh create` is transient: it has no definition to change.
 */
export function parseDomPersistent(stdout: string): boolean {
  const v = parseKeyValues(stdout).get('Persistent');
  if (v !== 'yes' && v !== 'no') return bad('dominfo Persistent', stdout);
  return v === 'yes';
}

/**
 * `virsh pool-info --bytes NAME` (an inactive pool stops after Autostart):
 *   Name:           vit-fcap
 *   UUID:           73f76c5c-93ee-4466-a169-cb23e430085b
 *   State:          running
 *   Persistent:     yes
 *   Autostart:      yes
 *   Capacity:       41942016
 *   Allocation:     41942016
 *   Available:      0
 */
export function parsePoolInfo(stdout: string): PoolInfo {
  const kv = parseKeyValues(stdout);
  const size = (key: string) => (kv.has(key) ? bytes(`pool-info ${key}`, kv.get(key)) : undefined);
  const info: PoolInfo = {
    name: kv.get('Name') ?? bad('pool-info', stdout),
    uuid: kv.get('UUID') ?? bad('pool-info', stdout),
    state: kv.get('State') ?? bad('pool-info', stdout),
    persistent: yes(kv.get('Persistent')),
    autostart: yes(kv.get('Autostart')),
  };
  const [capacity, allocation, available] = [size('Capacity'), size('Allocation'), size('Available')];
  if (capacity !== undefined) info.capacity = capacity;
  if (allocation !== undefined) info.allocation = allocation;
  if (available !== undefined) info.available = available;
  return info;
}

export interface VolListEntry {
  name: string;
  /** For iscsi-direct pools the by-path name QEMU would use; for iscsi pools the /dev path. */
  path: string;
  type: string;
  /** As printed, rounded ("32.00 MiB"); vol-info --bytes has the exact size. */
  capacityText: string;
}

/**
 * `virsh vol-list --details POOL`:
 *    Name         Path                                                             Type      Capacity    Allocation
 *   -----------------------------------------------------------------------------------------------------------------
 *    unit:0:0:0   ip-127.0.0.1:39261-iscsi-iqn.2024-01.dev.virt-iscsi:fcap-lun-0   network   0.00 B      0.00 B
 *    unit:0:0:1   ip-127.0.0.1:39261-iscsi-iqn.2024-01.dev.virt-iscsi:fcap-lun-1   network   32.00 MiB   32.00 MiB
 */
export function parseVolList(stdout: string): VolListEntry[] {
  return parseTable(stdout, 'vol-list').map((r) => ({
    name: r.Name ?? bad('vol-list', stdout),
    path: r.Path ?? bad('vol-list', stdout),
    type: r.Type ?? bad('vol-list', stdout),
    capacityText: r.Capacity ?? bad('vol-list', stdout),
  }));
}

export interface VolInfo {
  name: string;
  type: string;
  capacity: number;
  allocation: number;
}

/**
 * `virsh vol-info --bytes --pool POOL VOLUME`:
 *   Name:           unit:0:0:1
 *   Type:           network
 *   Capacity:       33553920 bytes
 *   Allocation:     33553920 bytes
 */
export function parseVolInfo(stdout: string): VolInfo {
  const kv = parseKeyValues(stdout);
  return {
    name: kv.get('Name') ?? bad('vol-info', stdout),
    type: kv.get('Type') ?? bad('vol-info', stdout),
    capacity: bytes('vol-info Capacity', kv.get('Capacity')),
    allocation: bytes('vol-info Allocation', kv.get('Allocation')),
  };
}

export interface SecretListEntry {
  uuid: string;
  /** iscsi, ceph, volume, tls, vtpm; undefined for a secret without usage. */
  usageType?: string;
  usage?: string;
}

/**
 * `virsh secret-list`:
 *    UUID                                   Usage
 *   --------------------------------------------------------------
 *    5bb598f7-6eee-4419-aca6-a705eefa4f71   iscsi vit-fcap-chap2
 */
export function parseSecretList(stdout: string): SecretListEntry[] {
  return parseTable(stdout, 'secret-list').map((r) => {
    const uuid = r.UUID ?? bad('secret-list', stdout);
    const m = /^(\S+) (.+)$/.exec(r.Usage ?? '');
    return m ? { uuid, usageType: m[1]!, usage: m[2]! } : { uuid };
  });
}

/**
 * `virsh list --all --name` (libvirt 9.0): one domain name a line, running and shut off,
 * then an empty line, e.g.
 *   vit-ab12cd
 *   web1
 *
 */
export function parseDomainNames(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Domain states as `virsh domstate` prints them. */
export type DomainStateName = 'running' | 'idle' | 'paused' | 'in shutdown' | 'shut off' | 'crashed' | 'pmsuspended' | 'no state';
const DOMAIN_STATES: readonly string[] = ['running', 'idle', 'paused', 'in shutdown', 'shut off', 'crashed', 'pmsuspended', 'no state'];

export interface DomainState {
  state: DomainStateName;
  reason?: string;
}

/**
 * `virsh domstate --reason DOMAIN`:
 *   running (booted)
 *   shut off (unknown)
 */
export function parseDomState(stdout: string): DomainState {
  const line = stdout.trim();
  const m = /^([a-z ]+?)(?: \(([^)]*)\))?$/.exec(line);
  if (!m || !DOMAIN_STATES.includes(m[1]!)) return bad('domstate', stdout);
  return m[2] === undefined ? { state: m[1] as DomainStateName } : { state: m[1] as DomainStateName, reason: m[2] };
}

/** Whether a domain in this state has a live configuration that devices can be hot-plugged into. */
export function isActive(state: DomainStateName): boolean {
  return state !== 'shut off' && state !== 'crashed' && state !== 'no state';
}

export interface BlkListEntry {
  /** file, block, network, volume... */
  type: string;
  /** disk, cdrom, lun, floppy. */
  device: string;
  target: string;
  /** Path, IQN/LUN or volume; undefined for an empty drive ("-"). */
  source?: string;
}

/**
 * `virsh domblklist --details DOMAIN [--inactive]`:
 *    Type      Device   Target   Source
 *   ---------------------------------------------------------------------
 *    file      cdrom    hdc      -
 *    volume    disk     sdb      unit:0:0:2
 *    network   cdrom    sdc      iqn.2024-01.dev.virt-iscsi:fcap/3
 */
export function parseBlkList(stdout: string): BlkListEntry[] {
  return parseTable(stdout, 'domblklist').map((r) => {
    const entry: BlkListEntry = {
      type: r.Type ?? bad('domblklist', stdout),
      device: r.Device ?? bad('domblklist', stdout),
      target: r.Target ?? bad('domblklist', stdout),
    };
    if (r.Source && r.Source !== '-') entry.source = r.Source;
    return entry;
  });
}

export interface BlkInfo {
  capacity: number;
  allocation: number;
  physical: number;
}

/**
 * `virsh domblkinfo DOMAIN DEV` (bytes unless --human):
 *   Capacity:       8388608
 *   Allocation:     8388608
 *   Physical:       8388608
 */
export function parseBlkInfo(stdout: string): BlkInfo {
  const kv = parseKeyValues(stdout);
  return {
    capacity: bytes('domblkinfo Capacity', kv.get('Capacity')),
    allocation: bytes('domblkinfo Allocation', kv.get('Allocation')),
    physical: bytes('domblkinfo Physical', kv.get('Physical')),
  };
}
