// The disk source flags of `attach` and `media insert`: --by-path, --portal/--target/--lun
// or --pool/--volume, and --mode to say how the domain reaches it.
import { Option, type Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { byPathSource, type SourceSpec } from '../../hypervisor/disks.js';
import type { Virsh } from '../../hypervisor/virsh.js';
import { BY_PATH_DIR, parseByPath } from '../../names/by-path.js';
import { parsePortal } from '../../names/portal.js';
import { MAX_LUN, type DiskAuth } from '../../xml/disk.js';

export const SOURCE_MODES = ['block', 'network', 'volume'] as const;
export type SourceMode = (typeof SOURCE_MODES)[number];

export interface SourceFlags {
  byPath?: string;
  portal?: string;
  target?: string;
  lun?: string;
  pool?: string;
  volume?: string;
  mode?: SourceMode;
  initiator?: string;
  chapUser?: string;
  chapSecretUsage?: string;
  chapSecretUuid?: string;
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

function parseLun(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > MAX_LUN) throw new ValidationError(`--lun ${JSON.stringify(text)} is not a LUN number from 0 to ${MAX_LUN}`, 'lun');
  return Number(text);
}

function chapAuth(o: SourceFlags): DiskAuth | undefined {
  const usage = o.chapSecretUsage;
  const uuid = o.chapSecretUuid;
  if (usage !== undefined && uuid !== undefined) throw new ValidationError('give --chap-secret-usage or --chap-secret-uuid, not both', 'chap');
  if (o.chapUser === undefined && usage === undefined && uuid === undefined) return undefined;
  if (o.chapUser === undefined) throw new ValidationError('--chap-secret-usage/--chap-secret-uuid needs --chap-user', 'chap');
  if (usage === undefined && uuid === undefined) {
    throw new ValidationError(`--chap-user ${JSON.stringify(o.chapUser)} needs --chap-secret-usage NAME (or --chap-secret-uuid) naming the libvirt secret with the password`, 'chap');
  }
  return { username: o.chapUser, secret: usage !== undefined ? { usage } : { uuid: uuid! } };
}

/** The one source the flags give, in the mode asked for (by-path <-> portal/target/lun convert). */
export async function sourceSpec(virsh: Virsh, o: SourceFlags): Promise<SourceSpec> {
  const forms = [
    { kind: 'block' as const, flags: ['--by-path'], given: [o.byPath] },
    { kind: 'network' as const, flags: ['--portal', '--target', '--lun'], given: [o.portal, o.target, o.lun] },
    { kind: 'volume' as const, flags: ['--pool', '--volume'], given: [o.pool, o.volume] },
  ];
  const used = forms.filter((f) => f.given.some((v) => v !== undefined));
  const expected = 'give --by-path PATH, or --portal HOST[:PORT] --target IQN --lun N, or --pool P --volume V';
  if (used.length === 0) throw new ValidationError(`no disk source: ${expected}`, 'source');
  if (used.length > 1) throw new ValidationError(`${used.map((f) => f.flags.join('/')).join(' and ')} are different disk sources; ${expected}`, 'source');
  const form = used[0]!;
  const missing = form.flags.filter((_, i) => form.given[i] === undefined);
  if (missing.length > 0) throw new ValidationError(`${form.flags.join(', ')} go together; missing ${missing.join(', ')}`, 'source');
  const mode = o.mode ?? form.kind;
  const auth = chapAuth(o);
  if (mode !== 'network' && (auth || o.initiator !== undefined)) {
    throw new ValidationError('--initiator and --chap-* apply to --mode network, where QEMU logs in itself', 'mode');
  }
  if (form.kind === 'volume' || mode === 'volume') {
    if (form.kind !== mode) throw new ValidationError(`--mode ${mode} does not go with ${form.flags.join('/')}; a volume comes from --pool P --volume V`, 'mode');
    return { mode: 'volume', pool: o.pool!, volume: o.volume! };
  }
  if (form.kind === 'block') {
    const dev = o.byPath!.startsWith('/') ? o.byPath! : `${BY_PATH_DIR}/${o.byPath}`;
    const id = parseByPath(dev);
    if (mode === 'block') return { mode: 'block', dev };
    if (!id) throw new ValidationError(`--by-path ${JSON.stringify(o.byPath)} is not an iSCSI LUN's ${BY_PATH_DIR}/ip-ADDRESS:PORT-iscsi-IQN-lun-N, so it names no portal for --mode network`, 'by-path');
    return network({ host: id.address, port: id.port }, id.iqn, id.lun, o, auth);
  }
  const portal = parsePortal(o.portal!);
  const lun = parseLun(o.lun!);
  if (mode === 'block') return byPathSource(virsh, portal, o.target!, lun);
  return network(portal, o.target!, lun, o, auth);
}

function network(portal: { host: string; port: number }, target: string, lun: number, o: SourceFlags, auth: DiskAuth | undefined): SourceSpec {
  return { mode: 'network', portal, target, lun, ...(o.initiator !== undefined ? { initiator: o.initiator } : {}), ...(auth ? { auth } : {}) };
}
