// `virt-iscsi migrate VM --to URI`: live migration between two hypervisors of the VM's
// exports, checked before and after (src/workflows/migrate.ts).
import type { Command } from 'commander';
import { migrateVm, type MigrateResult } from '../../workflows/migrate.js';
import { addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { runCommand } from './hypervisor-common.js';
import { seconds } from './export.js';

interface MigrateFlags extends HostCommandOptions {
  to: string;
  from?: string;
  destUri?: string;
  live?: boolean;
  timeout?: number;
}

export function renderMigrate(r: MigrateResult): string {
  const relogin = r.relogin.map((c) => `  disk of ${c.export}: QEMU on ${r.to} logs in as ${c.to} (not ${c.from})`);
  if (r.dryRun) return [`would migrate ${r.vm} live from ${r.from} to ${r.to} (disks of ${r.exports.join(', ')})`, ...relogin].join('\n');
  return [
    `migrated ${r.vm} live from ${r.from} to ${r.to} in ${(r.migrateMs / 1000).toFixed(1)} s, with the disks of ${r.exports.join(', ')}`,
    ...relogin,
    `  ${r.from}: ${r.state.from}`,
    `  ${r.to}: ${r.state.to}`,
  ].join('\n');
}

export function registerMigrate(program: Command): void {
  addJson(
    addDryRun(
      addSshOptions(
        program
          .command('migrate')
          .description("live-migrate a VM to another hypervisor of its exports: each disk checked to resolve there first, the VM and its disks checked there after")
          .argument('<vm>', 'the domain')
          .requiredOption('--to <uri>', 'the destination hypervisor, as an export names it (ssh://[user@]host[:port])')
          .option('--from <uri>', 'the source (default: the hypervisor where the VM runs)')
          .option('--dest-uri <libvirt-uri>', "the destination's libvirt URI as the source reaches it (default qemu+ssh://USER@HOST[:PORT]/system from --to)")
          .option('--live', 'keep the VM running while it moves (the only way done here; the default)')
          .option('--timeout <seconds>', 'how long the migration may take (default 600)', seconds),
      ),
    ),
  ).action(async (vm: string, o: MigrateFlags) => {
    await runCommand(
      o,
      (s) => migrateVm(s, { vm, to: o.to, ...(o.from ? { from: o.from } : {}), ...(o.destUri ? { destUri: o.destUri } : {}), ...(o.timeout ? { timeoutSec: o.timeout } : {}) }),
      renderMigrate,
    );
  });
}
