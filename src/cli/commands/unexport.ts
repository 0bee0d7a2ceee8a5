// `virt-iscsi unexport NAME`: takes an export apart, last step first (src/workflows/unexport.ts).
import type { Command } from 'commander';
import { withInterrupts } from '../../plan/plan.js';
import { DEFAULT_HOST_RECORD_DIR } from '../../workflows/records.js';
import { unexportImage, type UnexportResult } from '../../workflows/unexport.js';
import { addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { withStepDisplay } from '../progress.js';
import { runCommand } from './hypervisor-common.js';

interface UnexportFlags extends HostCommandOptions {
  storage?: string;
  hypervisor?: string;
  connect?: string;
  hostRecords?: string;
  force?: boolean;
}

export function renderUnexport(r: UnexportResult): string {
  if (!r.found) return `${r.name} is not exported (no record of it here or on the storage host): nothing to do`;
  if (r.dryRun) return `would unexport ${r.name}`;
  if (r.applied === 0) return `${r.name}: nothing was left to remove`;
  if (r.interrupted) return `unexported ${r.name}: removed what its interrupted run had made (the image is untouched)`;
  return `unexported ${r.name}: ${r.record!.image} is no longer served to ${r.record!.vm} (the image is untouched)`;
}

export function registerUnexport(program: Command): void {
  addJson(
    addDryRun(
      addSshOptions(
        program
          .command('unexport')
          .description('take an export apart: disk from the VM, pool or session, secret, target, records; the image (file, device or RBD image) is untouched')
          .argument('<name>', 'export name (as export printed it)')
          .option('--storage <uri>', 'storage host whose record to use when this machine has none (another machine, lost state)')
          .option('--hypervisor <uri>', 'reach the hypervisor here instead of the URI recorded at export')
          .option('--connect <uri>', 'libvirt URI on the hypervisor (default: the one recorded at export)')
          .option('--host-records <dir>', `where the storage host keeps export records (default ${DEFAULT_HOST_RECORD_DIR})`)
          .option('--force', 'delete the target even when other initiators are logged in to it, or a hypervisor cannot be reached'),
      ),
    ),
  ).action(async (name: string, o: UnexportFlags) => {
    await withInterrupts((signal, interrupts) => {
      interrupts.setLeftHint(() => `some pieces may be left: run "virt-iscsi unexport ${name}" again to finish`);
      return runCommand(
        o,
        (s) =>
          withStepDisplay(o, s.recorded, (hooks) =>
            unexportImage(s, {
              name,
              storage: o.storage,
              hypervisor: o.hypervisor,
              connect: o.connect,
              hostRecordDir: o.hostRecords,
              force: o.force,
              signal,
              ...hooks,
            }),
          ),
        renderUnexport,
        (r) => ({ name: r.name, found: r.found, changed: r.applied > 0, applied: r.applied, skipped: r.skipped, ...(r.record ? { record: r.record } : {}) }),
      );
    });
  });
}
