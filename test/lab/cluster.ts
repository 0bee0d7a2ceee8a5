// Two real libvirt hypervisors and one storage host, for the cluster lab tests: this
// machine's libvirtd (`local`) and the lab guest's (ssh://root@127.0.0.1:LABPORT), with a
// private tgtd on this machine as the storage host.
//
// Both hypervisors reach the storage at the same address, 127.0.0.1:P, and each reaches
// the other's libvirtd over SSH, which is what `virsh migrate --p2p` needs:
//   this machine -> guest: boot-lab.sh's one hostfwd, 127.0.0.1:LABPORT -> the guest's sshd;
//   guest -> this machine: one `ssh -N -R` from here into the guest makes the guest's
//     127.0.0.1:P (tgtd) and 127.0.0.1:S (a private sshd of this machine, root by key)
//     lead back to this machine's 127.0.0.1:P and 127.0.0.1:S.
// The guest's network stays restricted (QEMU user mode, restrict=on): it reaches nothing
// but these two forwarded ports, and only for as long as the cluster lives.
//
// libvirt reaches the other side with its libssh transport, which takes a known_hosts file
// and a key file in the URI: host keys are checked (a wrong or unknown key is refused) and
// neither machine's ~/.ssh is read or written.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { runChecked } from '../../src/runner/check.js';
import { openRunner } from '../../src/runner/open.js';
import type { RunOptions, Runner } from '../../src/runner/types.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/daemon.js';
import { ensureLibvirtd } from '../helpers/libvirt.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { useLab, type Lab } from './lab.js';

export interface Hypervisor {
  /** virt-iscsi host URI, as this machine (where tests and the CLI run) reaches it. */
  readonly uri: string;
  readonly runner: Runner;
  /**
   * libvirt connect URI of this hypervisor's libvirtd as the *other* hypervisor reaches
   * it: the destination of `virsh migrate --p2p` run on the other one.
   */
  readonly libvirtUri: string;
  /** Runs a command there; throws CommandError unless it exits 0. */
  sh(argv: readonly string[], options?: RunOptions): Promise<string>;
}

export interface Cluster {
  readonly lab: Lab;
  /** This machine: `local`, qemu:///system. */
  readonly host: Hypervisor;
  /** The lab guest: ssh://root@127.0.0.1:LABPORT. */
  readonly guest: Hypervisor;
  /** The storage host: a private tgtd on this machine. */
  readonly tgtd: Tgtd;
  /** 'IP:PORT' of tgtd: the same address reaches it from both hypervisors. */
  readonly portal: string;
  /**
   * This machine as an ssh:// host (a private sshd on 127.0.0.1:S, root by key) with the
   * files to reach it from here: the same URI reaches this machine from the guest.
   */
  readonly hostSsh: { uri: string; identity: string; knownHosts: string };
  /** Stops the tunnel, sshd and tgtd, removes the key files from the guest, releases the lab. */
  release(): Promise<void>;
}

const libsshUri = (port: number, keyfile: string, knownHosts: string): string =>
  `qemu+libssh://root@127.0.0.1:${port}/system?keyfile=${keyfile}&known_hosts=${knownHosts}&sshauth=privkey`;

/** Which of `ports` something listens on in the guest (TCP, any address), from its `ss`. */
async function guestListening(lab: Lab, ports: readonly number[]): Promise<number[]> {
  const local = (await lab.sh(['ss', '-Htln'])).split('\n').map((l) => l.trim().split(/\s+/)[3] ?? '');
  const open = new Set(local.map((a) => Number(a.slice(a.lastIndexOf(':') + 1))));
  return ports.filter((p) => open.has(p));
}

export async function useCluster(): Promise<Cluster> {
  const undo: Array<() => Promise<unknown>> = [];
  const release = async (): Promise<void> => {
    for (const fn of undo.reverse()) await fn().catch(() => undefined);
    undo.length = 0;
  };
  try {
    const lab = await useLab();
    undo.push(() => lab.release());
    const stopLibvirtd = await ensureLibvirtd(); // already running here: a no-op then
    undo.push(stopLibvirtd);
    const tgtd = await startTgtd();
    undo.push(() => tgtd.stop());
    const sshd: Sshd = await startSshd();
    undo.push(() => sshd.stop());

    // The forwarded ports must be free in the guest too (it listens on few: 22, 3260, 3261).
    const taken = await guestListening(lab, [tgtd.port, sshd.port]);
    if (taken.length) throw new Error(`port ${taken.join(', ')} is taken in the lab guest: cannot forward it to this machine`);

    const state = lab.ssh;
    const tunnel: Daemon = startDaemon([
      'ssh', '-N', '-F', '/dev/null', '-i', state.identity!, '-p', new URL(lab.uri).port,
      '-o', `UserKnownHostsFile=${state.knownHosts!}`, '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes',
      '-o', 'ServerAliveInterval=10', '-o', 'ServerAliveCountMax=6',
      '-R', `127.0.0.1:${tgtd.port}:127.0.0.1:${tgtd.port}`,
      '-R', `127.0.0.1:${sshd.port}:127.0.0.1:${sshd.port}`,
      'root@127.0.0.1',
    ]);
    undo.push(() => tunnel.stop());
    await waitFor('the ssh -R forwards in the lab guest', async () => (await guestListening(lab, [tgtd.port, sshd.port])).length === 2, 60_000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${tunnel.output()}`);
    });

    // The guest's libvirtd logs in to this machine's sshd with a key of its own copy.
    const tag = randomBytes(3).toString('hex');
    const guestKey = `/root/.ssh/virt-iscsi-lab-peer-${tag}`;
    const guestKnownHosts = `${guestKey}.known_hosts`;
    undo.push(() => lab.runner.run(['rm', '-f', guestKey, guestKnownHosts]));
    await lab.sh(['install', '-d', '-m', '700', '/root/.ssh']);
    await lab.runner.writeFile(guestKey, readFileSync(sshd.identity, 'utf8'), { mode: 0o600, secret: true });
    await lab.runner.writeFile(guestKnownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostKeyPublic}\n`);

    const local = await openRunner('local');
    const hypervisor = (uri: string, runner: Runner, libvirtUri: string): Hypervisor => ({
      uri,
      runner,
      libvirtUri,
      async sh(argv, options = {}) {
        return (await runChecked(runner, argv, { timeoutMs: 300_000, ...options })).stdout;
      },
    });
    return {
      lab,
      host: hypervisor('local', local, libsshUri(sshd.port, guestKey, guestKnownHosts)),
      guest: hypervisor(lab.uri, lab.runner, libsshUri(Number(new URL(lab.uri).port), state.identity!, state.knownHosts!)),
      tgtd,
      portal: tgtd.portal,
      hostSsh: { uri: sshd.uri, identity: sshd.identity, knownHosts: sshd.knownHosts },
      release,
    };
  } catch (e) {
    await release();
    throw e;
  }
}
