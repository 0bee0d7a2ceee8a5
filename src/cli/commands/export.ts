// `virt-iscsi export IMAGE --vm VM`: the main job, one command (src/workflows/export.ts).
import { Option, type Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { withInterrupts } from '../../plan/plan.js';
import { BACKEND_NAMES, type BackendName } from '../../storage/backends.js';
import { DEFAULT_CONF_DIR } from '../../storage/tgt/records.js';
import { exportImage, type ExportResult } from '../../workflows/export.js';
import { DEFAULT_HOST_RECORD_DIR, EXPORT_MODES, isIscsi, recordPool, type Attachment, type ExportMode } from '../../workflows/records.js';
import { addConnect, addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { addCephOptions, cephClientFromFlags, type CephFlags } from '../ceph-options.js';
import { withStepDisplay } from '../progress.js';
import { runCommand } from './hypervisor-common.js';

interface ExportFlags extends HostCommandOptions, CephFlags {
  vm?: string;
  addHypervisor?: string;
  removeHypervisor?: string;
  storage: string;
  hypervisor: string[];
  connect: string;
  portal: string[];
  minPaths?: number;
  mode?: ExportMode;
  cdrom?: boolean;
  readonly?: boolean;
  chap?: boolean;
  name?: string;
  persist: boolean;
  backend?: BackendName;
  controlPort?: number;
  confDir?: string;
  install?: boolean;
  hostRecords?: string;
  lockTimeout?: number;
  replacementTimeout?: number;
  noopOutInterval?: number;
  noopOutTimeout?: number;
}

/** A whole number of seconds, 1 to 3600. */
export function seconds(value: string): number {
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 3600) throw new ValidationError(`${JSON.stringify(value)} is not a number of seconds from 1 to 3600`, 'seconds');
  return Number(value);
}

/** A repeatable option's values, in the order given. */
const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** --min-paths: a whole number (checked against the portals given by the export). */
export function pathCount(value: string): number {
  if (!/^\d{1,3}$/.test(value)) throw new ValidationError(`--min-paths ${JSON.stringify(value)} is not a number of paths`, 'min-paths');
  return Number(value);
}

export function controlPort(value: string): number {
  if (!/^\d{1,5}$/.test(value)) throw new ValidationError(`--control-port ${JSON.stringify(value)} is not a number`, 'control-port');
  return Number(value);
}

const MiB = 1024 * 1024;
const size = (b: number): string => (b >= 1024 * MiB ? `${(b / 1024 / MiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`);

/**
 * The export as --json prints it: the record, plus the first hypervisor's part at the top
 * level as round 1 printed it (a JSON document's fields are added to, never renamed).
 */
export function exportJson(r: ExportResult): Record<string, unknown> {
  const x = r.record;
  const first = x.hypervisors[0]!;
  return {
    ...x,
    hypervisor: first.uri,
    connect: first.connect,
    initiator: first.initiator,
    ...(first.attachment ? { attachment: first.attachment } : {}),
    changed: r.applied > 0,
    applied: r.applied,
    skipped: r.skipped,
    undo: r.undo,
  };
}

const where = (a: Attachment | undefined): string =>
  a ? `${a.dev} (${a.device} on ${a.bus}${a.media ? ', media in an existing drive' : ''}; ${[a.live ? 'live' : '', a.config ? 'persistent' : ''].filter(Boolean).join(' and ')})` : 'a free dev, chosen when it runs';

/** The summary: what was made, where the disk is in the VM, and the command that undoes it. */
export function renderExport(r: ExportResult): string {
  const x = r.record;
  const head = r.dryRun
    ? `would export ${x.image} as ${x.name} (mode ${x.mode})`
    : r.applied === 0
      ? `${x.name} was already exported: nothing changed`
      : `exported ${x.image} as ${x.name} (mode ${x.mode})`;
  const pool = recordPool(x);
  const several = x.hypervisors.length > 1;
  const lines = [
    head,
    `  image   ${x.image} (${size(x.sizeBytes)}${x.cdrom ? ', CD-ROM' : x.readonly ? ', read-only' : ''}) on ${x.storage}`,
    ...(isIscsi(x)
      ? [
          `  target  ${x.target} LUN ${x.lun} (serial ${x.serial}, ${x.backend}), allowing ${x.hypervisors.map((h) => h.initiator).join(', ')}${x.chapUser ? ` with CHAP user ${x.chapUser}` : ''}`,
          'portals' in x ? `  portals ${x.portals.join(', ')} (at least ${x.minPaths} up), map ${x.wwid}` : `  portal  ${x.portal}`,
        ]
      : [`  ceph    monitors ${x.monitors.join(', ')}, client ${x.ceph?.id ?? 'admin'} (its key in libvirt secret ${x.secretUsage})`]),
    ...(isIscsi(x) && x.session ? [`  session replacement_timeout ${x.session.replacementTimeout} s, noop-out every ${x.session.noopOutInterval} s (timeout ${x.session.noopOutTimeout} s)`] : []),
    ...(pool ? [`  pool    ${pool} on ${x.hypervisors.map((h) => h.uri).join(', ')}`] : []),
    ...(several
      ? x.hypervisors.map((h) => `  VM      ${x.vm} on ${h.uri}: ${h.attachment ? where(h.attachment) : 'not defined there (ready for it)'}`)
      : [`  VM      ${x.vm}: ${where(x.hypervisors[0]!.attachment)}`]),
    `undo with: ${r.undo}`,
  ];
  return lines.join('\n');
}

export function registerExport(program: Command): void {
  const cmd = addJson(
    addDryRun(
      addCephOptions(addSshOptions(
        addConnect(
          program
            .command('export')
            .description('export a disk image or ISO from the storage host to a VM over iSCSI: target, pool or login, attach; rolled back if a step fails')
            .argument('<image>', 'raw image file or block device on the storage host (an .iso becomes a read-only CD-ROM), or rbd:POOL/IMAGE of a Ceph RBD image')
            .option('--vm <domain>', 'the domain that gets the disk')
            .option('--add-hypervisor <uri>', 'extend the export NAME (the argument) to one more hypervisor the VM may run on')
            .option('--remove-hypervisor <uri>', 'take the export NAME (the argument) away from a hypervisor (refused while the VM runs there)')
            .option('--storage <uri>', 'storage host: local or ssh://[user@]host[:port]', 'local')
            .option('--hypervisor <uri>', 'hypervisor: local or ssh://[user@]host[:port]; give it again for each hypervisor the VM may run on (default: local)', collect, [])
            .option('--portal <addr>', 'HOST[:PORT] the hypervisor dials (default: 127.0.0.1 when both are one host, else the storage host); give it once per path (IP[:PORT] of the storage host each) for mode multipath', collect, [])
            .option('--min-paths <n>', 'multipath: paths that must be up before the VM gets the disk (default: all portals)', pathCount)
            .addOption(new Option('--mode <mode>', 'how the hypervisor sees the LUN (default: the best it can do)').choices([...EXPORT_MODES]))
            .option('--cdrom', 'a read-only CD-ROM (the default for *.iso)')
            .option('--readonly', 'a read-only disk')
            .option('--chap', 'require CHAP (a generated secret, kept by the target and a libvirt secret only)')
            .option('--name <name>', 'export name (default: the image name without extension)')
            .option('--no-persist', 'attach to the running VM only, not to its definition')
            .addOption(new Option('--backend <name>', 'target software (default: detected on the storage host)').choices([...BACKEND_NAMES]))
            .option('--control-port <n>', 'tgt: a private tgtd control port (tgtadm -C); one virt-iscsi starts listens on --portal', controlPort)
            .option('--conf-dir <dir>', `tgt: where target records are written (default ${DEFAULT_CONF_DIR})`)
            .option('--install', 'install tgt on the storage host when it is missing')
            .option('--host-records <dir>', `where the storage host keeps export records (default ${DEFAULT_HOST_RECORD_DIR})`)
            .option('--lock-timeout <seconds>', "how long to wait for another virt-iscsi's lock on the storage host (default 60)", seconds)
            .option('--replacement-timeout <seconds>', 'pool, block, multipath: how long I/O waits for a lost iSCSI session before failing (open-iscsi replacement_timeout; default 120, multipath 5)', seconds)
            .option('--noop-out-interval <seconds>', 'pool, block, multipath: seconds between pings on an idle iSCSI connection (default 5)', seconds)
            .option('--noop-out-timeout <seconds>', 'pool, block, multipath: seconds a ping may go unanswered before the connection counts as lost (default 5)', seconds),
        ),
      )),
    ),
  );
  cmd.action(async (image: string, o: ExportFlags) => {
    const given = <K extends keyof ExportFlags>(k: K): ExportFlags[K] | undefined => (cmd.getOptionValueSource(k) === 'default' ? undefined : o[k]);
    if (o.addHypervisor !== undefined || o.removeHypervisor !== undefined) return changeMembership(image, o);
    if (o.vm === undefined) throw new ValidationError('export IMAGE needs --vm DOMAIN (or export NAME --add-hypervisor / --remove-hypervisor URI)', 'vm');
    await withInterrupts((signal, interrupts) =>
      runCommand(
        o,
        (s) =>
          withStepDisplay(o, s.recorded, (hooks) =>
            exportImage(s, {
              image,
              vm: o.vm!,
              name: o.name,
              storage: o.storage,
              hypervisors: o.hypervisor.length > 0 ? o.hypervisor : ['local'],
              connect: o.connect,
              ...(o.portal.length > 1 ? { portals: o.portal } : o.portal.length === 1 ? { portal: o.portal[0] } : {}),
              ...(o.minPaths !== undefined ? { minPaths: o.minPaths } : {}),
              mode: o.mode,
              cdrom: o.cdrom,
              readonly: o.readonly,
              chap: o.chap,
              persist: given('persist'),
              backend: o.backend,
              controlPort: o.controlPort,
              confDir: o.confDir,
              install: o.install,
              hostRecordDir: o.hostRecords,
              ceph: cephClientFromFlags(o),
              ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout * 1000 } : {}),
              ...(o.replacementTimeout !== undefined ? { replacementTimeout: o.replacementTimeout } : {}),
              ...(o.noopOutInterval !== undefined ? { noopOutInterval: o.noopOutInterval } : {}),
              ...(o.noopOutTimeout !== undefined ? { noopOutTimeout: o.noopOutTimeout } : {}),
              signal,
              setLeftHint: interrupts.setLeftHint,
              ...hooks,
            }),
          ),
        renderExport,
        exportJson,
      ),
    );
  });
}

/** `export NAME --add-hypervisor URI` / `--remove-hypervisor URI`. */
async function changeMembership(name: string, o: ExportFlags): Promise<void> {
  if (o.addHypervisor !== undefined && o.removeHypervisor !== undefined) throw new ValidationError('--add-hypervisor and --remove-hypervisor exclude each other; give one', 'hypervisor');
  const { addHypervisor, removeHypervisor } = await import('../../workflows/membership.js');
  const base = { name, ...(given(o.storage) ? { storage: o.storage } : {}), ...(o.hostRecords !== undefined ? { hostRecordDir: o.hostRecords } : {}) };
  await withInterrupts((signal, interrupts) =>
    runCommand(
      o,
      (s) =>
        withStepDisplay(o, s.recorded, (hooks) =>
          o.addHypervisor !== undefined
            ? addHypervisor(s, { ...base, hypervisor: o.addHypervisor, signal, setLeftHint: interrupts.setLeftHint, ...hooks })
            : removeHypervisor(s, { ...base, hypervisor: o.removeHypervisor!, signal, ...hooks }).then((r) => ({ record: r.record, applied: r.applied, skipped: 0, dryRun: r.dryRun, undo: '' })),
        ),
      (r) => renderExport(r).replace(/\nundo with: $/, ''),
      exportJson,
    ),
  );
}

/** The storage option was given (not its default). */
const given = (storage: string): boolean => storage !== 'local';
