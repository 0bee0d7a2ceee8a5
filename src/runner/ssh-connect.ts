// Opens one authenticated ssh2 connection: host key checked against known_hosts,
// every failure turned into a one-line ConnectError or HostKeyError.
import ssh2 from 'ssh2';
import type { Client, ConnectConfig, ServerHostKeyAlgorithm } from 'ssh2';
import { ConnectError, HostKeyError } from '../errors.js';
import {
  appendKnownHost,
  checkHostKey,
  fingerprint,
  knownHostsEntry,
  knownKeyTypes,
  parseKnownHosts,
  readKnownHosts,
} from './known-hosts.js';
import type { AuthPlan } from './ssh-auth.js';

export interface SshTarget {
  /** The runner's host URI, for error objects. */
  uri: string;
  /** Where to connect (the config's HostName). */
  hostName: string;
  port: number;
  user: string;
}

export interface ConnectSettings {
  knownHosts: string;
  acceptNewHostKey: boolean;
  auth: AuthPlan;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
}

/** ssh2's default host key algorithms; the ones known_hosts holds for a host go first. */
const HOST_KEY_ALGORITHMS: ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/** The signature algorithms that prove a key of each known_hosts type. */
function algorithmsFor(keyType: string): ServerHostKeyAlgorithm[] {
  if (keyType === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return HOST_KEY_ALGORITHMS.filter((a) => a === keyType);
}

/** "127.0.0.1:2222", "[fe80::1]:22": how messages name the endpoint. */
export function endpoint(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function socketReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to host';
    case 'ETIMEDOUT':
      return 'connection timed out';
    case 'ECONNRESET':
      return 'connection reset by the server';
    default:
      return err.message;
  }
}

export async function openSshClient(t: SshTarget, s: ConnectSettings): Promise<Client> {
  const where = endpoint(t.hostName, t.port);
  const lines = parseKnownHosts(await readKnownHosts(s.knownHosts));
  const preferred = knownKeyTypes(lines, t.hostName, t.port).flatMap(algorithmsFor);
  let hostKeyError: Error | undefined;

  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
    const fp = fingerprint(key);
    const refuse = (message: string): void => {
      hostKeyError = new HostKeyError(t.uri, message, fp);
      verify(false);
    };
    const r = checkHostKey(lines, t.hostName, t.port, key);
    if (r.status === 'known') return verify(true);
    if (r.status === 'revoked') return refuse(`host key of ${where} (${fp}) is marked @revoked in ${s.knownHosts} line ${r.line}; refusing to connect`);
    if (r.status === 'changed') {
      return refuse(
        `host key of ${where} has CHANGED (now ${fp}; ${s.knownHosts} line ${r.line} holds another): ` +
          `the connection may be intercepted, or the host was reinstalled; refusing to connect. ` +
          `If the change is expected, remove that line and connect again`,
      );
    }
    if (!s.acceptNewHostKey) {
      const others = r.otherTypes.length ? `; ${s.knownHosts} knows only its ${r.otherTypes.join(', ')} key` : '';
      return refuse(`host key of ${where} is not known (${fp}${others}); check it and run with --accept-new-host-key to trust it`);
    }
    appendKnownHost(s.knownHosts, knownHostsEntry(t.hostName, t.port, key)).then(
      () => verify(true),
      (e: Error) => refuse(`cannot record the host key of ${where} (${fp}) in ${s.knownHosts}: ${e.message}`),
    );
  };

  const config: ConnectConfig = {
    host: t.hostName,
    port: t.port,
    username: t.user,
    readyTimeout: s.connectTimeoutMs,
    keepaliveInterval: s.keepaliveIntervalMs,
    keepaliveCountMax: 3,
    hostVerifier,
    authHandler: s.auth.attempts.map((a) => a.method),
    ...(preferred.length
      ? { algorithms: { serverHostKey: [...new Set([...preferred, ...HOST_KEY_ALGORITHMS])] } }
      : {}),
  };

  const client = new ssh2.Client();
  return new Promise<Client>((resolve, reject) => {
    let agentProblem = '';
    const fail = (reason: string): void => {
      cleanup();
      client.end();
      reject(new ConnectError(t.uri, `cannot connect to ${where}: ${reason}`));
    };
    const onError = (err: Error & { level?: string }): void => {
      if (hostKeyError) {
        cleanup();
        client.end();
        reject(hostKeyError);
      } else if (err.level === 'agent') {
        agentProblem = `; the agent failed: ${err.message}`; // ssh2 goes on with the next method
      } else if (err.level === 'client-authentication') {
        const tried = s.auth.attempts.map((a) => a.label).join(', ');
        const skipped = s.auth.skipped.length ? `; skipped ${s.auth.skipped.join('; ')}` : '';
        const offered = tried ? `tried ${tried}` : 'no key to offer: give --identity FILE or load a key into ssh-agent';
        fail(`permission denied (publickey) for ${t.user}@${t.hostName} (${offered}${skipped}${agentProblem})`);
      } else if (err.level === 'client-timeout') {
        fail(`timed out after ${s.connectTimeoutMs} ms waiting for the SSH handshake`);
      } else if (err.level === 'client-socket') {
        fail(socketReason(err as NodeJS.ErrnoException));
      } else {
        fail(err.message);
      }
    };
    const onClose = (): void => fail('the server closed the connection during the handshake');
    const onReady = (): void => {
      cleanup();
      resolve(client);
    };
    const cleanup = (): void => {
      client.off('ready', onReady).off('close', onClose);
      // Keep an error listener: ssh2 may emit late errors while ending.
      client.off('error', onError).on('error', () => undefined);
    };
    client.on('ready', onReady).on('error', onError).on('close', onClose);
    client.connect(config);
  });
}
