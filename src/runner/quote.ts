// The one function that turns an argv into shell text. Used for the remote command
// line over SSH and for every command we print (dry-run, errors), so what a user
// copies is exactly what ran.

const SAFE = /^[A-Za-z0-9_\/.,:=+@%^-]+$/;

/** POSIX single-quote one word unless it is made only of characters no shell treats specially. */
export function quoteArg(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function quoteArgv(argv: readonly string[]): string {
  return argv.map(quoteArg).join(' ');
}
