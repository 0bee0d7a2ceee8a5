// Read-only facts about a host that decide how an export is done: its name, and on the
// hypervisor whether open-iscsi can log in (iscsiadm + the iscsi_tcp module), whether
// libvirt has the iscsi-direct pool backend, and the initiator name it would log in with.
import { readView } from '../hypervisor/disks.js';
import { INITIATOR_NAME_FILE } from '../hypervisor/iscsiadm.js';
import { parseInitiatorName } from '../hypervisor/iscsiadm-parse.js';
import type { DomainView } from '../hypervisor/placement.js';
import { VirshError } from '../hypervisor/virsh-errors.js';
import type { PoolListEntry } from '../hypervisor/virsh-parse.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { parseIscsiName } from '../names/iscsi-name.js';
import type { Runner } from '../runner/types.js';
import { attr, child, children, parseXml } from '../xml/codec.js';
import type { ExportMode } from './records.js';

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

/**
 * `virsh pool-capabilities` (libvirt >= 5.2), e.g.
 *   <storagepoolCapabilities>
 *     <pool type='iscsi' supported='yes'>
 *     </pool>
 *     <pool type='iscsi-direct' supported='yes'>
 *     </pool>
 *     <pool type='rbd' supported='no'>
 * The pool types this libvirt can run.
 */
export function parsePoolCapabilities(xml: string): string[] {
  const root = child(parseXml(xml, ['pool']), 'storagepoolCapabilities');
  return children(root, 'pool')
    .filter((p) => attr(p, 'supported') === 'yes')
    .flatMap((p) => attr(p, 'type') ?? []);
}

export type IscsiTcp = 'loaded' | 'loadable' | 'missing';

export interface HypervisorFacts {
  /** The domain's running and persistent configurations. */
  view: DomainView;
  /** Every pool libvirt has, as the export started. */
  pools: PoolListEntry[];
  /** open-iscsi's iscsiadm is installed (not asked when the mode needs no login: false). */
  iscsiadm: boolean;
  iscsiTcp: IscsiTcp;
  /** libvirt can run iscsi-direct pools (asked only when that is the mode, or a candidate). */
  iscsiDirect: boolean;
  /** From /etc/iscsi/initiatorname.iscsi, when the file is there. */
  initiatorName?: string;
  hostname: string;
  machineId?: string;
}

/** Exit 127: no such program. Anything else means it is installed. */
async function installed(runner: Runner, argv: string[]): Promise<boolean> {
  return (await runner.run(argv, { query: true })).exitCode !== 127;
}

/** Loaded (/sys/module/iscsi_tcp), or loadable (`modprobe -n -q` finds it), or neither. */
async function iscsiTcp(runner: Runner): Promise<IscsiTcp> {
  if ((await runner.run(['test', '-d', '/sys/module/iscsi_tcp'], { query: true })).exitCode === 0) return 'loaded';
  return (await runner.run(['modprobe', '--dry-run', '--quiet', 'iscsi_tcp'], { query: true })).exitCode === 0 ? 'loadable' : 'missing';
}

async function poolTypes(virsh: Virsh): Promise<string[]> {
  try {
    return parsePoolCapabilities((await virsh.run(['pool-capabilities'], { query: true })).stdout);
  } catch (e) {
    // libvirt older than 5.2 has no pool-capabilities: iscsi-direct (4.7) cannot be asked for.
    if (e instanceof VirshError) return [];
    throw e;
  }
}

async function initiatorName(runner: Runner): Promise<string | undefined> {
  const text = await runner.readFile(INITIATOR_NAME_FILE);
  const name = text === undefined ? undefined : parseInitiatorName(text);
  return name === undefined ? undefined : parseIscsiName(name, `InitiatorName in ${INITIATOR_NAME_FILE} on ${runner.host}`);
}

/** Can open-iscsi log in; then, only when that decides nothing, can libvirt run iscsi-direct pools. */
async function loginWays(virsh: Virsh, mode: ExportMode | undefined): Promise<Pick<HypervisorFacts, 'iscsiadm' | 'iscsiTcp' | 'iscsiDirect'>> {
  const runner = virsh.runner;
  const login = mode === undefined || mode === 'pool' || mode === 'block';
  // With no mode asked for, libvirt's pool types are asked along with the login probes.
  const types = mode === 'direct' || mode === undefined ? poolTypes(virsh) : Promise.resolve([]);
  types.catch(() => undefined);
  const [iscsiadm, tcp] = login ? await Promise.all([installed(runner, ['iscsiadm', '--version']), iscsiTcp(runner)]) : [false, 'missing' as const];
  const direct = mode === 'direct' || (mode === undefined && !(iscsiadm && tcp !== 'missing'));
  return { iscsiadm, iscsiTcp: tcp, iscsiDirect: direct && (await types).includes('iscsi-direct') };
}

/**
 * Every fact at once: the queries are independent, so they run in parallel. `mode`: the
 * mode asked for, so that only what it needs is probed (undefined: every mode is a candidate).
 */
export async function probeHypervisor(virsh: Virsh, domain: string, mode?: ExportMode): Promise<HypervisorFacts> {
  const runner = virsh.runner;
  const [view, pools, ways, initiator, hostname, machineId] = await Promise.all([
    readView(virsh, domain),
    virsh.poolList(),
    loginWays(virsh, mode),
    initiatorName(runner),
    hostName(runner),
    runner.readFile('/etc/machine-id'),
  ]);
  const facts: HypervisorFacts = { view, pools, ...ways, hostname };
  if (initiator !== undefined) facts.initiatorName = initiator;
  if (machineId !== undefined) facts.machineId = machineId.trim();
  return facts;
}

/** The host's open-iscsi can log in: what `pool` and `block` need. */
export const canLogIn = (f: HypervisorFacts): boolean => f.iscsiadm && f.iscsiTcp !== 'missing';

/**
 * The best mode the hypervisor can do: an iscsi pool when open-iscsi can log in, else an
 * iscsi-direct pool, else a network disk (QEMU logs in itself).
 */
export function chooseMode(f: HypervisorFacts): ExportMode {
  if (canLogIn(f)) return 'pool';
  if (f.iscsiDirect) return 'direct';
  return 'network';
}
