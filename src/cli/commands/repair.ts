// `virt-iscsi repair [NAME...]`: exports brought back to their records (src/workflows/repair.ts).
import type { Command } from 'commander';
import { withInterrupts } from '../../plan/plan.js';
import { DEFAULT_HOST_RECORD_DIR } from '../../workflows/records.js';
import { repairExports, RepairIncompleteError, type ExportRepair, type RepairReport } from '../../workflows/repair.js';
import { addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { printText } from '../output.js';
import { withStepDisplay } from '../progress.js';
import { seconds } from './export.js';
import { runCommand } from './hypervisor-common.js';

interface RepairFlags extends HostCommandOptions {
  storage?: string;
  hostRecords?: string;
  lockTimeout?: number;
}

function renderOne(e: ExportRepair): string {
  const head = {
    healthy: `${e.name}: healthy, nothing to change`,
    repaired: `${e.name}: repaired`,
    planned: `${e.name}: would repair`,
    'not-repaired': `${e.name}: NOT repaired${e.error ? `: ${e.error.replace(`export ${e.name}: `, '')}` : ''}`,
    busy: `${e.name}: left alone: ${e.error ?? 'busy'}`,
  }[e.outcome];
  return [
    head,
    ...e.changes.map((c) => `  ${e.outcome === 'planned' ? 'plan' : 'done'}     ${c.what}`),
    ...e.problems.map((p) => `  problem  ${p}`),
  ].join('\n');
}

export function renderRepair(r: RepairReport): string {
  const bad = r.unreadable.map((u) => `unreadable ${u.file}: ${u.error}`);
  if (r.exports.length === 0) return ['no exports recorded here (give --storage URI to repair the exports a storage host has records of)', ...bad].join('\n');
  return [...r.exports.map(renderOne), ...bad].join('\n');
}

export function registerRepair(program: Command): void {
  addJson(
    addDryRun(
      addSshOptions(
        program
          .command('repair')
          .description(
            'bring exports back to what their records say: a target, LUN, allowed initiator or CHAP account that is gone, a stopped or undefined pool, the libvirt secret, a lost session, a detached disk; what is in place is left alone, the image is never touched',
          )
          .argument('[names...]', 'only these exports (default: every export recorded here)')
          .option('--storage <uri>', 'also repair the exports this storage host has records of (from another machine, or after the local state was lost)')
          .option('--host-records <dir>', `where the storage host keeps export records (default ${DEFAULT_HOST_RECORD_DIR})`)
          .option('--lock-timeout <seconds>', "how long to wait for another virt-iscsi's lock on the storage host (default 60)", seconds),
      ),
    ),
  ).action(async (names: string[], o: RepairFlags) => {
    let report: RepairReport | undefined;
    await withInterrupts((signal, interrupts) => {
      interrupts.setLeftHint(() => 'what repair made again stays; run "virt-iscsi repair" again to finish');
      return runCommand(
        o,
        (s) =>
          withStepDisplay(o, s.recorded, (hooks) =>
            repairExports(s, {
              ...(names.length > 0 ? { names } : {}),
              storage: o.storage,
              hostRecordDir: o.hostRecords,
              ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout * 1000 } : {}),
              signal,
              onExport: (name) => {
                if (o.dryRun) s.recorded.push({ host: 'local', shell: `# repair ${name}` });
                else if (!o.json) printText(`repair ${name}:`);
              },
              ...hooks,
            }),
          ).then((r) => (report = r)),
        renderRepair,
      );
    });
    if (report?.exports.some((e) => e.outcome === 'not-repaired' || e.outcome === 'busy')) throw new RepairIncompleteError(report);
  });
}
