// `virt-iscsi attach VM ...` and `virt-iscsi detach VM --dev NAME`.
import { Option, type Command } from 'commander';
import { planAttach, planDetach } from '../../hypervisor/attach.js';
import { describeSource } from '../../hypervisor/disks.js';
import type { DiskBus } from '../../xml/disk.js';
import { addSourceOptions, sourceSpec, type SourceFlags } from './disk-source.js';
import { addChangeOptions, addFlagOptions, applySteps, flagChoice, openVirsh, runCommand, type FlagOptions, type HypervisorOptions } from './hypervisor-common.js';

interface AttachFlags extends HypervisorOptions, SourceFlags, FlagOptions {
  cdrom?: boolean;
  readonly?: boolean;
  dev?: string;
  bus?: DiskBus;
}

interface DetachFlags extends HypervisorOptions, FlagOptions {
  dev: string;
}

function addAttach(program: Command): void {
  addFlagOptions(
    addChangeOptions(
      addSourceOptions(
        program
          .command('attach')
          .description('give a domain an iSCSI LUN as a disk or read-only CD-ROM, on a bus it can take it on (live and persistent when it runs)')
          .argument('<vm>', 'domain name or UUID'),
      )
        .option('--cdrom', 'a read-only CD-ROM (an ISO) instead of a disk')
        .option('--readonly', 'a read-only disk')
        .option('--dev <name>', 'target dev in the guest, e.g. sdb (default: the next free one on the bus)')
        .addOption(new Option('--bus <bus>', 'guest bus (default: scsi on a virtio-scsi controller, added when missing)').choices(['scsi', 'virtio', 'sata', 'ide', 'usb'])),
    ),
  ).action(async (vm: string, o: AttachFlags) => {
    const flags = flagChoice(o);
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        const plan = await planAttach(virsh, { domain: vm, source: await sourceSpec(virsh, o), cdrom: o.cdrom, readonly: o.readonly, bus: o.bus, dev: o.dev, flags });
        await applySteps(plan.steps, o, s.recorded);
        const p = plan.placement;
        return {
          domain: vm,
          dev: plan.disk.target.dev,
          bus: plan.disk.target.bus,
          device: plan.disk.device,
          source: describeSource(plan.disk.source),
          how: p === undefined ? 'already attached' : p.kind === 'media' ? 'media inserted into an existing drive' : p.controller ? 'attached after adding a virtio-scsi controller' : 'attached',
          ...(p ? { live: p.flags.live, config: p.flags.config, why: p.why } : {}),
        };
      },
      (r) => {
        const head = o.dryRun ? `would give domain ${vm}` : r.how === 'already attached' ? `domain ${vm} already has` : `domain ${vm} has`;
        return `${head} ${r.source} as ${r.device} ${r.dev} (bus ${r.bus}; ${r.how}${r.why ? `: ${r.why}` : ''})`;
      },
    );
  });
}

function addDetach(program: Command): void {
  addFlagOptions(
    addChangeOptions(
      program
        .command('detach')
        .description('take a disk or cdrom away from a domain (live and persistent when it runs)')
        .argument('<vm>', 'domain name or UUID')
        .requiredOption('--dev <name>', 'target dev of the disk, e.g. sdb'),
    ),
  ).action(async (vm: string, o: DetachFlags) => {
    const flags = flagChoice(o);
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        const plan = await planDetach(virsh, { domain: vm, dev: o.dev, flags });
        await applySteps(plan.steps, o, s.recorded);
        return { domain: vm, dev: o.dev, source: describeSource(plan.disk.source), live: plan.flags.live, config: plan.flags.config };
      },
      (r) => `${o.dryRun ? 'would detach' : 'detached'} ${r.dev} (${r.source}) from domain ${vm}`,
    );
  });
}

export function registerAttach(program: Command): void {
  addAttach(program);
  addDetach(program);
}
