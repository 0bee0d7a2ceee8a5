import { Command, CommanderError } from 'commander';
import { renderError } from './render-error.js';
import { registerIqn } from './commands/iqn.js';
import { registerXml } from './commands/xml.js';
import { registerTarget } from './commands/target.js';
import { registerImage } from './commands/image.js';
import { registerHypervisor } from './commands/hypervisor.js';
import { registerExport } from './commands/export.js';
import { registerUnexport } from './commands/unexport.js';
import { registerStatus } from './commands/status.js';

/** Exit codes: 0 done, 1 failed, 2 usage error. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export function buildProgram(): Command {
  const program = new Command('virt-iscsi')
    .description('Export disk images and ISOs from a Linux storage host to libvirt VMs over iSCSI')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [registerIqn, registerXml, registerTarget, registerImage, registerHypervisor, registerExport, registerUnexport, registerStatus]) register(program);
  // Subcommands inherit exitOverride so usage errors come back as CommanderError.
  const inherit = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride();
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

/** The only place that decides the exit code and calls process.exit. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
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
