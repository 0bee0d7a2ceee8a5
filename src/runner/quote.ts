// The one function that turns an argv into shell text. Used for the remote command
// line over SSH and for every command we print (dry-run, errors), so what a user
// copies is exactly what ran.

import { ValidationError } from '../errors.js';

const SAFE = /^[A-Za-z0-9_\/.,:=+@%^-]+$/;

/**
 * Refuses an argv (or environment value) holding a NUL byte: no program can receive one
 * (execve takes C strings), so locally Node refuses it, while a remote shell would cut
 * the word short and run something else. Every runner checks here: LocalRunner before it
 * spawns, and every command line quoted for SSH or printed goes through quoteArgv.
 */
export function checkArgv(argv: readonly string[], env?: Record<string, string>): void {
  const bad = argv.findIndex((a) => a.includes('\0'));
  if (bad >= 0) throw new ValidationError(`argument ${bad} of ${JSON.stringify(argv[0])} holds a NUL byte, which no program can receive: ${JSON.stringify(argv[bad])}`, 'argv');
  for (const [k, v] of Object.entries(env ?? {})) {
    if (`${k}${v}`.includes('\0')) throw new ValidationError(`environment variable ${JSON.stringify(k)} for ${JSON.stringify(argv[0])} holds a NUL byte`, 'argv');
  }
}

/** POSIX single-quote one word unless it is made only of characters no shell treats specially. */
export function quoteArg(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function quoteArgv(argv: readonly string[]): string {
  checkArgv(argv);
  return argv.map(quoteArg).join(' ');
}
