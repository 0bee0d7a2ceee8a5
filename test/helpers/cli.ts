// Runs the real CLI entry (src/cli/run.ts) as a user would.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));
const exec = promisify(execFile);

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function cli(...args: string[]): Promise<CliResult> {
  return cliWith(args);
}

/** `env` is added to this process's environment (XDG_STATE_HOME for export records). */
export async function cliWith(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...env } });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { status: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Exit 1 with exactly one line on stderr, matching `pattern`, and nothing on stdout. */
export function failedWith(r: CliResult, pattern: RegExp): string | undefined {
  const lines = r.stderr.split('\n').filter(Boolean);
  if (r.status !== 1) return `exit ${r.status}, not 1: ${r.stderr}${r.stdout}`;
  if (lines.length !== 1) return `stderr has ${lines.length} lines: ${r.stderr}`;
  if (!pattern.test(lines[0]!)) return `stderr ${JSON.stringify(lines[0])} does not match ${pattern}`;
  if (r.stdout !== '') return `stdout is not empty: ${r.stdout}`;
  return undefined;
}
