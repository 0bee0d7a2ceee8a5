// The one interface every command goes through: local, SSH and dry-run alike.

export interface RunOptions {
  /** Bytes fed to the program's standard input. */
  stdin?: string | Buffer;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Values shown as ******** wherever this command or its output is printed. */
  secrets?: readonly string[];
  /** The command only reads state: a dry run still runs it to build its plan. */
  query?: boolean;
  /** Called with output as it arrives (progress bars); the result still holds all of it. */
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

/** Success and failure have one shape: callers branch on exit codes that mean something. */
export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface WriteFileOptions {
  /** Unix mode; defaults to 0o644. Anything holding a secret must be 0o600. */
  mode?: number;
  /** The content is secret: never printed (dry-run shows ********). */
  secret?: boolean;
}

/** A process kept running on a host until released: what a lock holder is. */
export interface Held {
  /** Ends the process (its stdin closes) and waits for it to exit. */
  release(): Promise<void>;
}

export interface HoldOptions {
  /** The line the process prints on stdout once it holds what it was started for. */
  ready: string;
  /** How long to wait for `ready` before giving up (the process is then stopped). */
  timeoutMs: number;
}

/** The process printed `ready` and keeps running; or it ended first, with this result. */
export type HoldResult = { held: Held } | { ended: RunResult };

export interface Runner {
  /** Where commands run, as a host URI: `local` or `ssh://user@host:port`. */
  readonly host: string;
  /**
   * Changes are only recorded, not made (--dry-run): reads still run, but what an earlier
   * recorded change would have made is not there to read.
   */
  readonly dryRun?: boolean;
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** Atomically replaces (or creates) a small file. */
  writeFile(path: string, data: string, options?: WriteFileOptions): Promise<void>;
  /** The file's text, or undefined when it does not exist. */
  readFile(path: string): Promise<string | undefined>;
  /** Removes a file; a file already gone is success. */
  removeFile(path: string): Promise<void>;
  /**
   * Starts argv and keeps it running until released, its stdin held open: when this
   * process dies (even by kill -9) or the connection drops, its stdin closes and it ends.
   * Absent where nothing is held (a dry run).
   */
  hold?(argv: readonly string[], options: HoldOptions): Promise<HoldResult>;
  close(): Promise<void>;
}
