// Runs the real CLI (`node --import tsx src/cli/run.ts ...`) as a user would.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `env` replaces variables of this process's environment (PATH, to hide programs). */
export function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: root, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** A failure as the CLI must report it: exit 1, one line on stderr, nothing on stdout. */
export function oneLineFailure(r: CliResult): string {
  const lines = r.stderr.split('\n').filter(Boolean);
  if (r.status !== 1 || lines.length !== 1 || r.stdout !== '' || !lines[0]!.startsWith('virt-iscsi: ')) {
    throw new Error(`expected exit 1 and one line on stderr, got exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return lines[0]!;
}
