// Parsers for what open-iscsi prints. Each takes the real text (a sample above each
// function, captured from open-iscsi 2.1.8 in the lab guest; the whole captures are in
// test/fixtures/iscsiadm) and returns plain data; none of them runs anything.
import { isIP } from 'node:net';
import { ValidationError } from '../errors.js';
import type { Portal } from '../names/portal.js';

/**
 * IPv6 addresses in their short form (RFC 5952), as Portal values and by-path names
 * carry them: `iscsiadm -m session -P 3` prints the kernel's full form for the current
 * portal ("Current Portal: [0000:0000:0000:0000:0000:0000:0000:0001]:3261,1", next to
 * "Persistent Portal: [::1]:3261,1"; test/fixtures/lab/session-p3-tgt-and-lio-ipv6.txt).
 */
function shortHost(host: string): string {
  if (isIP(host) !== 6 || host.includes('%')) return host;
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

/**
 * A record made without a portal group (`-o new` on a bare portal) has tpgt -1, which
 * `iscsiadm -m node` prints as unsigned: "127.0.0.1:3260,4294967295 IQN"
 * (test/fixtures/lab/node-list.txt).
 */
function tpgtValue(text: string): number {
  const n = Number(text);
  return n === 0xffffffff ? -1 : n;
}

/** One `portal,tpgt target` line: a target reachable through a portal group. */
export interface NodeEntry {
  portal: Portal;
  /** Target portal group tag; -1 when the record was made without one. */
  tpgt: number;
  iqn: string;
}

// `ADDRESS:PORT,TPGT IQN`, IPv6 in brackets. The address is whatever the target sent
// in SendTargets (usually an IP, but a target may send a host name).
const NODE_LINE = /^(?:\[([0-9A-Fa-f:.%]+)\]|([^\s\[\]:,]+)):(\d{1,5}),(-?\d+) (\S+)(?: \((?:non-)?flash\))?$/;

/**
 * `iscsiadm -m discovery -t sendtargets -p P [-o nonpersistent]` and `iscsiadm -m node`:
 *   127.0.0.1:3260,1 iqn.2024-01.test.lab:lio1
 *   [fd00::1]:3260,1 iqn.2024-01.test.lab:lio1
 * Lines that are not entries (warnings some versions print on stdout) are skipped.
 */
export function parseNodeList(stdout: string): NodeEntry[] {
  const out: NodeEntry[] = [];
  for (const raw of stdout.split('\n')) {
    const m = NODE_LINE.exec(raw.trim());
    if (!m) continue;
    const host = m[1] ?? m[2]!;
    if (m[1] !== undefined && isIP(host) !== 6) continue;
    out.push({ portal: { host: shortHost(host), port: Number(m[3]) }, tpgt: tpgtValue(m[4]!), iqn: m[5]! });
  }
  return out;
}

/** One SCSI device of a session: H:C:T:L and, for disks, the block device. */
export interface SessionDevice {
  host: number;
  channel: number;
  id: number;
  lun: number;
  /** Block device name (sdb), when the kernel attached one. */
  disk?: string;
  /** SCSI device state: running, blocked, offline, transport-offline... */
  state?: string;
}

export interface IscsiSession {
  iqn: string;
  sid: number;
  /** The portal in use (after redirects) and its group tag. */
  portal: Portal;
  tpgt: number;
  persistentPortal?: Portal;
  iface?: string;
  initiatorName?: string;
  /** "LOGGED IN", "FAILED", "FREE"... (iSCSI Connection State). */
  connectionState?: string;
  /** "LOGGED_IN", "FAILED", "FREE" (iSCSI Session State). */
  sessionState?: string;
  hostNumber?: number;
  devices: SessionDevice[];
}

const PORTAL_TPGT = /^(?:\[([0-9A-Fa-f:.%]+)\]|([^\s\[\]:,]+)):(\d{1,5}),(-?\d+)$/;

function portalTpgt(text: string, where: string): { portal: Portal; tpgt: number } {
  const m = PORTAL_TPGT.exec(text.trim());
  if (!m) throw new ValidationError(`iscsiadm session output: ${where} ${JSON.stringify(text)} is not ADDRESS:PORT,TPGT`, 'portal');
  return { portal: { host: shortHost(m[1] ?? m[2]!), port: Number(m[3]) }, tpgt: tpgtValue(m[4]!) };
}

/**
 * `iscsiadm -m session -P 3` (tabs as printed; abridged):
 *   iSCSI Transport Class version 2.0-870
 *   version 2.1.8
 *   Target: iqn.2024-01.test.lab:lio1 (non-flash)
 *   	Current Portal: 127.0.0.1:3260,1
 *   	Persistent Portal: 127.0.0.1:3260,1
 *   		Iface Name: default
 *   		Iface Initiatorname: iqn.1993-08.org.debian:01:c0ffee
 *   		SID: 1
 *   		iSCSI Connection State: LOGGED IN
 *   		iSCSI Session State: LOGGED_IN
 *   		Host Number: 2	State: running
 *   		scsi2 Channel 00 Id 0 Lun: 0
 *   			Attached scsi disk sda		State: running
 * One Target line may head several sessions, each starting at "Current Portal".
 */
export function parseSessionTree(stdout: string): IscsiSession[] {
  const sessions: IscsiSession[] = [];
  let iqn: string | undefined;
  let cur: IscsiSession | undefined;
  let dev: SessionDevice | undefined;
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^Target: (\S+)/.exec(line))) {
      iqn = m[1]!;
      cur = undefined;
    } else if ((m = /^Current Portal: (\S+)/.exec(line))) {
      if (!iqn) throw new ValidationError('iscsiadm session output: a portal before any "Target:" line', 'target');
      const { portal, tpgt } = portalTpgt(m[1]!, 'Current Portal');
      cur = { iqn, sid: -1, portal, tpgt, devices: [] };
      dev = undefined;
      sessions.push(cur);
    } else if (!cur) {
      continue;
    } else if ((m = /^Persistent Portal: (\S+)/.exec(line))) {
      cur.persistentPortal = portalTpgt(m[1]!, 'Persistent Portal').portal;
    } else if ((m = /^Iface Name: (\S+)/.exec(line))) {
      cur.iface = m[1]!;
    } else if ((m = /^Iface Initiatorname: (\S+)/.exec(line))) {
      cur.initiatorName = m[1]!;
    } else if ((m = /^SID: (\d+)/.exec(line))) {
      cur.sid = Number(m[1]);
    } else if ((m = /^iSCSI Connection State: (.+)$/.exec(line))) {
      cur.connectionState = m[1]!;
    } else if ((m = /^iSCSI Session State: (.+)$/.exec(line))) {
      cur.sessionState = m[1]!;
    } else if ((m = /^Host Number: (\d+)/.exec(line))) {
      cur.hostNumber = Number(m[1]);
    } else if ((m = /^scsi(\d+) Channel (\d+) Id (\d+) Lun: (\d+)$/.exec(line))) {
      dev = { host: Number(m[1]), channel: Number(m[2]), id: Number(m[3]), lun: Number(m[4]) };
      cur.devices.push(dev);
    } else if ((m = /^Attached scsi disk (\S+)\s+State: (\S+)/.exec(line)) && dev) {
      dev.disk = m[1]!;
      dev.state = m[2]!;
    }
  }
  for (const s of sessions) {
    if (s.sid < 0) throw new ValidationError(`iscsiadm session output: the session to ${s.iqn} has no SID line`, 'sid');
  }
  return sessions;
}

/**
 * A node record as `iscsiadm -m node -T IQN -p PORTAL` prints it (and as it is stored
 * under nodes/IQN/ADDRESS,PORT,TPGT/IFACE), secrets shown as ********:
 *   # BEGIN RECORD 2.1.8
 *   node.name = iqn.2024-01.test.lab:lio1
 *   node.startup = manual
 *   node.session.auth.authmethod = None
 *   node.session.auth.password = <empty>
 *   # END RECORD
 */
export function parseNodeRecord(text: string): Map<string, string> {
  const rec = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Za-z0-9_.[\]]+) = (.*)$/.exec(raw);
    if (m) rec.set(m[1]!, m[2]!.trim() === '<empty>' ? '' : m[2]!.trim());
  }
  return rec;
}

/**
 * /etc/iscsi/initiatorname.iscsi:
 *   ## DO NOT EDIT OR REMOVE THIS FILE!
 *   InitiatorName=iqn.1993-08.org.debian:01:c0ffee
 */
export function parseInitiatorName(text: string): string | undefined {
  for (const raw of text.split('\n')) {
    const m = /^\s*InitiatorName\s*=\s*(\S+)\s*$/.exec(raw);
    if (m) return m[1]!;
  }
  return undefined;
}

/**
 * `getent ahosts NAME` (the resolver iscsiadm itself uses, run on the same host):
 *   192.0.2.10      STREAM storage.example
 *   192.0.2.10      DGRAM
 * The first address wins; IPv4 comes first when the host has both.
 */
export function parseGetentHosts(stdout: string): string | undefined {
  for (const raw of stdout.split('\n')) {
    const addr = raw.trim().split(/\s+/)[0] ?? '';
    if (isIP(addr) !== 0) return addr;
  }
  return undefined;
}

/** One iscsiadm iface: the name node records and logins use, and the initiator name it sets. */
export interface IfaceEntry {
  name: string;
  transport: string;
  /** Unset: the host's own name (initiatorname.iscsi). */
  initiatorName?: string;
}

/**
 * `iscsiadm -m iface`: NAME then transport,hwaddress,ipaddress,net_ifacename,initiatorname
 * (test/fixtures/lab/iface-list-libvirt.txt; the first iface is the one libvirt made for
 * an iscsi pool with its own initiator name):
 *   libvirt-iface-ef1d57b8 tcp,<empty>,<empty>,<empty>,iqn.2024-01.test.lab:custom
 *   default tcp,<empty>,<empty>,<empty>,<empty>
 */
export function parseIfaceList(stdout: string): IfaceEntry[] {
  const out: IfaceEntry[] = [];
  for (const raw of stdout.split('\n')) {
    const m = /^(\S+) ([^,\s]+),[^,\s]*,[^,\s]*,[^,\s]*,(\S+)$/.exec(raw.trim());
    if (!m) continue;
    const entry: IfaceEntry = { name: m[1]!, transport: m[2]! };
    if (m[3] !== '<empty>') entry.initiatorName = m[3]!;
    out.push(entry);
  }
  return out;
}
