// Runs argv on a remote host over ONE SSH connection (ssh2): on long-lived shells, one
// per channel, in parallel up to a limit (ssh-shell.ts). Results have LocalRunner's
// shape; file operations are commands through the same run(), so sudo applies to them too.
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import type { Client, ClientChannel } from 'ssh2';
import { ConnectError } from '../errors.js';
import { runChecked } from './check.js';
import { formatHostUri } from './host-uri.js';
import { defaultKnownHostsPath } from './known-hosts.js';
import { awaitReady, EXIT_NOT_FOUND, EXIT_TIMEOUT } from './local.js';
import { checkArgv, quoteArgv } from './quote.js';
import { Slots } from './slots.js';
import { RemoteShell } from './ssh-shell.js';
import { planAuth } from './ssh-auth.js';
import { loadSshHostConfig } from './ssh-config.js';
import { endpoint, openSshClient, type SshTarget } from './ssh-connect.js';
import type { HoldOptions, HoldResult, RunOptions, RunResult, Runner, WriteFileOptions } from './types.js';

export interface SshOptions {
  /** Private key file tried first. */
  identity?: string;
  /** Default ~/.ssh/known_hosts. */
  knownHosts?: string;
  /** Trust and record a host key seen for the first time (never a changed one). */
  acceptNewHostKey?: boolean;
  /** Default ~/.ssh/config; "none" reads no file. */
  sshConfig?: string;
  /** Limit for TCP connect + handshake + authentication; default 20 s. */
  connectTimeoutMs?: number;
  /** SSH keepalive interval; default 15 s (the connection is dropped after 3 unanswered). */
  keepaliveIntervalMs?: number;
  /**
   * Shells (channels) open at once on the connection; default 4 (OpenSSH allows
   * MaxSessions=10). Each is a process on the host: more cost the host more CPU than the
   * parallelism gains once a command costs milliseconds (measured on 2 cores: 4 beat 8 and 3).
   */
  maxChannels?: number;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The remote command line: argv (after `sudo -n --`, `timeout` and `env K=V...` when
 * needed) quoted for the POSIX shell that runs it on the host.
 */
export function remoteCommandLine(
  argv: readonly string[],
  o: { env?: Record<string, string>; sudo?: boolean; timeoutMs?: number } = {},
): string {
  checkArgv(argv, o.env);
  const words: string[] = o.sudo ? ['sudo', '-n', '--'] : [];
  if (o.timeoutMs !== undefined && o.timeoutMs > 0) {
    // Closing the channel does not stop the command, and sshd refuses signal requests
    // on root sessions ("session signalling requires privilege separation"): so the
    // remote timeout(1) ends it, with TERM then KILL 5 s later, as LocalRunner (execa) does.
    words.push('timeout', '-k', '5', String(o.timeoutMs / 1000));
  }
  const env = Object.entries(o.env ?? {});
  if (env.length) {
    for (const [k] of env) if (!ENV_NAME.test(k)) throw new TypeError(`environment variable name ${JSON.stringify(k)} is not valid`);
    // sshd's AcceptEnv refuses most names, so env(1) sets them on the remote side.
    words.push('env', ...env.map(([k, v]) => `${k}=${v}`));
  }
  return quoteArgv([...words, ...argv]);
}

/**
 * Why `sudo -n -- true` failed, as one line, for user `who` on `where`. sudo's own
 * messages (sudo 1.9, stderr, exit 1):
 *   sudo: a password is required
 *   sudo: unable to resolve host ...     (warning only; sudo still runs)
 * and without sudo the shell's "bash: line 1: sudo: command not found" (exit 127).
 */
export function sudoProblem(r: RunResult, who: string, where: string): string | undefined {
  if (r.exitCode === 0) return undefined;
  if (r.exitCode === EXIT_NOT_FOUND) return `${who} on ${where} is not root and sudo is not installed there: connect as root, or install sudo and allow ${who} to use it without a password`;
  if (/password is required/i.test(r.stderr)) return `sudo on ${where} needs a password for ${who}: allow ${who} to run it without one (NOPASSWD in sudoers), or connect as root`;
  const last = r.stderr.trim().split('\n').pop() || `exit ${r.exitCode}`;
  return `${who} on ${where} is not root and cannot use sudo: ${last}`;
}

// Scripts for the file operations: constant text, paths and mode only as "$1".. arguments.
/**
 * Creates the temp file 0600 (noclobber: never through an existing name), chmods it,
 * writes it, flushes it to disk, renames it over the file and flushes the directory: after
 * a crash the file is the old one or the new one, whole. (`sync FILE` is coreutils 8.24+;
 * where it takes no file, a plain `sync` does the same and more.)
 */
const WRITE_SCRIPT =
  'umask 077 && set -C && : > "$1" && chmod "$2" "$1" && cat >> "$1" && { sync -- "$1" 2>/dev/null || sync; } && mv -f -T -- "$1" "$3" && { sync -- "${3%/*}/" 2>/dev/null || sync; } || { rc=$?; rm -f -- "$1"; exit "$rc"; }';
/** cat exits only 0 or 1, so 3 means "no such file". */
const READ_MISSING = 3;
const READ_SCRIPT = `[ -e "$1" ] || exit ${READ_MISSING}; exec cat -- "$1"`;

export class SshRunner implements Runner {
  private readonly slots: Slots;
  private lost?: string;
  private closing = false;
  private sudo = false;
  /** Shells between commands, reused by the next (ssh-shell.ts). */
  private readonly idle: RemoteShell[] = [];

  private constructor(
    private readonly client: Client,
    readonly host: string,
    private readonly target: SshTarget,
    maxChannels: number,
  ) {
    this.slots = new Slots(maxChannels);
    client.on('error', (e: Error) => (this.lost ??= e.message));
    client.on('close', () => (this.lost ??= 'the connection was closed'));
  }

  static async connect(spec: { kind: 'ssh'; host: string; user?: string; port?: number }, o: SshOptions = {}): Promise<SshRunner> {
    const override = { ...(spec.user ? { user: spec.user } : {}), ...(spec.port ? { port: spec.port } : {}) };
    const cfg = await loadSshHostConfig(spec.host, o.sshConfig, override);
    const uri = formatHostUri({ kind: 'ssh', host: spec.host, user: cfg.user, ...(cfg.port !== 22 ? { port: cfg.port } : {}) });
    const target: SshTarget = { uri, hostName: cfg.hostName, port: cfg.port, user: cfg.user };
    const auth = await planAuth({
      username: cfg.user,
      identity: o.identity,
      configIdentities: cfg.identityFiles,
      agentSocket: process.env.SSH_AUTH_SOCK || undefined,
      home: homedir(),
    });
    const client = await openSshClient(target, {
      knownHosts: o.knownHosts ?? defaultKnownHostsPath(),
      acceptNewHostKey: o.acceptNewHostKey === true,
      auth,
      connectTimeoutMs: o.connectTimeoutMs ?? 20_000,
      keepaliveIntervalMs: o.keepaliveIntervalMs ?? 15_000,
    });
    const runner = new SshRunner(client, uri, target, o.maxChannels ?? 4);
    try {
      await runner.detectSudo();
    } catch (e) {
      await runner.close();
      throw e;
    }
    return runner;
  }

  /** Non-root users run every command through `sudo -n --`; check once that it works. */
  private async detectSudo(): Promise<void> {
    // root needs no look (a round trip saved on every connection).
    if (this.target.user === 'root') return;
    const id = await runChecked(this, ['id', '-u']);
    if (id.stdout.trim() === '0') return;
    const problem = sudoProblem(await this.run(['sudo', '-n', '--', 'true']), this.target.user, this.where);
    if (problem) throw new ConnectError(this.host, problem);
    this.sudo = true;
  }

  private get where(): string {
    return endpoint(this.target.hostName, this.target.port);
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (!argv[0]) throw new TypeError('empty argv');
    const line = remoteCommandLine(argv, { env: options.env, sudo: this.sudo, timeoutMs: options.timeoutMs });
    const r = await this.slots.use(() => this.exec(line, argv[0]!, options));
    // sudo reports a missing program itself, with exit 1; give the shell's 127 as LocalRunner does.
    if (this.sudo && r.exitCode === 1 && /^sudo: .*: command not found$/m.test(r.stderr)) return { ...r, exitCode: EXIT_NOT_FOUND };
    return r;
  }

  /** Runs the line on an idle shell of this connection, or a new one (at most one per slot). */
  private async exec(line: string, file: string, options: RunOptions): Promise<RunResult> {
    if (this.lost) throw this.lostError(file);
    let shell = this.idle.pop();
    // A shell whose channel the server closed while it waited is dropped.
    while (shell?.broken) shell = this.idle.pop();
    if (!shell) {
      try {
        shell = await RemoteShell.open(this.client);
      } catch (err) {
        throw this.lost ? this.lostError(file) : new ConnectError(this.host, `cannot open a channel on ${this.where}: ${(err as Error).message}`);
      }
    }
    try {
      return await shell.run(line, options, () => this.lostError(file), () => ({ stdout: '', stderr: `${file}: timed out after ${options.timeoutMs} ms`, exitCode: EXIT_TIMEOUT }));
    } finally {
      if (!shell.broken && !this.closing) this.idle.push(shell);
    }
  }

  private lostError(file: string): ConnectError {
    return new ConnectError(this.host, `lost the connection to ${this.where} while running ${file}: ${this.lost ?? 'the channel closed without an exit status'}`);
  }

  async writeFile(path: string, data: string, options: WriteFileOptions = {}): Promise<void> {
    const mode = options.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new RangeError(`file mode ${mode} is not a Unix mode`);
    const slash = path.lastIndexOf('/');
    const tmp = `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${randomBytes(4).toString('hex')}.tmp`;
    // The data goes through stdin, never argv (it may be a secret).
    await runChecked(this, ['sh', '-c', WRITE_SCRIPT, 'sh', tmp, mode.toString(8).padStart(4, '0'), path], { stdin: data });
  }

  async readFile(path: string): Promise<string | undefined> {
    const r = await runChecked(this, ['sh', '-c', READ_SCRIPT, 'sh', path], { okExitCodes: [READ_MISSING] });
    return r.exitCode === READ_MISSING ? undefined : r.stdout;
  }

  async removeFile(path: string): Promise<void> {
    await runChecked(this, ['rm', '-f', '--', path]);
  }

  /**
   * On a channel of its own (not one of the shells): the command's stdin is the channel, so
   * release() closing it, or this connection dropping, ends the command on the host.
   */
  async hold(argv: readonly string[], options: HoldOptions): Promise<HoldResult> {
    if (this.lost) throw this.lostError(argv[0] ?? '');
    const line = remoteCommandLine(argv, { sudo: this.sudo });
    const ch = await new Promise<ClientChannel>((resolve, reject) =>
      this.client.exec(line, (err: Error | undefined, c: ClientChannel) => (err ? reject(new ConnectError(this.host, `cannot open a channel on ${this.where}: ${err.message}`)) : resolve(c))),
    );
    return awaitReady(
      {
        onStdout: (f) => ch.on('data', (d: Buffer) => f(d.toString('utf8'))),
        onStderr: (f) => ch.stderr.on('data', (d: Buffer) => f(d.toString('utf8'))),
        onExit: (f) => {
          let code: number | undefined;
          ch.on('exit', (c: number | null) => (code = c ?? undefined));
          ch.on('close', () => f(code ?? 255, code === undefined ? 'the channel closed without an exit status' : undefined));
        },
        end: () => ch.end(),
        kill: () => ch.close(),
      },
      options,
    );
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.lost) return;
    this.lost = 'the runner was closed';
    for (const shell of this.idle.splice(0)) shell.close();
    await new Promise<void>((resolve) => {
      this.client.once('close', () => resolve());
      this.client.end();
    });
  }
}
