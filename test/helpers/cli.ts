// Runs the real CLI entry (src/cli/run.ts) as a user would.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));
const exec = promisify(execFile);

function newest(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

let entry: string[] | undefined;

/**
 * How to start the CLI: the built one (dist/bundle, as `make test` builds it before the tests)
 * when it is newer than every source file, else the sources through tsx. The built one
 * starts several times faster, which counts in tests that start the CLI dozens of times.
 */
export function cliEntry(): string[] {
  if (entry) return entry;
  // The bundle is what users run (bin/virt-iscsi.js); test/cli/bundle.test.ts holds it to the sources.
  const bundle = join(root, 'dist', 'bundle', 'main.js');
  entry = existsSync(bundle) && statSync(bundle).mtimeMs >= newest(join(root, 'src')) ? [join(root, 'bin', 'virt-iscsi.js')] : ['--import', 'tsx', join(root, 'src', 'cli', 'run.ts')];
  return entry;
}

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
    const r = await exec(process.execPath, [...cliEntry(), ...args], { cwd: root, encoding: 'utf8', timeout: 180_000, env: { ...process.env, ...env } });
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
