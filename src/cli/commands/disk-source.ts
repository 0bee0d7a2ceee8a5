// The disk source flags of `attach` and `media insert`: --by-path, --portal/--target/--lun
// or --pool/--volume, and --mode to say how the domain reaches it.
import { Option, type Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { byPathSource, type SourceSpec } from '../../hypervisor/disks.js';
import type { Virsh } from '../../hypervisor/virsh.js';
import { BY_PATH_DIR, parseByPath } from '../../names/by-path.js';
import { parsePortal } from '../../names/portal.js';
import type { DiskAuth } from '../../xml/disk.js';
import { chapAuth, parseLunFlag, sourceForm, type ChapFlags, type SourceFormFlags } from './source-flags.js';

export const SOURCE_MODES = ['block', 'network', 'volume'] as const;
export type SourceMode = (typeof SOURCE_MODES)[number];

export interface SourceFlags extends SourceFormFlags, ChapFlags {
  mode?: SourceMode;
  initiator?: string;
}

export function addSourceOptions(cmd: Command): Command {
  return cmd
    .option('--by-path <path>', 'a LUN the hypervisor is logged in to: /dev/disk/by-path/ip-...-iscsi-IQN-lun-N (or just its name)')
    .option('--portal <host[:port]>', 'target portal, e.g. 192.0.2.1 or [fe80::1]:3260')
    .option('--target <iqn>', 'target IQN')
    .option('--lun <n>', 'LUN number')
    .option('--pool <pool>', 'libvirt pool holding the volume')
    .option('--volume <volume>', 'volume of --pool, e.g. unit:0:0:1')
    .addOption(
      new Option('--mode <mode>', 'block: the host device (after login); network: QEMU logs in itself; volume: from a pool (default: what the source flags name)').choices([
        ...SOURCE_MODES,
      ]),
    )
    .option('--initiator <iqn>', 'network mode: initiator IQN QEMU logs in with')
    .option('--chap-user <user>', 'network mode: CHAP user')
    .option('--chap-secret-usage <name>', 'network mode: usage name of the libvirt secret with the CHAP password')
    .option('--chap-secret-uuid <uuid>', 'network mode: or the UUID of that secret');
}

/** The one source the flags give, in the mode asked for (by-path <-> portal/target/lun convert). */
export async function sourceSpec(virsh: Virsh, o: SourceFlags): Promise<SourceSpec> {
  const kind = sourceForm(o);
  const mode = o.mode ?? kind;
  const auth = chapAuth(o);
  if (mode !== 'network' && (auth || o.initiator !== undefined)) {
    throw new ValidationError('--initiator and --chap-* apply to --mode network, where QEMU logs in itself', 'mode');
  }
  if (kind === 'volume' || mode === 'volume') {
    if (kind !== mode) throw new ValidationError(`--mode ${mode} does not go with ${{ block: '--by-path', network: '--portal/--target/--lun', volume: '--pool/--volume' }[kind]}; a volume comes from --pool P --volume V`, 'mode');
    return { mode: 'volume', pool: o.pool!, volume: o.volume! };
  }
  if (kind === 'block') {
    const dev = o.byPath!.startsWith('/') ? o.byPath! : `${BY_PATH_DIR}/${o.byPath}`;
    const id = parseByPath(dev);
    if (mode === 'block') return { mode: 'block', dev };
    if (!id) throw new ValidationError(`--by-path ${JSON.stringify(o.byPath)} is not an iSCSI LUN's ${BY_PATH_DIR}/ip-ADDRESS:PORT-iscsi-IQN-lun-N, so it names no portal for --mode network`, 'by-path');
    return network({ host: id.address, port: id.port }, id.iqn, id.lun, o, auth);
  }
  const portal = parsePortal(o.portal!);
  const lun = parseLunFlag(o.lun!);
  if (mode === 'block') return byPathSource(virsh, portal, o.target!, lun);
  return network(portal, o.target!, lun, o, auth);
}

function network(portal: { host: string; port: number }, target: string, lun: number, o: SourceFlags, auth: DiskAuth | undefined): SourceSpec {
  return { mode: 'network', portal, target, lun, ...(o.initiator !== undefined ? { initiator: o.initiator } : {}), ...(auth ? { auth } : {}) };
}
