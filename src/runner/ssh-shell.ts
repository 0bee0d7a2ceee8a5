// One long-lived `/bin/sh` on an SSH channel that runs our command lines one after
// another. A fresh exec channel costs about 50 ms of sshd work per command (a session,
// the login shell, its rc files); a shell that stays open runs the next command for the
// price of a fork. Each command is framed: its stdin comes from a here-document (base64,
// so bytes and a missing final newline arrive exactly) or /dev/null, never from the
// shell's own input, and after it ends the shell prints an end marker, unique to this
// command, with the exit status on stdout and once more on stderr, so both streams are
// known complete.
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { Client, ClientChannel } from 'ssh2';
import type { RunOptions, RunResult } from './types.js';

/** One stream's text up to the end marker, passed on as it comes (all but a tail that may be the marker's start). */
class Framed {
  private readonly decoder = new StringDecoder('utf8');
  private text = '';
  private passed = 0;
  /** Where the marker starts, once seen. */
  at = -1;

  constructor(
    private readonly marker: string,
    private readonly stream: 'stdout' | 'stderr',
    private readonly onOutput?: RunOptions['onOutput'],
  ) {}

  push(chunk: Buffer): void {
    this.text += this.decoder.write(chunk);
    if (this.at < 0) this.at = this.text.indexOf(this.marker, this.passed);
    const safe = this.at >= 0 ? this.at : Math.max(this.passed, this.text.length - this.partialMarker());
    if (safe > this.passed) this.onOutput?.(this.text.slice(this.passed, safe), this.stream);
    this.passed = Math.max(this.passed, safe);
  }

  /** How many of the text's last characters may be the start of the marker. */
  private partialMarker(): number {
    for (let k = Math.min(this.marker.length - 1, this.text.length); k > 0; k--) if (this.text.endsWith(this.marker.slice(0, k))) return k;
    return 0;
  }

  /** The stream's output before the marker (so far, when it has not come). */
  output(): string {
    return this.at >= 0 ? this.text.slice(0, this.at) : this.text;
  }

  /** What follows the marker. */
  rest(): string {
    return this.at >= 0 ? this.text.slice(this.at + this.marker.length) : '';
  }
}

const HEREDOC_END = '_VIRT_ISCSI_STDIN_END_'; // underscores never start a base64 line

/** The framed script for one command line. */
export function shellFrame(line: string, marker: string, stdin: string | Buffer | undefined): string {
  const report = `rc=$?; printf '%s %d\\n' '${marker}' "$rc"; printf '%s\\n' '${marker}' >&2\n`;
  if (stdin === undefined) return `( ${line} ) </dev/null; ${report}`;
  const b64 = Buffer.from(stdin).toString('base64').replace(/.{1,76}/g, '$&\n');
  return `base64 -d <<'${HEREDOC_END}' | ( ${line} )\n${b64}${HEREDOC_END}\n${report}`;
}

export class RemoteShell {
  /** Its channel closed or a command timed out on it: it takes no more commands. */
  broken = false;
  private current?: (why: 'closed') => void;

  private constructor(private readonly ch: ClientChannel) {
    ch.once('close', () => {
      this.broken = true;
      this.current?.('closed');
    });
  }

  static open(client: Client): Promise<RemoteShell> {
    return new Promise((resolve, reject) => {
      // POSIX sh whatever the login shell is: the command lines are quoted for it. The C
      // locale for it and every command it runs: our parsers read untranslated output.
      client.exec('exec env LC_ALL=C /bin/sh', (err: Error | undefined, ch: ClientChannel) => (err ? reject(err) : resolve(new RemoteShell(ch))));
    });
  }

  /**
   * Runs one command line. Resolves with its result; rejects with `lost()` when the channel
   * closes first. A timeout resolves with `timedOut` and leaves the shell broken (the remote
   * timeout(1) in the line ends the command).
   */
  run(line: string, options: RunOptions, lost: () => Error, timedOut: () => RunResult): Promise<RunResult> {
    if (this.broken) return Promise.reject(lost());
    const marker = `@@virt-iscsi-end-${randomBytes(12).toString('hex')}@@`;
    const out = new Framed(marker, 'stdout', options.onOutput);
    const err = new Framed(marker, 'stderr', options.onOutput);
    return new Promise<RunResult>((resolve, reject) => {
      const finish = (r: RunResult | Error): void => {
        clearTimeout(timer);
        this.ch.off('data', onOut);
        this.ch.stderr.off('data', onErr);
        this.current = undefined;
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const check = (): void => {
        const status = /^ (\d+)\n/.exec(out.rest());
        if (status && err.at >= 0 && err.rest().includes('\n')) finish({ stdout: out.output(), stderr: err.output(), exitCode: Number(status[1]) });
      };
      const onOut = (d: Buffer): void => {
        out.push(d);
        check();
      };
      const onErr = (d: Buffer): void => {
        err.push(d);
        check();
      };
      const timer =
        options.timeoutMs === undefined || options.timeoutMs <= 0
          ? undefined
          : setTimeout(() => {
              this.broken = true;
              this.ch.close();
              finish({ ...timedOut(), stdout: out.output() });
            }, options.timeoutMs);
      this.current = () => finish(lost());
      this.ch.on('data', onOut);
      this.ch.stderr.on('data', onErr);
      this.ch.write(shellFrame(line, marker, options.stdin));
    });
  }

  close(): void {
    this.broken = true;
    this.ch.end();
  }
}
