// known_hosts (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): checking a server's host key
// as OpenSSH does, and recording a new one. A line is
//   [@marker] hostpatterns keytype base64-key [comment]
// e.g. (the same key, plain and as `ssh-keygen -H` hashes it):
//   [127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzEidoZwu+99O9F8bTS/QiEcX0ZEpcc7z9szE8TC+6J
//   |1|XZcY3/FbeGssqPd3MxEspRMRoU8=|ozP+smQ+2c2RMAiEw5OGMrmniPs= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzEidoZwu+99O9F8bTS/QiEcX0ZEpcc7z9szE8TC+6J
// hostpatterns is a comma list of patterns (`*`, `?`, `!`), or one hashed name
// |1|base64(salt)|base64(HMAC-SHA1(salt, name)). The name is `host` on port 22 and
// `[host]:port` on any other port.
import { createHash, createHmac } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { matchPatternList } from './ssh-pattern.js';

export interface KnownHostLine {
  marker?: 'cert-authority' | 'revoked';
  /** The host field as written: a comma list of patterns or one |1|salt|hash. */
  hosts: string;
  keyType: string;
  key: Buffer;
  line: number;
}

export type HostKeyStatus =
  | { status: 'known' }
  /** Not in the file; `otherTypes` are key types known for this host. */
  | { status: 'unknown'; otherTypes: string[] }
  /** The file holds a different key of the same type for this host: refuse. */
  | { status: 'changed'; line: number }
  | { status: 'revoked'; line: number };

export function defaultKnownHostsPath(): string {
  return join(homedir(), '.ssh', 'known_hosts');
}

/** The name known_hosts uses for a host and port. */
export function knownHostName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** "SHA256:..." as `ssh-keygen -l` prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type a public key blob starts with (an SSH string: uint32 length, then bytes). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return '';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

export function parseKnownHosts(text: string): KnownHostLine[] {
  const out: KnownHostLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const fields = raw.trim().split(/\s+/);
    if (!fields[0] || fields[0].startsWith('#')) return;
    let marker: KnownHostLine['marker'];
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!.slice(1);
      if (m !== 'cert-authority' && m !== 'revoked') return;
      marker = m;
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+=*$/.test(b64)) return;
    out.push({ ...(marker ? { marker } : {}), hosts, keyType, key: Buffer.from(b64, 'base64'), line: i + 1 });
  });
  return out;
}

/** True when a line's host field names `name` (from knownHostName). */
export function hostFieldMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith('|1|')) {
    const [, , salt, hash] = hosts.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  return matchPatternList(hosts.split(','), name) === 'match';
}

/**
 * Checks `key` (the server's public key blob) for host:port. As OpenSSH: a revoked
 * key is refused; the same key is known; another key of the same type is a change;
 * no key of this type is unknown.
 */
export function checkHostKey(lines: readonly KnownHostLine[], host: string, port: number, key: Buffer): HostKeyStatus {
  const name = knownHostName(host, port);
  const type = keyTypeOf(key);
  const revoked = lines.find((l) => l.marker === 'revoked' && l.key.equals(key) && hostFieldMatches(l.hosts, name));
  if (revoked) return { status: 'revoked', line: revoked.line };
  const mine = lines.filter((l) => !l.marker && hostFieldMatches(l.hosts, name));
  if (mine.some((l) => l.key.equals(key))) return { status: 'known' };
  const changed = mine.find((l) => keyTypeOf(l.key) === type);
  if (changed) return { status: 'changed', line: changed.line };
  return { status: 'unknown', otherTypes: [...new Set(mine.map((l) => keyTypeOf(l.key)))] };
}

/** Key types the file knows for host:port, in file order (to prefer them in the handshake). */
export function knownKeyTypes(lines: readonly KnownHostLine[], host: string, port: number): string[] {
  const name = knownHostName(host, port);
  return [...new Set(lines.filter((l) => !l.marker && hostFieldMatches(l.hosts, name)).map((l) => keyTypeOf(l.key)))];
}

/** The line to append for a newly trusted key. */
export function knownHostsEntry(host: string, port: number, key: Buffer): string {
  return `${knownHostName(host, port)} ${keyTypeOf(key)} ${key.toString('base64')}`;
}

/** The file's text, or '' when it does not exist yet. */
export async function readKnownHosts(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Appends one entry, creating the file (and a 0700 directory) when missing. */
export async function appendKnownHost(path: string, entry: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const text = await readKnownHosts(path);
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  await appendFile(path, `${sep}${entry}\n`, { mode: 0o644 });
}
