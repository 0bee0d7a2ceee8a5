// `virt-iscsi completion bash|zsh`: prints a completion script made from every command
// this program has (src/cli/completion.ts).
import { Argument, type Command } from 'commander';
import { COMPLETION_SHELLS, completionScript, type CompletionShell } from '../completion.js';

export function registerCompletion(program: Command, whole: () => Promise<Command>): void {
  program
    .command('completion')
    .description('print a shell completion script: source <(virt-iscsi completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(COMPLETION_SHELLS))
    .action(async (shell: CompletionShell) => {
      // Every command group, not only this one: the script completes all of them.
      process.stdout.write(completionScript(await whole(), shell));
    });
}
