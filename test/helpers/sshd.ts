import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, waitFor, portOpen, type Daemon } from './daemon.js';
import { freePort } from './ports.js';

/** A real sshd on 127.0.0.1 with generated host and user keys, stopped by PID. */
export interface Sshd {
  readonly pid: number;
  readonly port: number;
  /** ssh://root@127.0.0.1:PORT */
  readonly uri: string;
  /** The user's private key (its public half is the only authorized key). */
  readonly identity: string;
  /** A known_hosts file holding this sshd's host key. */
  readonly knownHosts: string;
  /** The ed25519 host key's public line ("ssh-ed25519 AAAA..."). */
  readonly hostKeyPublic: string;
  readonly dir: string;
  /** Makes a fresh key pair (not authorized) for negative tests. */
  newKey(name: string): string;
  /** Stops listening (the host is out of reach), keeping its keys and port for resume(). */
  pause(): Promise<void>;
  /** Listens again on the same port with the same keys. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

function keygen(file: string, comment: string): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
}

export async function startSshd(opts: { hostKey?: string } = {}): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-sshd-'));
  const port = await freePort();
  const hostKey = join(dir, 'host_ed25519');
  if (opts.hostKey) {
    writeFileSync(hostKey, readFileSync(opts.hostKey), { mode: 0o600 });
    writeFileSync(`${hostKey}.pub`, readFileSync(`${opts.hostKey}.pub`));
  } else {
    keygen(hostKey, 'virt-iscsi-test-host');
  }
  const identity = join(dir, 'user_ed25519');
  keygen(identity, 'virt-iscsi-test-user');
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${identity}.pub`), { mode: 0o600 });
  const hostKeyPublic = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKeyPublic}\n`);
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${authorized}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'UseDNS no',
      'MaxSessions 20',
      // bash sources ~/.bashrc for commands sshd runs when SHLVL < 2; this machine's root
      // .bashrc runs `pyenv init` (~1.1 s a command). Tests measure our code, not that.
      'SetEnv SHLVL=1',
      'MaxStartups 50',
      'Subsystem sftp internal-sftp',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  let daemon!: Daemon;
  const launch = async (): Promise<void> => {
    daemon = startDaemon(['/usr/sbin/sshd', '-D', '-e', '-f', config]);
    await waitFor(`sshd on 127.0.0.1:${port}`, () => portOpen(port), 15000).catch((e) => {
      throw new Error(`${(e as Error).message}\n${daemon.output()}`);
    });
  };
  await launch();
  return {
    get pid() {
      return daemon.pid;
    },
    port,
    uri: `ssh://root@127.0.0.1:${port}`,
    identity,
    knownHosts,
    hostKeyPublic,
    dir,
    newKey(name) {
      const f = join(dir, name);
      keygen(f, name);
      return f;
    },
    pause: () => daemon.stop(),
    resume: launch,
    async stop() {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
