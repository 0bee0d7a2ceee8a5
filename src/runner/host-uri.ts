import { ValidationError } from '../errors.js';

export type HostSpec =
  | { kind: 'local' }
  | { kind: 'ssh'; host: string; user?: string; port?: number };

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/** Parses `local` or `ssh://[user@]host[:port]` (IPv6 in brackets). */
export function parseHostUri(uri: string): HostSpec {
  if (uri === 'local') return { kind: 'local' };
  const m = /^ssh:\/\/(?:([^@/]*)@)?(\[[^\]]*\]|[^:/]*)(?::([^/]*))?\/?$/.exec(uri);
  if (!m) {
    throw new ValidationError(`host ${JSON.stringify(uri)} is not a host URI: expected "local" or "ssh://[user@]host[:port]"`, 'host');
  }
  const [, user, rawHost = '', rawPort] = m;
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  if (!(HOSTNAME.test(host) || (rawHost.startsWith('[') && IPV6.test(host)))) {
    throw new ValidationError(`host ${JSON.stringify(uri)} has an invalid host name ${JSON.stringify(host)}`, 'host');
  }
  if (user !== undefined && !USER.test(user)) {
    throw new ValidationError(`host ${JSON.stringify(uri)} has an invalid user name ${JSON.stringify(user)}`, 'host');
  }
  let port: number | undefined;
  if (rawPort !== undefined) {
    port = Number(rawPort);
    if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) {
      throw new ValidationError(`host ${JSON.stringify(uri)} has an invalid port ${JSON.stringify(rawPort)}: expected 1-65535`, 'host');
    }
  }
  return { kind: 'ssh', host, ...(user ? { user } : {}), ...(port ? { port } : {}) };
}

export function formatHostUri(spec: HostSpec): string {
  if (spec.kind === 'local') return 'local';
  const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
  return `ssh://${spec.user ? `${spec.user}@` : ''}${host}${spec.port ? `:${spec.port}` : ''}`;
}
