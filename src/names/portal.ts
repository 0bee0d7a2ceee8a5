// Portals: `HOST[:PORT]`, IPv6 in brackets (`[fe80::1]:3260`), port 3260 by default.
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';

export const DEFAULT_ISCSI_PORT = 3260;

export interface Portal {
  /** Host name, IPv4 or IPv6 address (no brackets). */
  host: string;
  port: number;
}

// Labels of 1-63 letters, digits and inner hyphens (RFC 1123 §2.1), 253 characters in all.
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * An IP address or a DNS host name. A name whose last label is all digits is neither
 * (RFC 3696 §2: top-level domains are not all-numeric), so a mistyped address such as
 * 256.1.1.1 is refused instead of being looked up as a name.
 */
export function isHost(host: string): boolean {
  if (isIP(host) !== 0) return true;
  return HOSTNAME.test(host) && !/(?:^|\.)[0-9]+$/.test(host);
}

/**
 * `fe80::1:3261` is a valid IPv6 address, but people who write it mean fe80::1, port 3261.
 * When the part before the last ':' is itself a compressed IPv6 address and the last
 * group is 2 to 5 decimal digits of a port number, the text is refused as ambiguous. A
 * full 8-group address, or one ending in a 1-digit or hex group, stays an address.
 */
function portLike(text: string): Portal | undefined {
  const i = text.lastIndexOf(':');
  const host = text.slice(0, i);
  const port = text.slice(i + 1);
  if (!/^[0-9]{2,5}$/.test(port) || Number(port) > 65535 || Number(port) < 1) return undefined;
  if (!host.includes('::') || isIP(host) !== 6) return undefined;
  return { host, port: Number(port) };
}

export function parsePortal(text: string): Portal {
  const bad = (why: string): never => {
    throw new ValidationError(`portal ${JSON.stringify(text)} ${why}; expected HOST[:PORT] or [IPV6][:PORT]`, 'portal');
  };
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    port = v6[2];
    if (isIP(host) !== 6) bad(`has ${JSON.stringify(host)} in brackets, which is not an IPv6 address`);
  } else if (isIP(text) === 6) {
    host = text; // a bare IPv6 address: no port can follow
    const port = portLike(text);
    if (port) bad(`looks like an IPv6 address with a port: write [${port.host}]:${port.port} (or [${text}] for the address alone)`);
  } else {
    const i = text.lastIndexOf(':');
    host = i < 0 ? text : text.slice(0, i);
    port = i < 0 ? undefined : text.slice(i + 1);
    if (!isHost(host)) bad(`has an invalid host ${JSON.stringify(host)}`);
  }
  let portNumber = DEFAULT_ISCSI_PORT;
  if (port !== undefined) {
    portNumber = Number(port);
    if (!/^\d{1,5}$/.test(port) || portNumber < 1 || portNumber > 65535) bad(`has an invalid port ${JSON.stringify(port)}`);
  }
  return { host, port: portNumber };
}

/** `host:port`, IPv6 in brackets: the form iscsiadm, libiscsi URLs and people use. */
export function formatPortal(p: Portal): string {
  return `${isIP(p.host) === 6 ? `[${p.host}]` : p.host}:${p.port}`;
}

/** Same address and port (hosts as given: resolve names first where that matters). */
export function samePortal(a: Portal, b: Portal): boolean {
  return a.host === b.host && a.port === b.port;
}
