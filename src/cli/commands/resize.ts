// `virt-iscsi resize NAME --size SIZE|+DELTA`: an export's disk grows under its running VM
// (src/workflows/resize.ts).
import type { Command } from 'commander';
import { withInterrupts } from '../../plan/plan.js';
import { formatSize } from '../../storage/size.js';
import { DEFAULT_HOST_RECORD_DIR } from '../../workflows/records.js';
import { resizeExport, type ResizeResult } from '../../workflows/resize.js';
import { addDryRun, addJson, addSshOptions, type HostCommandOptions } from '../options.js';
import { withStepDisplay } from '../progress.js';
import { seconds } from './export.js';
import { runCommand } from './hypervisor-common.js';

interface ResizeFlags extends HostCommandOptions {
  size: string;
  storage?: string;
  hostRecords?: string;
  lockTimeout?: number;
}

/** How each kind of image was grown, for people. */
const GROWN: Readonly<Record<ResizeResult['image'], string>> = {
  sparse: 'sparse',
  allocated: 'allocated',
  block: 'a block device, grown before',
  rbd: 'RBD image, rbd resize',
};

export function renderResize(r: ResizeResult): string {
  const head = r.dryRun
    ? `would resize ${r.name} from ${formatSize(r.fromBytes)} to ${formatSize(r.toBytes)}`
    : r.applied === 0
      ? `${r.name} is ${formatSize(r.toBytes)} already: nothing changed`
      : `resized ${r.name} from ${formatSize(r.fromBytes)} to ${formatSize(r.toBytes)}`;
  const lines = [head];
  if (r.dryRun || r.applied === 0) return lines.join('\n');
  lines.push(`  image   ${r.record.image} (${GROWN[r.image]})`);
  if (r.target) lines.push(`  target  ${r.target}`);
  for (const p of r.pauses) lines.push(`  paused  ${p.vm}${r.record.hypervisors.length > 1 ? ` on ${p.hypervisor}` : ''} for ${(p.ms / 1000).toFixed(2)} s while the target reopened the image`);
  for (const t of r.seen) lines.push(`  VM      ${r.record.vm}${r.record.hypervisors.length > 1 ? ` on ${t.hypervisor}` : ''}: ${t.dev} is ${formatSize(r.toBytes)} in the guest without a reboot`);
  if (r.seen.length === 0) lines.push(`  VM      ${r.record.vm} is not running with the disk: it sees the new size when it starts`);
  return lines.join('\n');
}

export function registerResize(program: Command): void {
  addJson(
    addDryRun(
      addSshOptions(
        program
          .command('resize')
          .description("grow an export's disk while its VM runs: image, target, each hypervisor, and the guest (no reboot); never shrinks")
          .argument('<name>', 'export name (as export printed it)')
          .requiredOption('--size <size>', 'the new size (20G), or how much to add (+4G); K, M, G, T are powers of 1024')
          .option('--storage <uri>', 'storage host whose record to use when this machine has none (another machine, lost state)')
          .option('--host-records <dir>', `where the storage host keeps export records (default ${DEFAULT_HOST_RECORD_DIR})`)
          .option('--lock-timeout <seconds>', "how long to wait for another virt-iscsi's lock on the storage host (default 60)", seconds),
      ),
    ),
  ).action(async (name: string, o: ResizeFlags) => {
    await withInterrupts((signal, interrupts) =>
      runCommand(
        o,
        (s) =>
          withStepDisplay(o, s.recorded, (hooks) =>
            resizeExport(s, {
              name,
              size: o.size,
              storage: o.storage,
              hostRecordDir: o.hostRecords,
              ...(o.lockTimeout !== undefined ? { lockTimeoutMs: o.lockTimeout * 1000 } : {}),
              signal,
              setLeftHint: interrupts.setLeftHint,
              ...hooks,
            }),
          ),
        renderResize,
        (r) => ({ ...r, changed: r.applied > 0 }),
      ),
    );
  });
}
