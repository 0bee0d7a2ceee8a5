// What we offer the server, in OpenSSH's order: the --identity key, the config's
// IdentityFile keys, the agent's keys, then the default ~/.ssh/id_* files that exist.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AgentAuthMethod, ParsedKey, PublicKeyAuthMethod } from 'ssh2';
import { ValidationError } from '../errors.js';

const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

export interface AuthAttempt {
  method: PublicKeyAuthMethod | AgentAuthMethod;
  /** For error messages: "key /root/.ssh/id_ed25519" or "agent". */
  label: string;
}

export interface AuthPlan {
  attempts: AuthAttempt[];
  /** Keys found but not usable, with why (e.g. encrypted). */
  skipped: string[];
}

export interface AuthSources {
  username: string;
  identity?: string;
  configIdentities: readonly string[];
  agentSocket?: string;
  home: string;
}

type KeyRead = { key: ParsedKey } | { missing: true } | { problem: string };

async function readKey(path: string): Promise<KeyRead> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    return { problem: `cannot be read (${code ?? (e as Error).message})` };
  }
  const key = ssh2.utils.parseKey(data);
  if (key instanceof Error) {
    return /passphrase/i.test(key.message)
      ? { problem: 'is encrypted with a passphrase: load it into ssh-agent (ssh-add) instead' }
      : { problem: `is not a private key we can read (${key.message})` };
  }
  if (!key.isPrivateKey()) return { problem: 'is a public key, not a private key' };
  return { key };
}

export async function planAuth(s: AuthSources): Promise<AuthPlan> {
  const attempts: AuthAttempt[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  const addKey = async (path: string, explicit: boolean): Promise<void> => {
    if (seen.has(path)) return;
    seen.add(path);
    const r = await readKey(path);
    if ('key' in r) {
      attempts.push({ method: { type: 'publickey', username: s.username, key: r.key }, label: `key ${path}` });
    } else if ('problem' in r) {
      if (explicit) throw new ValidationError(`identity file ${JSON.stringify(path)} ${r.problem}`, 'identity');
      skipped.push(`${path} ${r.problem}`);
    } else if (explicit) {
      throw new ValidationError(`identity file ${JSON.stringify(path)} does not exist: expected a private key file`, 'identity');
    }
  };
  if (s.identity) await addKey(s.identity, true);
  for (const f of s.configIdentities) await addKey(f, false);
  if (s.agentSocket) attempts.push({ method: { type: 'agent', username: s.username, agent: s.agentSocket }, label: 'agent' });
  for (const f of DEFAULT_KEYS) await addKey(join(s.home, '.ssh', f), false);
  return { attempts, skipped };
}
