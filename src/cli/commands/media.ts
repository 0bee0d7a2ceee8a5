// `virt-iscsi media insert|eject VM --dev NAME`: media in an existing cdrom drive, the way
// to hand a running domain a CD-ROM on IDE or SATA, which cannot hot-plug.
import type { Command } from 'commander';
import { describeSource } from '../../hypervisor/disks.js';
import { planEject, planInsert } from '../../hypervisor/media.js';
import { addSourceOptions, sourceSpec, type SourceFlags } from './disk-source.js';
import { addChangeOptions, addFlagOptions, applySteps, flagChoice, openVirsh, runCommand, type FlagOptions, type HypervisorOptions } from './hypervisor-common.js';

interface MediaFlags extends HypervisorOptions, FlagOptions {
  dev: string;
}

interface InsertFlags extends MediaFlags, SourceFlags {
  replace?: boolean;
}

export function registerMedia(program: Command): void {
  const media = program.command('media').description("change the media in a domain's cdrom drive");
  addFlagOptions(
    addChangeOptions(
      addSourceOptions(
        media
          .command('insert')
          .description('put an iSCSI LUN (an ISO) into an empty cdrom drive')
          .argument('<vm>', 'domain name or UUID')
          .requiredOption('--dev <name>', 'target dev of the cdrom drive, e.g. hdc'),
      ).option('--replace', 'replace media already in the drive'),
    ),
  ).action(async (vm: string, o: InsertFlags) => {
    const flags = flagChoice(o);
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        const plan = await planInsert(virsh, { domain: vm, dev: o.dev, source: await sourceSpec(virsh, o), replace: o.replace, flags });
        await applySteps(plan.steps, o, s.recorded);
        return { domain: vm, dev: o.dev, source: describeSource(plan.disk.source), changed: plan.steps.length > 0, live: plan.flags.live, config: plan.flags.config };
      },
      (r) => (o.dryRun ? `would insert ${r.source} into ${r.dev} of domain ${vm}` : `${r.dev} of domain ${vm} holds ${r.source}${r.changed ? '' : ' (it already did)'}`),
    );
  });
  addFlagOptions(
    addChangeOptions(
      media
        .command('eject')
        .description('take the media out of a cdrom drive; an empty drive is fine')
        .argument('<vm>', 'domain name or UUID')
        .requiredOption('--dev <name>', 'target dev of the cdrom drive, e.g. hdc'),
    ),
  ).action(async (vm: string, o: MediaFlags) => {
    const flags = flagChoice(o);
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        const plan = await planEject(virsh, { domain: vm, dev: o.dev, flags });
        await applySteps(plan.steps, o, s.recorded);
        return { domain: vm, dev: o.dev, ejected: plan.steps.length > 0 ? describeSource(plan.disk.source) : null };
      },
      (r) => (o.dryRun ? `would eject ${r.ejected ?? 'nothing'} from ${r.dev} of domain ${vm}` : r.ejected ? `ejected ${r.ejected} from ${r.dev} of domain ${vm}` : `${r.dev} of domain ${vm} was already empty`),
    );
  });
}
