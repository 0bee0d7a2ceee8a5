import { maskSecrets } from '../errors.js';
import { checkArgv, quoteArg, quoteArgv } from './quote.js';
import { rememberRead } from './read-cache.js';
import type { RunOptions, RunResult, Runner, WriteFileOptions } from './types.js';

/** One thing a dry run would have done, as copy-pastable shell. */
export interface RecordedStep {
  host: string;
  shell: string;
  /** The command alone (secrets masked), when this is one; `shell` adds its input as a here-document. */
  command?: string;
  /** What the command reads on stdin, or what a file gets (secrets masked). */
  document?: { path?: string; content: string };
}

/**
 * The dry-run Runner: changes nothing. Commands marked `query` (they only read
 * state) still run on `inner` so the plan is built from the real state; every
 * other command and file write is recorded and answered with success.
 */
export class RecordingRunner implements Runner {
  readonly dryRun = true;
  /**
   * `steps` may be shared by the RecordingRunners of several hosts, so a plan that
   * crosses hosts prints in the order it would run.
   */
  constructor(
    private readonly inner?: Runner,
    readonly steps: RecordedStep[] = [],
    readonly host: string = inner?.host ?? 'local',
  ) {}

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (options.query && this.inner) return this.inner.run(argv, options);
    checkArgv(argv, options.env);
    let shell = maskSecrets(quoteArgv(argv), options.secrets);
    if (options.env) {
      const env = Object.entries(options.env).map(([k, v]) => `${k}=${quoteArg(v)}`);
      shell = `env ${maskSecrets(env.join(' '), options.secrets)} ${shell}`;
    }
    const command = shell;
    const stdin = options.stdin === undefined ? undefined : maskSecrets(options.stdin.toString(), options.secrets);
    if (stdin !== undefined) shell += heredoc(stdin);
    this.steps.push({ host: this.host, shell, command, ...(stdin !== undefined ? { document: { content: stdin } } : {}) });
    return { stdout: '', stderr: '', exitCode: 0 };
  }

  async writeFile(path: string, data: string, options: WriteFileOptions = {}): Promise<void> {
    const mode = (options.mode ?? 0o644).toString(8).padStart(4, '0');
    const body = options.secret ? '********\n' : data;
    const command = `install -m ${mode} /dev/stdin ${quoteArg(path)}`;
    this.steps.push({ host: this.host, shell: `${command}${heredoc(body)}`, command, document: { path, content: body } });
  }

  async readFile(path: string): Promise<string | undefined> {
    return this.inner?.readFile(path);
  }

  /** Reads got another way reach the inner runner's read cache, where reads run. */
  remember(argv: readonly string[], result: RunResult): void {
    if (this.inner) rememberRead(this.inner, argv, result);
  }

  async removeFile(path: string): Promise<void> {
    const command = `rm -f ${quoteArg(path)}`;
    this.steps.push({ host: this.host, shell: command, command });
  }

  async close(): Promise<void> {
    await this.inner?.close();
  }

  /** The recorded plan, one block per step, each prefixed with its host when not local. */
  render(): string {
    return renderSteps(this.steps);
  }
}

/** Steps as shell, each prefixed with its host when not local. */
export function renderSteps(steps: readonly RecordedStep[]): string {
  return steps.map((s) => (s.host === 'local' ? s.shell : `# on ${s.host}\n${s.shell}`)).join('\n');
}

/** A quoted heredoc whose terminator does not occur in the body. */
function heredoc(body: string): string {
  let tag = 'EOF';
  while (body.split('\n').includes(tag)) tag += '_';
  const text = body.endsWith('\n') ? body : `${body}\n`;
  return ` <<'${tag}'\n${text}${tag}`;
}
