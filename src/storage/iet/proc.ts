// IET's live state: /proc/net/iet/volume and /proc/net/iet/session (kernel/volume.c,
// kernel/session.c, kernel/conn.c). Whole samples: test/fixtures/iet.
import { ValidationError } from '../../errors.js';

export interface IetVolumeLun {
  lun: number;
  state: number;
  iotype: string;
  /** wt, wb or ro. */
  iomode: string;
  blocks?: number;
  blockSize?: number;
  path?: string;
}

export interface IetVolumeTarget {
  tid: number;
  name: string;
  luns: IetVolumeLun[];
}

/** `key:value key:value ...`; `path:` takes the rest of the line (a path may hold spaces). */
function fields(line: string): Map<string, string> {
  const out = new Map<string, string>();
  const path = line.indexOf(' path:');
  const head = path >= 0 ? line.slice(0, path) : line;
  if (path >= 0) out.set('path', line.slice(path + ' path:'.length));
  else if (line.startsWith('path:')) out.set('path', line.slice(5));
  for (const tok of head.trim().split(/\s+/)) {
    const i = tok.indexOf(':');
    if (i > 0) out.set(tok.slice(0, i), tok.slice(i + 1));
  }
  return out;
}

function int(m: Map<string, string>, key: string, line: string): number {
  const v = m.get(key);
  const hex = key === 'state'; // printed with %x
  if (v === undefined || !(hex ? /^[0-9a-fA-F]{1,8}$/ : /^\d{1,15}$/).test(v)) {
    throw new ValidationError(`/proc/net/iet: no ${key} number in ${JSON.stringify(line)}`, key);
  }
  return hex ? parseInt(v, 16) : Number(v);
}

function targetLine(line: string): { tid: number; name: string } | undefined {
  const m = /^tid:(\d+) name:(\S+)/.exec(line);
  return m ? { tid: Number(m[1]), name: m[2]! } : undefined;
}

/**
 * /proc/net/iet/volume (IET 1.4.20):
 *   tid:1 name:iqn.foo.example
 *   	lun:1 state:0 iotype:fileio iomode:wt blocks:4194304 blocksize:512 path:/dev/cinder-volumes/lvol0
 * (state is printed in hex; older IET prints no blocks/blocksize.)
 */
export function parseIetVolumes(text: string): IetVolumeTarget[] {
  const out: IetVolumeTarget[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const t = targetLine(raw);
    if (t) {
      out.push({ ...t, luns: [] });
      continue;
    }
    const cur = out[out.length - 1];
    const line = raw.trim();
    if (!cur || !line.startsWith('lun:')) throw new ValidationError(`/proc/net/iet/volume: cannot read the line ${JSON.stringify(raw)}`, 'volume');
    const f = fields(line);
    const lun: IetVolumeLun = { lun: int(f, 'lun', line), state: int(f, 'state', line), iotype: f.get('iotype') ?? '', iomode: f.get('iomode') ?? '' };
    if (f.has('blocks')) lun.blocks = int(f, 'blocks', line);
    if (f.has('blocksize')) lun.blockSize = int(f, 'blocksize', line);
    if (f.has('path')) lun.path = f.get('path')!;
    cur.luns.push(lun);
  }
  return out;
}

export interface IetConnection {
  cid: number;
  /** IPv6 without IET's brackets. */
  ip: string;
  state: string;
}

export interface IetSession {
  sid: string;
  initiator: string;
  connections: IetConnection[];
}

export interface IetSessionTarget {
  tid: number;
  name: string;
  sessions: IetSession[];
}

/**
 * /proc/net/iet/session:
 *   tid:1 name:iqn.foo.example
 *   	sid:562949990973952 initiator:iqn.1993-08.org.debian:01:5d5f7d6e2951
 *   		cid:0 ip:192.168.1.5 state:active hd:none dd:none
 * A target with nobody logged in is its tid line alone. sids are 64-bit: kept as text.
 */
export function parseIetSessions(text: string): IetSessionTarget[] {
  const out: IetSessionTarget[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const t = targetLine(raw);
    if (t) {
      out.push({ ...t, sessions: [] });
      continue;
    }
    const line = raw.trim();
    const cur = out[out.length - 1];
    let m: RegExpExecArray | null;
    if (cur && (m = /^sid:(\d+) initiator:(\S+)/.exec(line))) {
      cur.sessions.push({ sid: m[1]!, initiator: m[2]!, connections: [] });
    } else if (cur && cur.sessions.length > 0 && (m = /^cid:(\d+) ip:(\S+) state:(\S+)/.exec(line))) {
      cur.sessions[cur.sessions.length - 1]!.connections.push({ cid: Number(m[1]), ip: m[2]!.replace(/^\[(.*)\]$/, '$1'), state: m[3]! });
    } else {
      throw new ValidationError(`/proc/net/iet/session: cannot read the line ${JSON.stringify(raw)}`, 'session');
    }
  }
  return out;
}
