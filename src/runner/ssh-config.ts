// The basics of ~/.ssh/config (ssh_config(5)): `Host` blocks with patterns, and the
// HostName, User, Port and IdentityFile keywords. As in OpenSSH the first value
// obtained for a keyword wins, except IdentityFile, which accumulates. `Match`
// blocks are not evaluated (never applied); `Include` and other keywords are ignored.
import { readFile } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../errors.js';
import { matchPatternList } from './ssh-pattern.js';

export interface SshConfigEntry {
  /** Lowercased keyword. */
  keyword: string;
  args: string[];
  line: number;
}

export interface SshConfigBlock {
  /** `Host` patterns; `null` for a `Match` block (not evaluated, never applies). */
  patterns: string[] | null;
  entries: SshConfigEntry[];
}

export interface SshHostConfig {
  hostName: string;
  user: string;
  port: number;
  /** IdentityFile values in order, `~` and `%` tokens expanded. */
  identityFiles: string[];
}

export interface SshConfigContext {
  home: string;
  localUser: string;
  /** From the host URI; override the config. */
  user?: string;
  port?: number;
  /** Names the file in error messages. */
  file?: string;
}

/** Splits one line into words: whitespace separated, `"..."` quoted, `#` word starts a comment. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|([^\s"]+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    if (m[2]?.startsWith('#')) break;
    out.push(m[1] ?? m[2] ?? '');
  }
  return out;
}

export function parseSshConfig(text: string): SshConfigBlock[] {
  // Lines before the first Host apply to every host.
  const blocks: SshConfigBlock[] = [{ patterns: ['*'], entries: [] }];
  text.split(/\r?\n/).forEach((raw, i) => {
    // "Keyword value", "Keyword=value" and "Keyword = value" are all valid.
    const m = /^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+|$)(.*)$/.exec(raw);
    if (!m || raw.trimStart().startsWith('#')) return;
    const keyword = m[1]!.toLowerCase();
    const args = words(m[2] ?? '');
    if (keyword === 'host') blocks.push({ patterns: args, entries: [] });
    else if (keyword === 'match') blocks.push({ patterns: null, entries: [] });
    else blocks.at(-1)!.entries.push({ keyword, args, line: i + 1 });
  });
  return blocks;
}

/** The settings for `host` (as given by the user), with defaults filled in. */
export function resolveSshConfig(blocks: readonly SshConfigBlock[], host: string, ctx: SshConfigContext): SshHostConfig {
  const file = ctx.file ?? 'ssh config';
  const first = new Map<string, SshConfigEntry>();
  const identities: SshConfigEntry[] = [];
  for (const block of blocks) {
    if (!block.patterns || matchPatternList(block.patterns, host) !== 'match') continue;
    for (const e of block.entries) {
      if (e.keyword === 'identityfile') identities.push(e);
      else if (!first.has(e.keyword)) first.set(e.keyword, e);
    }
  }
  const value = (keyword: string): SshConfigEntry | undefined => {
    const e = first.get(keyword);
    if (e && e.args.length !== 1) {
      throw new ValidationError(`${file}:${e.line}: ${keyword} needs one value, got ${JSON.stringify(e.args.join(' '))}`, 'sshConfig');
    }
    return e;
  };
  const hostNameEntry = value('hostname');
  const hostName = hostNameEntry ? expand(hostNameEntry, { h: host }, ctx, file) : host;
  const user = ctx.user ?? value('user')?.args[0] ?? ctx.localUser;
  let port = ctx.port;
  const portEntry = value('port');
  if (port === undefined && portEntry) {
    const raw = portEntry.args[0]!;
    port = Number(raw);
    if (!/^\d+$/.test(raw) || port < 1 || port > 65535) {
      throw new ValidationError(`${file}:${portEntry.line}: Port ${JSON.stringify(raw)} is not a port: expected 1-65535`, 'sshConfig');
    }
  }
  const tokens = { h: hostName, r: user, u: ctx.localUser, d: ctx.home };
  const identityFiles = identities.flatMap((e) => e.args.map((a) => expand({ ...e, args: [a] }, tokens, ctx, file)));
  return { hostName, user, port: port ?? 22, identityFiles };
}

/** Expands a leading `~/` and the `%` tokens ssh_config(5) defines for these keywords. */
function expand(e: SshConfigEntry, tokens: Record<string, string>, ctx: SshConfigContext, file: string): string {
  let v = e.args[0]!;
  if (v === '~' || v.startsWith('~/')) v = ctx.home + v.slice(1);
  return v.replace(/%(.)/g, (whole, t: string) => {
    if (t === '%') return '%';
    const r = tokens[t];
    if (r === undefined) {
      throw new ValidationError(`${file}:${e.line}: ${JSON.stringify(whole)} is not a token we expand in ${e.keyword}: expected one of %% ${Object.keys(tokens).map((k) => `%${k}`).join(' ')}`, 'sshConfig');
    }
    return r;
  });
}

/** The default config file, ~/.ssh/config. */
export function defaultSshConfigPath(): string {
  return join(homedir(), '.ssh', 'config');
}

/**
 * Reads and resolves the config for `host`. `path` "none" skips the file (as `ssh -F none`);
 * a missing file is an empty config.
 */
export async function loadSshHostConfig(
  host: string,
  path: string | undefined,
  override: { user?: string; port?: number } = {},
): Promise<SshHostConfig> {
  const file = path ?? defaultSshConfigPath();
  let text = '';
  if (file !== 'none') {
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return resolveSshConfig(parseSshConfig(text), host, { home: homedir(), localUser: userInfo().username, file, ...override });
}
