// Parsers for tgtadm's `--op show` text (tgt 1.0.85). Samples of the real output are
// above each parser; test/fixtures/tgt/ holds whole captures (capture.sh remakes them).
import { ValidationError } from '../../errors.js';

export interface TgtConnection {
  cid: number;
  address?: string;
}

/** One logged-in session (I_T nexus). */
export interface TgtNexus {
  id: number;
  initiator: string;
  alias?: string;
  connections: TgtConnection[];
}

export interface TgtShowLun {
  lun: number;
  /** disk, cd/dvd, controller, tape, changer, osd, passthrough */
  type: string;
  scsiId: string;
  scsiSn: string;
  /** tgt prints whole megabytes (10^6 bytes, rounded), so this is approximate. */
  sizeMB: number;
  blockSize: number;
  online: boolean;
  removable: boolean;
  readonly: boolean;
  /** rdwr, aio, mmc, null, ... */
  backingType: string;
  /** Absent for the controller (printed "None"). */
  backingPath?: string;
  backingFlags: string;
}

export interface TgtAccountRef {
  user: string;
  outgoing: boolean;
}

export interface TgtShowTarget {
  tid: number;
  iqn: string;
  driver: string;
  state: string;
  nexuses: TgtNexus[];
  /** Every LUN, the controller (LUN 0) included. */
  luns: TgtShowLun[];
  accounts: TgtAccountRef[];
  /** Bound initiator addresses, CIDRs, ALL, and initiator names, as printed. */
  acls: string[];
}

type Section = 'system' | 'nexus' | 'lun' | 'account' | 'acl';

const SECTIONS: Record<string, Section> = {
  'System information:': 'system',
  'I_T nexus information:': 'nexus',
  'LUN information:': 'lun',
  'Account information:': 'account',
  'ACL information:': 'acl',
};

function fail(n: number, line: string, why: string): never {
  throw new ValidationError(`tgtadm --op show --mode target, line ${n}: ${why}: ${JSON.stringify(line)}`, 'tgtadm');
}

function yesNo(value: string | undefined, n: number, key: string): boolean {
  if (value === 'Yes') return true;
  if (value === 'No') return false;
  return fail(n, value ?? '', `${key} is not Yes or No`);
}

/** Fills a LUN from its "Key: value" lines (keys other tgt versions add are ignored). */
function buildLun(lun: number, fields: Map<string, string>, n: number): TgtShowLun {
  const size = /^(\d+) MB, Block size: (\d+)$/.exec(fields.get('Size') ?? '');
  if (!size) fail(n, fields.get('Size') ?? '', `LUN ${lun} has no "Size: N MB, Block size: N"`);
  const path = fields.get('Backing store path');
  return {
    lun,
    type: fields.get('Type') ?? fail(n, '', `LUN ${lun} has no Type`),
    scsiId: fields.get('SCSI ID') ?? '',
    scsiSn: fields.get('SCSI SN') ?? '',
    sizeMB: Number(size[1]),
    blockSize: Number(size[2]),
    online: yesNo(fields.get('Online'), n, 'Online'),
    removable: yesNo(fields.get('Removable media') ?? 'No', n, 'Removable media'),
    readonly: yesNo(fields.get('Readonly'), n, 'Readonly'),
    backingType: fields.get('Backing store type') ?? '',
    ...(path && path !== 'None' ? { backingPath: path } : {}),
    backingFlags: fields.get('Backing store flags') ?? '',
  };
}

/**
 * `tgtadm --lld iscsi --op show --mode target`: every target, indented by 4 spaces a level.
 *   Target 2: iqn.2024-05.com.example:capture.chap
 *       System information:
 *           Driver: iscsi
 *           State: ready
 *       I_T nexus information:
 *           I_T nexus: 6
 *               Initiator: iqn.2024-05.org.test:allowed alias: none
 *               Connection: 0
 *                   IP Address: 127.0.0.1
 *       LUN information:
 *           LUN: 1
 *               Type: disk
 *               SCSI ID: IET     00020001
 *               SCSI SN: beaf21
 *               Size: 1 MB, Block size: 512
 *               Online: Yes
 *               Removable media: No
 *               Prevent removal: No
 *               Readonly: No
 *               SWP: No
 *               Thin-provisioning: No
 *               Backing store type: rdwr
 *               Backing store path: /srv/images/odd-size.img
 *               Backing store flags:
 *       Account information:
 *           capuser1
 *           captarget (outgoing)
 *       ACL information:
 *           127.0.0.1
 *           iqn.2024-05.org.test:allowed
 * No targets: empty output. Paths are printed as given, unquoted, to the end of the line.
 */
export function parseTgtShowTargets(text: string): TgtShowTarget[] {
  const targets: TgtShowTarget[] = [];
  let t: TgtShowTarget | undefined;
  let section: Section | undefined;
  let nexus: TgtNexus | undefined;
  let lun: { lun: number; fields: Map<string, string>; line: number } | undefined;
  const flushLun = (): void => {
    if (lun && t) t.luns.push(buildLun(lun.lun, lun.fields, lun.line));
    lun = undefined;
  };
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const n = i + 1;
    if (raw.trim() === '') continue;
    const indent = /^ */.exec(raw)![0].length;
    const line = raw.trim();
    if (indent === 0) {
      flushLun();
      const m = /^Target (\d+): (\S+)$/.exec(line);
      if (!m) fail(n, raw, 'expected "Target N: NAME"');
      t = { tid: Number(m[1]), iqn: m[2]!, driver: '', state: '', nexuses: [], luns: [], accounts: [], acls: [] };
      targets.push(t);
      section = undefined;
      continue;
    }
    if (!t) fail(n, raw, 'text before the first "Target N:" line');
    if (indent === 4) {
      flushLun();
      section = SECTIONS[line];
      if (!section) fail(n, raw, 'unknown section');
      nexus = undefined;
      continue;
    }
    switch (section) {
      case 'system': {
        const m = /^(Driver|State): (.*)$/.exec(line);
        if (m?.[1] === 'Driver') t.driver = m[2]!;
        else if (m?.[1] === 'State') t.state = m[2]!;
        break;
      }
      case 'nexus': {
        let m: RegExpExecArray | null;
        if (indent === 8 && (m = /^I_T nexus: (\d+)$/.exec(line))) {
          nexus = { id: Number(m[1]), initiator: '', connections: [] };
          t.nexuses.push(nexus);
        } else if (nexus && (m = /^Initiator: (\S+)(?: alias: (.*))?$/.exec(line))) {
          nexus.initiator = m[1]!;
          if (m[2] !== undefined && m[2] !== 'none') nexus.alias = m[2];
        } else if (nexus && (m = /^Connection: (\d+)$/.exec(line))) {
          nexus.connections.push({ cid: Number(m[1]) });
        } else if (nexus && nexus.connections.length > 0 && (m = /^IP Address: (\S+)$/.exec(line))) {
          nexus.connections[nexus.connections.length - 1]!.address = m[1];
        } else {
          fail(n, raw, 'not an I_T nexus line');
        }
        break;
      }
      case 'lun': {
        const head = indent === 8 ? /^LUN: (\d+)$/.exec(line) : null;
        if (head) {
          flushLun();
          lun = { lun: Number(head[1]), fields: new Map(), line: n };
          break;
        }
        if (!lun) fail(n, raw, 'LUN detail before "LUN: N"');
        // "Size: 1 MB, Block size: 512" keeps its comma part; every other line is "Key: value".
        const kv = /^([^:]+):\s?(.*)$/.exec(line);
        if (!kv) fail(n, raw, 'not a "Key: value" line');
        lun.fields.set(kv[1]!, kv[2]!);
        break;
      }
      case 'account': {
        const m = /^(\S+?)( \(outgoing\))?$/.exec(line);
        if (!m) fail(n, raw, 'not an account line');
        t.accounts.push({ user: m[1]!, outgoing: m[2] !== undefined });
        break;
      }
      case 'acl':
        t.acls.push(line);
        break;
      default:
        fail(n, raw, 'line outside any section');
    }
  }
  flushLun();
  return targets;
}

/**
 * `tgtadm --lld iscsi --op show --mode account`:
 *   Account list:
 *       captarget
 *       capuser1
 */
export function parseTgtShowAccounts(text: string): string[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return [];
  if (lines[0] !== 'Account list:') fail(1, lines[0]!, 'expected "Account list:"');
  return lines.slice(1).map((l) => l.trim());
}

export interface TgtSystem {
  state: string;
  /** LLD name -> state ("iscsi" -> "ready"). */
  llds: Record<string, string>;
  backingStores: string[];
  deviceTypes: string[];
}

/**
 * `tgtadm --lld iscsi --op show --mode sys`:
 *   System:
 *       State: ready
 *       debug: off
 *   LLDs:
 *       iscsi: ready
 *       iser: error
 *   Backing stores:
 *       rdwr (bsoflags sync:direct)
 *       aio
 *   Device types:
 *       disk
 *       cd/dvd
 *   iSNS:
 *       iSNS=Off
 */
export function parseTgtShowSystem(text: string): TgtSystem {
  const sys: TgtSystem = { state: '', llds: {}, backingStores: [], deviceTypes: [] };
  let group = '';
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    if (!raw.startsWith(' ')) {
      group = raw.trim();
      continue;
    }
    const line = raw.trim();
    if (group === 'System:') {
      const m = /^State: (.*)$/.exec(line);
      if (m) sys.state = m[1]!;
    } else if (group === 'LLDs:') {
      const m = /^(\S+): (.*)$/.exec(line);
      if (m) sys.llds[m[1]!] = m[2]!;
    } else if (group === 'Backing stores:') {
      sys.backingStores.push(line.split(' ')[0]!);
    } else if (group === 'Device types:') {
      sys.deviceTypes.push(line);
    }
  }
  return sys;
}
