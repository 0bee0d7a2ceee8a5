// `virt-iscsi sweep [--yes]`: what virt-iscsi made that no record or journal owns any more
// (src/workflows/sweep.ts): listed, or removed with --yes.
import { Option, type Command } from 'commander';
import { withInterrupts } from '../../plan/plan.js';
import { BACKEND_NAMES, type BackendName } from '../../storage/backends.js';
import { DEFAULT_HOST_RECORD_DIR } from '../../workflows/records.js';
import { sweep, SweepIncompleteError, type Orphan, type SweepReport } from '../../workflows/sweep.js';
import { addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { withStepDisplay } from '../progress.js';
import { controlPort, seconds } from './export.js';
import { runCommand } from './hypervisor-common.js';

interface SweepFlags extends HostCommandOptions {
  storage: string[];
  hypervisor: string[];
  connect?: string;
  backend?: BackendName;
  controlPort?: number;
  confDir?: string;
  hostRecords?: string;
  yes?: boolean;
  force?: boolean;
  lockTimeout?: number;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function line(o: Orphan, removing: boolean): string {
  const state = !removing ? '' : o.removed ? 'removed: ' : o.error !== undefined ? `NOT removed (${o.error}): ` : '';
  return `  ${o.kind.padEnd(9)}${state}${o.detail} on ${o.host}, made for export ${o.export}`;
}

export function renderSweep(r: SweepReport): string {
  const hosts = r.hosts.map((h) => `${h.role} ${h.uri} (${h.via})`).join(', ') || 'none (no record or journal names a host; give --storage or --hypervisor)';
  const out = [`looked at: ${hosts}`];
  if (r.orphans.length === 0) out.push('no orphans: everything of virt-iscsi on these hosts is owned by a record or journal');
  else {
    out.push(r.removing ? (r.dryRun ? 'would remove (nothing was changed):' : 'orphans:') : 'orphans (made by virt-iscsi, owned by no record or journal):');
    out.push(...r.orphans.map((o) => line(o, r.removing && !r.dryRun)));
    if (!r.removing) out.push('run again with --yes to remove them (--dry-run --yes prints the commands first)');
  }
  out.push(...r.notes.map((n) => `note: ${n}`));
  out.push(...r.unreadable.map((u) => `unreadable ${u.file}: ${u.error} (its export counts as owned)`));
  return out.join('\n');
}

export function registerSweep(program: Command): void {
  const cmd = addJson(
    addDryRun(
      addSshOptions(
        program
          .command('sweep')
          .description(
            'find what virt-iscsi made that no export record or journal owns any more (disks, pools, secrets, sessions and node records of gone targets, multipath drop-ins, targets, CHAP accounts) on the hosts the records name; list it, or remove it with --yes',
          )
          .argument('[names...]', 'only what was made for these exports (default: every export no record or journal owns)')
          .option('--storage <uri>', 'also look at this storage host (give it again for more)', collect, [])
          .addOption(new Option('--backend <name>', 'target software on the storage hosts given (default: the one that answers)').choices([...BACKEND_NAMES]))
          .option('--control-port <n>', 'tgt: a private tgtd control port on the storage hosts given', controlPort)
          .option('--conf-dir <dir>', 'tgt: where that tgtd keeps its target records')
          .option('--hypervisor <uri>', 'also look at this hypervisor (give it again for more)', collect, [])
          .option('--connect <uri>', 'libvirt URI on the hypervisors given (default qemu:///system)')
          .option('--host-records <dir>', `where the storage hosts keep export records (default ${DEFAULT_HOST_RECORD_DIR})`)
          .option('--yes', 'remove what is found (disks, pools, sessions, node records, secrets, drop-ins, then targets and accounts)')
          .option('--force', 'with --yes: delete an orphan target even when initiators are still logged in to it')
          .option('--lock-timeout <seconds>', "how long to wait for another virt-iscsi's lock on a storage host (default 60)", seconds),
      ),
    ),
  );
  cmd.action(async (names: string[], o: SweepFlags) => {
    let report: SweepReport | undefined;
    await withInterrupts((signal) =>
      runCommand(
        o,
        (s) =>
          withStepDisplay(o, s.recorded, (hooks) =>
            sweep(s, {
              names,
              storage: o.storage,
              hypervisors: o.hypervisor,
              ...(o.connect !== undefined ? { connect: o.connect } : {}),
              ...(o.backend !== undefined ? { backend: o.backend } : {}),
              ...(o.controlPort !== undefined ? { controlPort: o.controlPort } : {}),
              ...(o.confDir !== undefined ? { confDir: o.confDir } : {}),
              ...(o.hostRecords !== undefined ? { hostRecordDir: o.hostRecords } : {}),
              // A dry run shows the commands removing would run.
              remove: o.yes === true || o.dryRun === true,
              force: o.force === true,
              ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout * 1000 } : {}),
              signal,
              ...hooks,
            }),
          ).then((r) => (report = r)),
        renderSweep,
      ),
    );
    if (report && !report.dryRun && report.orphans.some((x) => x.error !== undefined)) throw new SweepIncompleteError(report);
  });
}
