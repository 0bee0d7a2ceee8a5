// The addresses a host has, so a portal it is asked to listen on is one of its own.
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';
import { commandError } from '../runner/check.js';
import type { Runner } from '../runner/types.js';

export interface HostAddress {
  ifname: string;
  address: string;
  prefix: number;
  /** host (loopback), link, global. */
  scope: string;
}

/**
 * `ip -o addr` (iproute2 6.1): one address a line,
 *   1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
 *   1: lo    inet6 ::1/128 scope host \       valid_lft forever preferred_lft forever
 *   4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever
 *   4: eth0    inet6 fe80::fc:ff:fe00:1/64 scope link \       valid_lft forever preferred_lft forever
 */
export function parseIpAddr(text: string): HostAddress[] {
  const out: HostAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet6?\s+([0-9a-fA-F.:]+)\/(\d+)\s.*?\bscope (\w+)/.exec(line);
    if (m && isIP(m[2]!) !== 0) out.push({ ifname: m[1]!, address: m[2]!.toLowerCase(), prefix: Number(m[3]), scope: m[4]! });
  }
  return out;
}

export async function hostAddresses(runner: Runner): Promise<HostAddress[]> {
  const argv = ['ip', '-o', 'addr'];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) throw commandError(runner, argv, r);
  return parseIpAddr(r.stdout);
}

const v4 = (a: string): number => a.split('.').reduce((n, x) => n * 256 + Number(x), 0);

/**
 * The host answers on `address`: it is one of its addresses, or lies in the prefix of a
 * loopback one (127.0.0.1/8 on lo makes every 127.x.y.z local).
 */
export function hasAddress(addresses: readonly HostAddress[], address: string): boolean {
  if (isIP(address) === 0) throw new ValidationError(`${JSON.stringify(address)} is not an IP address`, 'portal');
  const a = address.toLowerCase();
  return addresses.some((h) => {
    if (h.address === a) return true;
    if (h.scope !== 'host' || isIP(a) !== 4 || isIP(h.address) !== 4) return false;
    const mask = h.prefix === 0 ? 0 : (0xffffffff << (32 - h.prefix)) >>> 0;
    return ((v4(a) & mask) >>> 0) === ((v4(h.address) & mask) >>> 0);
  });
}
