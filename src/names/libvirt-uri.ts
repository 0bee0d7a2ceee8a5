// libvirt connection URIs, checked before virsh ever sees one. A libvirt URI can run a
// program: `qemu+ext:///system?command=/path/x` execs /path/x, `?netcat=CMD` names the
// command run on the far side of an SSH link, `?socket=` points the client at any socket.
// A URI that comes from a stack file or from a record on another host must not turn root
// there into root here, so only the qemu driver with plain transports and a short list of
// parameters that name no program is accepted, wherever the URI comes from (flag, stack
// file, record): everything else is refused with one line naming it.
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';

export const DEFAULT_LIBVIRT_URI = 'qemu:///system';

/** The shape checkLibvirtUri takes, for schemas: the qemu driver, a plain transport, /system or /session (parameters are checked one by one). */
export const LIBVIRT_URI = /^qemu(?:\+(?:unix|ssh|tls|tcp|libssh|libssh2))?:\/\/[^/?\s]*\/(?:system|session)(?:\?[^\s]*)?$/;

/** Transports that reach libvirtd without running a program we do not choose. */
const TRANSPORTS = ['', 'unix', 'ssh', 'tls', 'tcp', 'libssh', 'libssh2'] as const;
const REMOTE = new Set(['ssh', 'tls', 'tcp', 'libssh', 'libssh2']);

/** Parameters that only choose how to connect or check the peer (none names a program). */
const PARAMS: Record<string, (v: string) => boolean> = {
  // ssh/libssh: the key and known_hosts files to use, host key checking, no terminal.
  keyfile: absolutePath,
  known_hosts: absolutePath,
  known_hosts_verify: (v) => ['normal', 'auto', 'ignore'].includes(v),
  no_verify: (v) => v === '0' || v === '1',
  no_tty: (v) => v === '0' || v === '1',
  sshauth: (v) => /^(?:agent|privkey|password|keyboard-interactive)(?:,(?:agent|privkey|password|keyboard-interactive))*$/.test(v),
  // tls: where the client certificates are.
  pkipath: absolutePath,
  // Which of libvirt's own helpers answers on the far side: never a command of the URI's choosing.
  proxy: (v) => v === 'auto' || v === 'native',
  mode: (v) => ['auto', 'legacy', 'direct'].includes(v),
  // Only libvirt's own sockets.
  socket: (v) => /^\/(?:var\/)?run\/libvirt\/[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/.test(v) && !v.split('/').includes('..'),
};

function absolutePath(v: string): boolean {
  return v.startsWith('/') && !/[\x00-\x1f\x7f]/.test(v);
}

const HOST = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const USER = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/**
 * Returns the URI when it is one we run virsh with, else throws a ValidationError naming it
 * and saying what is allowed. `what` names where it came from ("--connect", "connect in
 * stack.yaml", "record ...").
 */
export function checkLibvirtUri(uri: string, what = 'libvirt URI'): string {
  const bad = (why: string): never => {
    throw new ValidationError(
      `${what} ${JSON.stringify(uri)} ${why}; expected qemu:///system, qemu:///session or qemu+ssh|tls|tcp://[user@]host[:port]/system without command=, netcat= or other program parameters`,
      'connect',
    );
  };
  if (typeof uri !== 'string' || uri === '') return bad('is empty');
  if (uri.startsWith('-')) return bad('looks like an option');
  if (/[\x00-\x20\x7f]/.test(uri)) return bad('contains spaces or control characters');
  const m = /^([a-z0-9]+)(?:\+([a-z0-9]+))?:\/\/([^/?]*)(\/[^?]*)?(?:\?(.*))?$/.exec(uri);
  if (!m) return bad('is not a libvirt URI');
  const [, driver, transport = '', authority = '', path = '', query] = m;
  if (driver !== 'qemu') return bad(`uses the ${driver} driver, not qemu`);
  if (!(TRANSPORTS as readonly string[]).includes(transport)) return bad(`uses the ${transport} transport, which runs a program or is not supported`);
  if (path !== '/system' && path !== '/session') return bad(`has path ${JSON.stringify(path)}, not /system or /session`);
  if (REMOTE.has(transport)) {
    const a = /^(?:([^@]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority);
    if (!a) return bad('names no host');
    const [, user, host = '', port] = a;
    const bare = host.startsWith('[') ? host.slice(1, -1) : host;
    if (user !== undefined && !USER.test(user)) return bad(`has an invalid user name ${JSON.stringify(user)}`);
    if (!(host.startsWith('[') ? isIP(bare) === 6 : HOST.test(bare))) return bad(`has an invalid host ${JSON.stringify(bare)}`);
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return bad(`has an invalid port ${port}`);
  } else if (authority !== '') {
    return bad(`names host ${JSON.stringify(authority)} without a remote transport (qemu+ssh://, qemu+tls://, qemu+tcp://)`);
  }
  for (const pair of query === undefined || query === '' ? [] : query.split('&')) {
    const eq = pair.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
      value = decodeURIComponent(eq < 0 ? '' : pair.slice(eq + 1));
    } catch {
      return bad(`has a malformed parameter ${JSON.stringify(pair)}`);
    }
    const ok = PARAMS[key];
    if (!Object.hasOwn(PARAMS, key) || !ok) return bad(`has parameter ${JSON.stringify(key)}, which is not allowed`);
    if (!ok(value)) return bad(`has ${key}=${JSON.stringify(value)}, which is not allowed`);
  }
  return uri;
}
