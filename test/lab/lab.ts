// The lab guest for test/lab/*.lab.ts: a Debian 12 VM with a real kernel iSCSI stack
// (build-lab.sh, boot-lab.sh), reached through openRunner('ssh://...') exactly as users
// reach an ssh:// host: ssh2, the guest's host key checked against a known_hosts file.
//
// useLab() reuses the guest `make test-lab` (or `boot-lab.sh start`) booted; with none
// running it boots one and stops it again in release(), so one file runs on its own:
//   node --import tsx --test test/lab/iscsiadm.lab.ts
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runChecked } from '../../src/runner/check.js';
import { openRunner, type SshOptions } from '../../src/runner/open.js';
import type { RunOptions, Runner } from '../../src/runner/types.js';

const run = promisify(execFile);
const BOOT = join(dirname(fileURLToPath(import.meta.url)), 'boot-lab.sh');

export interface Lab {
  /** ssh://root@127.0.0.1:PORT */
  readonly uri: string;
  readonly ssh: SshOptions;
  /** One SshRunner, shared by the file's tests. */
  readonly runner: Runner;
  /** Runs a setup or checking command in the guest; throws CommandError unless it exits 0. */
  sh(argv: readonly string[], options?: RunOptions): Promise<string>;
  /** Closes the connection, and stops the guest when useLab booted it. */
  release(): Promise<void>;
}

function parseState(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  for (const k of ['PID', 'PORT', 'IDENTITY', 'KNOWN_HOSTS']) {
    if (!out[k]) throw new Error(`boot-lab.sh printed no ${k}=: ${JSON.stringify(text)}`);
  }
  return out;
}

export async function useLab(): Promise<Lab> {
  // Building takes minutes the first time; booting under TCG one to two.
  const { stdout } = await run(BOOT, ['start'], { timeout: 30 * 60_000, maxBuffer: 1 << 24 });
  const state = parseState(stdout);
  const started = state.STARTED === '1';
  const uri = `ssh://root@127.0.0.1:${state.PORT}`;
  const ssh: SshOptions = { identity: state.IDENTITY!, knownHosts: state.KNOWN_HOSTS!, sshConfig: 'none' };
  const runner = await openRunner(uri, ssh);
  return {
    uri,
    ssh,
    runner,
    async sh(argv, options = {}) {
      return (await runChecked(runner, argv, { timeoutMs: 120_000, ...options })).stdout;
    },
    async release() {
      await runner.close();
      if (started) await run(BOOT, ['stop']);
    },
  };
}

/** A suffix that keeps names (IQNs, files) of one run apart from another's. */
export function unique(): string {
  return randomBytes(3).toString('hex');
}
