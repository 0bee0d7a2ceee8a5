import { Command, CommanderError } from 'commander';
import { renderError } from './render-error.js';

/** Exit codes: 0 done, 1 failed, 2 usage error. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** Adds a group's commands; `whole` builds the program with every group (what `completion` describes). */
type Register = (program: Command, whole: () => Promise<Command>) => void;

// Each command group's module, in help order, with the top-level commands it registers.
// Only the one a run names is loaded (every module loaded costs each run about 50 ms).
const GROUPS: Array<{ names: readonly string[]; load: () => Promise<Register> }> = [
  { names: ['iqn'], load: async () => (await import('./commands/iqn.js')).registerIqn },
  { names: ['xml'], load: async () => (await import('./commands/xml.js')).registerXml },
  { names: ['target'], load: async () => (await import('./commands/target.js')).registerTarget },
  { names: ['image'], load: async () => (await import('./commands/image.js')).registerImage },
  { names: ['discover', 'login', 'logout', 'pool', 'attach', 'detach', 'media'], load: async () => (await import('./commands/hypervisor.js')).registerHypervisor },
  { names: ['export'], load: async () => (await import('./commands/export.js')).registerExport },
  { names: ['unexport'], load: async () => (await import('./commands/unexport.js')).registerUnexport },
  { names: ['resize'], load: async () => (await import('./commands/resize.js')).registerResize },
  { names: ['status'], load: async () => (await import('./commands/status.js')).registerStatus },
  { names: ['migrate'], load: async () => (await import('./commands/migrate.js')).registerMigrate },
  { names: ['repair'], load: async () => (await import('./commands/repair.js')).registerRepair },
  { names: ['sweep'], load: async () => (await import('./commands/sweep.js')).registerSweep },
  { names: ['apply', 'destroy'], load: async () => (await import('./commands/stack.js')).registerStack },
  { names: ['init'], load: async () => (await import('./commands/init.js')).registerInit },
  { names: ['completion'], load: async () => (await import('./commands/completion.js')).registerCompletion },
];

/** The program with every command, or (`command`) with only that command's group when it is one of ours. */
export async function buildProgram(command?: string): Promise<Command> {
  const program = new Command('virt-iscsi')
    .description('Export disk images and ISOs from a Linux storage host to libvirt VMs over iSCSI')
    .version('0.1.0', '--version', 'print the version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const one = GROUPS.find((g) => command !== undefined && g.names.includes(command));
  for (const register of await Promise.all((one ? [one] : GROUPS).map((g) => g.load()))) register(program, () => buildProgram());
  // Subcommands inherit exitOverride so usage errors come back as CommanderError.
  const inherit = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride();
      inherit(sub);
    }
  };
  inherit(program);
  program.hook('preAction', (_program, command) => refuseOptionLikeValues(command));
  return program;
}

/** Options whose value may start with '-' (a signed size). */
const SIGNED_VALUE_OPTIONS: ReadonlySet<string> = new Set(['--size']);

/**
 * `--connect -V` gives --connect the value "-V", which the program it reaches would take
 * for an option of its own: an option's value may not start with '-'. (A value that must,
 * such as a file named "-x", can be given as ./-x.)
 */
function refuseOptionLikeValues(command: Command): void {
  for (const opt of command.options) {
    if (!opt.required && !opt.optional) continue;
    // Read by virt-iscsi itself, never passed on: "--size -4G" is refused for what it asks.
    if (SIGNED_VALUE_OPTIONS.has(opt.long ?? '')) continue;
    const key = opt.attributeName();
    const v = command.getOptionValue(key) as unknown;
    for (const value of Array.isArray(v) ? v : [v]) {
      if (typeof value === 'string' && value.length > 1 && value.startsWith('-') && command.getOptionValueSource(key) === 'cli') {
        command.error(`error: option '${opt.flags}' got ${JSON.stringify(value)}, which looks like an option: give the value itself (a path starting with '-' as ./${value})`, { exitCode: EXIT_USAGE, code: 'virt-iscsi.optionLikeValue' });
      }
    }
  }
}

/**
 * stdout may be a pipe its reader closed (`virt-iscsi export ... | head -1`): what we would
 * still print is lost, but the command carries on and ends as it would have (done, or
 * rolled back) instead of dying on EPIPE in the middle of a change.
 */
function guardOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
}

/** The only place that decides the exit code and calls process.exit. */
export async function main(argv: readonly string[]): Promise<void> {
  guardOutput();
  // No program-level option takes a value: the first word that is not an option is the command.
  const program = await buildProgram(argv.slice(2).find((a) => !a.startsWith('-')));
  try {
    await program.parseAsync([...argv]);
    process.exitCode = 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version are "errors" to commander; they already printed.
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exitCode = ok ? 0 : EXIT_USAGE;
    } else {
      process.stderr.write(`virt-iscsi: ${renderError(err)}\n`);
      process.exitCode = EXIT_FAILED;
    }
  }
}
