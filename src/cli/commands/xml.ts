// `virt-iscsi xml ...`: print documents built from flags; touch nothing.
import { Option, type Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { BY_PATH_DIR, parseByPath } from '../../names/by-path.js';
import { parsePortal } from '../../names/portal.js';
import { buildDisk, cdromDisk, type DiskBus, type DiskDef, type DiskSource } from '../../xml/disk.js';
import { buildPool, poolDef, POOL_TYPE_NAMES, type PoolType } from '../../xml/pool.js';
import { buildSecret, iscsiChapSecret } from '../../xml/secret.js';
import { printText } from '../output.js';
import { chapAuth, parseLunFlag, sourceForm, type ChapFlags, type SourceFormFlags } from './source-flags.js';
import { addXmlTargetConfCommand } from './xml-target-conf.js';

export interface PoolFlags extends ChapFlags {
  name: string;
  portal: string;
  target: string;
  type: PoolType;
  initiator?: string;
  uuid?: string;
}

export interface DiskFlags extends SourceFormFlags, ChapFlags {
  initiator?: string;
  dev?: string;
  bus: DiskBus;
  cdrom?: boolean;
  readonly?: boolean;
  serial?: string;
  alias?: string;
}

export interface SecretFlags {
  usage: string;
  description?: string;
  uuid?: string;
}

/** --chap-user with exactly one of --chap-secret-usage / --chap-secret-uuid, or none of them. */
export function renderPoolXml(o: PoolFlags): string {
  if (o.type === 'iscsi-direct' && o.initiator === undefined) {
    throw new ValidationError('--type iscsi-direct needs --initiator IQN: libvirt logs in with an initiator name of its own', 'initiator');
  }
  const portal = parsePortal(o.portal);
  return buildPool(
    poolDef({
      type: o.type,
      name: o.name,
      uuid: o.uuid,
      hosts: [{ name: portal.host, port: portal.port }],
      device: o.target,
      initiator: o.initiator,
      auth: chapAuth(o),
    }),
  );
}

/** The one source form the flags give: --by-path, --portal/--target/--lun, or --pool/--volume. */
function diskSource(o: DiskFlags): DiskSource {
  const network = sourceForm(o) === 'network';
  const auth = chapAuth(o);
  if (!network && (auth || o.initiator !== undefined)) {
    throw new ValidationError('--initiator and --chap-* apply to --portal/--target/--lun disks, where QEMU logs in itself', 'source');
  }
  if (o.byPath !== undefined) {
    const dev = o.byPath.startsWith('/') ? o.byPath : `${BY_PATH_DIR}/${o.byPath}`;
    if (!parseByPath(dev)) throw new ValidationError(`--by-path ${JSON.stringify(o.byPath)} is not an iSCSI LUN's ${BY_PATH_DIR}/ip-ADDRESS:PORT-iscsi-IQN-lun-N`, 'by-path');
    return { type: 'block', dev };
  }
  if (network) {
    const portal = parsePortal(o.portal!);
    return { type: 'network', protocol: 'iscsi', target: o.target!, lun: parseLunFlag(o.lun!), hosts: [{ name: portal.host, port: portal.port }], initiator: o.initiator, auth };
  }
  return { type: 'volume', pool: o.pool!, volume: o.volume! };
}

/** The usual second device of a bus (the first is most often the boot disk). */
function defaultDev(bus: DiskBus, cdrom: boolean): string {
  const prefix = { scsi: 'sd', sata: 'sd', usb: 'sd', virtio: 'vd', ide: 'hd', fdc: 'fd' }[bus];
  return bus === 'ide' && cdrom ? 'hdc' : `${prefix}b`;
}

export function renderDiskXml(o: DiskFlags): string {
  const source = diskSource(o);
  const target = { dev: o.dev ?? defaultDev(o.bus, o.cdrom === true), bus: o.bus };
  const disk: DiskDef = o.cdrom
    ? { ...cdromDisk({ source, target, alias: o.alias }), serial: o.serial }
    : { device: 'disk', source, driver: { name: 'qemu', type: 'raw' }, target, readonly: o.readonly, serial: o.serial, alias: o.alias };
  return buildDisk(disk);
}

export function renderSecretXml(o: SecretFlags): string {
  return buildSecret(iscsiChapSecret({ usage: o.usage, description: o.description, uuid: o.uuid }));
}

function addChapOptions(cmd: Command): Command {
  return cmd
    .option('--chap-user <user>', 'CHAP user name')
    .option('--chap-secret-usage <name>', 'usage name of the libvirt secret holding the CHAP password (see `xml secret`)')
    .option('--chap-secret-uuid <uuid>', 'or the UUID of that secret');
}

export function registerXml(program: Command): void {
  const xml = program.command('xml').description('print the XML / config documents virt-iscsi would write (touches nothing)');
  addChapOptions(
    xml
      .command('pool')
      .description('print a libvirt storage pool (iscsi or iscsi-direct) for `virsh pool-define`')
      .requiredOption('--name <name>', 'pool name')
      .requiredOption('--portal <host[:port]>', 'target portal, e.g. 192.0.2.1 or [fe80::1]:3260')
      .requiredOption('--target <iqn>', 'target IQN')
      .addOption(new Option('--type <type>', 'iscsi (the host logs in with open-iscsi) or iscsi-direct (libvirt logs in itself)').choices(POOL_TYPE_NAMES).default('iscsi'))
      .option('--initiator <iqn>', 'initiator IQN to log in with (required for iscsi-direct)')
      .option('--uuid <uuid>', 'pool UUID (default: libvirt makes one)'),
  ).action((o: PoolFlags) => printText(renderPoolXml(o)));

  addChapOptions(
    xml
      .command('disk')
      .description('print a domain <disk> for `virsh attach-device`: a by-path block device, an iSCSI network disk, or a pool volume')
      .option('--by-path <path>', 'host block device /dev/disk/by-path/ip-...-iscsi-IQN-lun-N (or just its name)')
      .option('--portal <host[:port]>', 'network disk: target portal (QEMU logs in itself)')
      .option('--target <iqn>', 'network disk: target IQN')
      .option('--lun <n>', 'network disk: LUN number')
      .option('--pool <pool>', 'volume disk: libvirt pool')
      .option('--volume <volume>', 'volume disk: volume name, e.g. unit:0:0:1')
      .option('--initiator <iqn>', 'network disk: initiator IQN QEMU logs in with'),
  )
    .option('--dev <name>', 'target device in the guest (default: sdb, vdb, hdb; hdc for an IDE cdrom)')
    .addOption(new Option('--bus <bus>', 'guest bus (scsi needs a virtio-scsi controller; ide/sata cannot hotplug)').choices(['scsi', 'virtio', 'sata', 'ide']).default('scsi'))
    .option('--cdrom', 'a read-only CD-ROM instead of a disk')
    .option('--readonly', 'read-only disk')
    .option('--serial <serial>', 'serial number the guest sees')
    .option('--alias <ua-name>', 'user alias (starts with "ua-"), for detach-device-alias')
    .action((o: DiskFlags) => printText(renderDiskXml(o)));

  xml
    .command('secret')
    .description('print a private, persistent libvirt secret for a CHAP password (set its value with `virsh secret-set-value --file`)')
    .requiredOption('--usage <name>', 'usage name pools and disks refer to (--chap-secret-usage)')
    .option('--description <text>', 'free text')
    .option('--uuid <uuid>', 'secret UUID (default: libvirt makes one)')
    .action((o: SecretFlags) => printText(renderSecretXml(o)));

  addXmlTargetConfCommand(xml);
}
