// What the hypervisor-side commands (discover, login, logout, pool, attach, detach, media)
// share: --hypervisor/--connect and SSH options, the --live/--config/--persistent choice,
// CHAP secret files, running a plan with progress, and --json / --dry-run output.
import type { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import type { FlagChoice } from '../../hypervisor/placement.js';
import { Virsh } from '../../hypervisor/virsh.js';
import { runPlan, withInterrupts, type Step } from '../../plan/plan.js';
import { addConnect, addDryRun, addJson, addSshOptions, sessionOptions, type HostCommandOptions } from '../options.js';
import { printJson, printText } from '../output.js';
import type { RecordedStep } from '../../runner/recording.js';
import { Session, withSession } from '../session.js';
import { planRecorder } from '../plan-document.js';

export interface HypervisorOptions extends HostCommandOptions {
  hypervisor: string;
  connect: string;
}

/** --hypervisor URI, --connect LIBVIRT_URI and the SSH options. */
export function addHypervisorOptions(cmd: Command, libvirt = true): Command {
  cmd.option('--hypervisor <uri>', 'the hypervisor: local or ssh://[user@]host[:port]', 'local');
  return addSshOptions(libvirt ? addConnect(cmd) : cmd);
}

/** Options of a command that changes something: --dry-run and --json besides the above. */
export function addChangeOptions(cmd: Command, libvirt = true): Command {
  return addJson(addDryRun(addHypervisorOptions(cmd, libvirt)));
}

export async function openVirsh(s: Session, o: HypervisorOptions): Promise<Virsh> {
  return new Virsh(await s.runner(o.hypervisor), o.connect);
}

export interface FlagOptions {
  live?: boolean;
  config?: boolean;
  persistent?: boolean;
}

export function addFlagOptions(cmd: Command): Command {
  return cmd
    .option('--live', 'the running domain only')
    .option('--config', "the domain's definition only (takes effect at its next start)")
    .option('--persistent', 'both when it runs, the definition when it is shut off (the default)');
}

export function flagChoice(o: FlagOptions): FlagChoice | undefined {
  const given = (['live', 'config', 'persistent'] as const).filter((k) => o[k]);
  if (given.length > 1) throw new ValidationError(`--${given.join(' and --')} exclude each other; give one`, 'flags');
  return given[0];
}

/** A CHAP secret from a file on this machine (a regular file of at most 4 KiB). */
export { readSecretFile } from '../../util/local-file.js';

/**
 * Runs the steps, rolling back on failure or Ctrl-C. In text mode, and not under
 * --dry-run (which prints the commands instead), says what each step did.
 */
export async function applySteps(steps: readonly Step[], o: HostCommandOptions, recorded?: RecordedStep[]): Promise<void> {
  const talk = !o.json && !o.dryRun;
  const plan = o.dryRun && o.json && recorded ? planRecorder(recorded) : undefined;
  await withInterrupts((signal) =>
    runPlan(steps, {
      signal,
      onEvent: (e) => {
        plan?.event(e);
        if (!talk) return;
        if (e.type === 'done') printText(`done: ${e.step.title}`);
        else if (e.type === 'skipped') printText(`already done: ${e.step.title}`);
        else if (e.type === 'undone') printText(`undone: ${e.step.title}`);
      },
    }),
  );
}

/**
 * Runs `fn` in a session and prints its result as JSON or with `text`. Under --dry-run
 * with --json, one document holds the plan and the result.
 */
export async function runCommand<T>(o: HostCommandOptions, fn: (s: Session) => Promise<T>, text: (r: T) => string, json: (r: T) => unknown = (r) => r): Promise<void> {
  if (o.dryRun && o.json) {
    const s = new Session(sessionOptions(o));
    try {
      const r = await fn(s);
      printJson({ ...planRecorder(s.recorded).document(), plan: s.recorded.map(({ host, shell }) => ({ host, shell })), result: json(r) });
    } finally {
      await s.close();
    }
    return;
  }
  await withSession(sessionOptions(o), async (s) => {
    const r = await fn(s);
    if (o.json) printJson(json(r));
    else {
      const t = text(r);
      if (t !== '') printText(t);
    }
  });
}
