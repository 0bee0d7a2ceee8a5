// Read-only facts about a hypervisor that decide how an export is done there: the domain's
// configurations (when it is defined there), its pools, whether open-iscsi can log in,
// whether libvirt has the iscsi-direct pool backend, the initiator name it would log in
// with. Asked through the drivers (virsh, hypervisor/host.ts), all at once.
import { viewIfThere } from '../hypervisor/disk-steps.js';
import { hasProgram, hostName, initiatorName, kernelModule, machineId, qemuFormats, type ModuleState } from '../hypervisor/host.js';
import type { DomainView } from '../hypervisor/placement.js';
import { VirshError } from '../hypervisor/virsh-errors.js';
import type { PoolListEntry } from '../hypervisor/virsh-parse.js';
import type { Virsh } from '../hypervisor/virsh.js';
import { attr, child, children, parseXml } from '../xml/codec.js';
import type { PoolType } from '../xml/pool.js';

export { hostName, viewIfThere };

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

export type IscsiTcp = ModuleState;

export interface HypervisorFacts {
  /** The domain's running and persistent configurations; undefined when it is not defined on this host. */
  view?: DomainView;
  /** Every pool libvirt has, as the export started. */
  pools: PoolListEntry[];
  /** open-iscsi's iscsiadm is installed (not asked when no candidate mode logs in: false). */
  iscsiadm: boolean;
  iscsiTcp: IscsiTcp;
  /** libvirt can run iscsi-direct pools (asked only when a candidate mode needs it). */
  iscsiDirect: boolean;
  /** multipath-tools is installed (asked only when a candidate mode needs it). */
  multipathTools: boolean;
  /** QEMU here can open rbd: images itself (its rbd block driver is installed). */
  qemuRbd: boolean;
  /** From /etc/iscsi/initiatorname.iscsi, when the file is there. */
  initiatorName?: string;
  hostname: string;
  machineId?: string;
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

/**
 * Every fact at once: the queries are independent, so they run in parallel. `candidates`:
 * the modes that may be used (the one asked for, or every automatic one), so only what
 * they need is probed.
 */
/** What a candidate mode needs probed (a ModeEntry has both). */
export interface ProbeNeeds {
  hostLogin: boolean;
  multipath?: boolean;
  pool?: PoolType;
  transport?: 'iscsi' | 'rbd';
}

export async function probeHypervisor(virsh: Virsh, domain: string, candidates: readonly ProbeNeeds[]): Promise<HypervisorFacts> {
  const runner = virsh.runner;
  const login = candidates.some((m) => m.hostLogin);
  const direct = candidates.some((m) => m.pool === 'iscsi-direct');
  // Asked along with the rest, but only waited for (and its failure only counts) when no
  // candidate that logs in can be used: then iscsi-direct decides.
  const types = direct ? poolTypes(virsh) : Promise.resolve([]);
  types.catch(() => undefined);
  const rbd = candidates.some((m) => m.transport === 'rbd');
  const mp = candidates.some((m) => m.multipath);
  const [view, pools, iscsiadm, tcp, initiator, hostname, id, formats, multipathTools] = await Promise.all([
    viewIfThere(virsh, domain),
    virsh.poolList(),
    login ? hasProgram(runner, ['iscsiadm', '--version']) : Promise.resolve(false),
    login ? kernelModule(runner, 'iscsi_tcp') : Promise.resolve('missing' as const),
    initiatorName(runner),
    hostName(runner),
    machineId(runner),
    rbd ? qemuFormats(runner) : Promise.resolve([]),
    // `multipath -h` prints its usage (exit 0 or 1); 127: not installed.
    mp ? hasProgram(runner, ['multipath', '-h']) : Promise.resolve(false),
  ]);
  const loginWorks = iscsiadm && tcp !== 'missing';
  const needDirect = direct && !(login && loginWorks);
  const facts: HypervisorFacts = { pools, iscsiadm, iscsiTcp: tcp, iscsiDirect: needDirect ? (await types).includes('iscsi-direct') : false, qemuRbd: formats.includes('rbd'), multipathTools, hostname };
  if (view) facts.view = view;
  if (initiator !== undefined) facts.initiatorName = initiator;
  if (id !== undefined) facts.machineId = id;
  return facts;
}
