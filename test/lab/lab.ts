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
import { cliEntry } from '../helpers/cli.js';

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

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Runs the virt-iscsi CLI on this host as a user would (`src/cli/run.ts`), reaching the
 * guest through --storage/--hypervisor/--host ssh://... with the lab's key and
 * known_hosts. `env` adds to the environment (XDG_STATE_HOME for export records).
 */
export async function labCli(lab: Lab, args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  const argv = [...cliEntry(), ...args, '--identity', lab.ssh.identity!, '--known-hosts', lab.ssh.knownHosts!];
  try {
    const r = await run(process.execPath, argv, { cwd: ROOT, encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 24, env: { ...process.env, ...env } });
    return { status: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { status: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** labCli that must exit 0: its stdout. */
export async function labCliOk(lab: Lab, args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  const r = await labCli(lab, args, env);
  if (r.status !== 0) throw new Error(`virt-iscsi ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A suffix that keeps names (IQNs, files) of one run apart from another's. */
export function unique(): string {
  return randomBytes(3).toString('hex');
}

/**
 * Defines (and starts, unless told) a TCG domain in the guest: no OS, so it sits in its
 * firmware; ACPI on, so PCI devices hot-plug; a virtio-scsi controller unless `scsi` is
 * false. The guest's KVM is not there: QEMU runs it under TCG.
 */
export async function labDomain(lab: Lab, name: string, o: { scsi?: boolean; start?: boolean } = {}): Promise<void> {
  const scsi = o.scsi === false ? '' : "<controller type='scsi' model='virtio-scsi'/>";
  const xml = `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <features><acpi/><apic/></features>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>${scsi}</devices></domain>\n`;
  const file = `/tmp/${name}.xml`;
  await lab.runner.writeFile(file, xml);
  await lab.sh(['virsh', 'define', file]);
  await lab.runner.removeFile(file);
  if (o.start !== false) await lab.sh(['virsh', 'start', name]);
}

/** Stops and undefines the domain; one already gone is fine. */
export async function removeDomain(lab: Lab, name: string): Promise<void> {
  await lab.runner.run(['virsh', 'destroy', name]);
  await lab.runner.run(['virsh', 'undefine', name]);
}
