import { CommandError, maskSecrets } from '../errors.js';
import { quoteArgv } from './quote.js';
import type { RunOptions, RunResult, Runner } from './types.js';

/** The printable, secret-masked command line. */
export function displayCommand(argv: readonly string[], secrets?: readonly string[]): string {
  return maskSecrets(quoteArgv(argv), secrets);
}

/** Builds the CommandError for a failed result, secrets masked everywhere. */
export function commandError(
  runner: Runner,
  argv: readonly string[],
  result: RunResult,
  options: RunOptions = {},
  hint?: string,
): CommandError {
  return new CommandError(
    runner.host,
    argv.map((a) => maskSecrets(a, options.secrets)),
    displayCommand(argv, options.secrets),
    result.exitCode,
    maskSecrets(result.stderr, options.secrets),
    hint,
  );
}

/**
 * Runs a command and throws CommandError unless its exit code is 0 or one of
 * `okExitCodes` (tools like iscsiadm use codes that mean "already done").
 */
export async function runChecked(
  runner: Runner,
  argv: readonly string[],
  options: RunOptions & { okExitCodes?: readonly number[] } = {},
): Promise<RunResult> {
  const result = await runner.run(argv, options);
  if (result.exitCode !== 0 && !options.okExitCodes?.includes(result.exitCode)) {
    throw commandError(runner, argv, result, options);
  }
  return result;
}
