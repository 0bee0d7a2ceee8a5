// Typed errors. Each renders as one line for people (`message`); details stay on
// the object for logs and --json. The CLI renders them once, at the edge.

export abstract class VirtIscsiError extends Error {
  abstract readonly kind: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input: names the value and says what was expected. Nothing was changed. */
export class ValidationError extends VirtIscsiError {
  readonly kind = 'validation';
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** A command ran and failed. `display` is the escaped, secret-masked command line. */
export class CommandError extends VirtIscsiError {
  readonly kind = 'command';
  constructor(
    readonly host: string,
    readonly argv: readonly string[],
    readonly display: string,
    readonly exitCode: number,
    readonly stderr: string,
    readonly hint?: string,
  ) {
    const firstLine = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    super(
      `${display} failed on ${host} (exit ${exitCode})` +
        (firstLine ? `: ${firstLine}` : '') +
        (hint ? ` (${hint})` : ''),
    );
  }
}

/** Could not reach a host (SSH connect/auth, or a local program that is missing). */
export class ConnectError extends VirtIscsiError {
  readonly kind = 'connect';
  constructor(
    readonly host: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The SSH host key is unknown or changed. */
export class HostKeyError extends VirtIscsiError {
  readonly kind = 'host-key';
  constructor(
    readonly host: string,
    message: string,
    readonly fingerprint: string,
  ) {
    super(message);
  }
}

/** A wait ran out: says what was waited for. */
export class TimeoutError extends VirtIscsiError {
  readonly kind = 'timeout';
}

/** Something the environment lacks (a daemon not installed, a kernel module...). */
export class PrerequisiteError extends VirtIscsiError {
  readonly kind = 'prerequisite';
}

/** Replaces every occurrence of each secret with ********. */
export function maskSecrets(text: string, secrets: readonly string[] | undefined): string {
  if (!secrets) return text;
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('********');
  return out;
}
