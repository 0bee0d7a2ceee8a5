// `targetcli ls` as data. The tree is configshell's rendering (configshell_fb
// node.py _render_tree; summaries from targetcli ui_target.py / ui_backstore.py), e.g.
// (targetcli-fb 2.1.53, whole captures in test/fixtures/lio):
//
//   o- / ..................................................................... [...]
//     o- backstores .......................................................... [...]
//     | o- fileio ............................................. [Storage Objects: 1]
//     | | o- vi_d1_lun1 ............. [/var/lib/d1.img (64.0MiB) write-back activated]
//     o- iscsi ........................................................ [Targets: 1]
//     | o- iqn.2024-01.test.lab:disk1 .................................... [TPGs: 1]
//     | | o- tpg1 ...................................... [no-gen-acls, auth per-acl]
//     | |   o- acls ...................................................... [ACLs: 1]
//     | |   | o- iqn.1993-08.org.debian:01:de888379e257 .. [mutual auth, Mapped LUNs: 1]
//     | |   | | o- mapped_lun1 ....................... [lun1 fileio/vi_d1_lun1 (rw)]
//     | |   o- luns ...................................................... [LUNs: 1]
//     | |   | o- lun1 ..... [fileio/vi_d1_lun1 (/var/lib/d1.img) (default_tg_pt_gp)]
//     | |   o- portals ................................................ [Portals: 1]
//     | |     o- 127.0.0.1:3260 ............................................... [OK]
//
// Each level indents by two columns ("| " or "  "); the dots pad to the terminal
// width and vanish when the line is too long; colours only appear on a terminal.
import { ValidationError } from '../../errors.js';
import type { Portal } from '../../names/portal.js';

export interface TreeNode {
  name: string;
  /** The bracketed summary, without brackets; undefined when the tree shows none. */
  summary?: string;
  children: TreeNode[];
}

const ANSI = /\x1b\[[0-9;]*m/g;
const LINE = /^([ |]*)[o+]- (\S+)(?:\s+\.*\s*\[(.*)\])?\s*$/;
// targetcli's first run for a user prints, on stdout before the tree (seen in the lab
// guest, test/fixtures/lab/targetcli-ls-first-run.txt):
//   Warning: Could not load preferences file /root/.targetcli/prefs.bin.
const WARNING = /^Warning: /;

/** The forest of nodes `targetcli ls [PATH]` printed (one root, or the path's node). */
export function parseTree(text: string): TreeNode[] {
  const roots: TreeNode[] = [];
  const stack: TreeNode[] = [];
  for (const raw of text.replace(ANSI, '').split('\n')) {
    if (raw.trim() === '' || WARNING.test(raw)) continue;
    const m = LINE.exec(raw);
    if (!m) throw new ValidationError(`targetcli ls: cannot read the line ${JSON.stringify(raw)}`, 'targetcli');
    const depth = m[1]!.length / 2;
    if (!Number.isInteger(depth) || depth > stack.length) {
      throw new ValidationError(`targetcli ls: the line ${JSON.stringify(raw)} is indented deeper than its parent`, 'targetcli');
    }
    const node: TreeNode = { name: m[2]!, children: [] };
    if (m[3] !== undefined) node.summary = m[3];
    stack.length = depth;
    if (depth === 0) roots.push(node);
    else stack[depth - 1]!.children.push(node);
    stack.push(node);
  }
  return roots;
}

export interface LioBackstore {
  plugin: string;
  name: string;
  path?: string;
  /** From the summary's rounded size ("64.0MiB"): exact for sizes the unit divides. */
  sizeBytes?: number;
  readonly?: boolean;
}

export interface LioTpgLun {
  lun: number;
  plugin: string;
  storageObject: string;
  path?: string;
}

export interface LioMappedLun {
  mappedLun: number;
  tpgLun: number;
  plugin: string;
  storageObject: string;
  writeProtect: boolean;
}

export interface LioAcl {
  initiator: string;
  /** "mutual auth", "1-way auth" or "auth via tpg" when the TPG enforces authentication. */
  auth?: 'mutual' | '1-way' | 'tpg';
  mappedLuns: LioMappedLun[];
}

export interface LioTpg {
  tag: number;
  enabled: boolean;
  /** Demo mode: any initiator may log in (generate_node_acls=1). */
  generateNodeAcls: boolean;
  /** authentication=1 on the TPG; with demo mode the TPG's own CHAP account is used. */
  authentication: boolean;
  luns: LioTpgLun[];
  acls: LioAcl[];
  portals: Portal[];
}

export interface LioTarget {
  iqn: string;
  tpgs: LioTpg[];
}

export interface LioTree {
  backstores: LioBackstore[];
  targets: LioTarget[];
}

const UNITS: Record<string, number> = { KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40, PiB: 2 ** 50 };

/** "64.0MiB" or "512 bytes" (targetcli bytes_to_human) to bytes. */
export function humanToBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(bytes|KiB|MiB|GiB|TiB|PiB)$/.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (m[2] === 'bytes' ? 1 : UNITS[m[2]!]!));
}

function child(node: TreeNode, name: string): TreeNode | undefined {
  return node.children.find((c) => c.name === name);
}

// fileio: "/var/lib/d1.img (64.0MiB) write-back activated"; block: "/dev/sdb (1.0GiB) ro write-thru activated"
function backstore(plugin: string, node: TreeNode): LioBackstore {
  const b: LioBackstore = { plugin, name: node.name };
  const m = /^(\S+) \(([^)]+)\) (ro )?write-(?:back|thru) \S+$/.exec(node.summary ?? '');
  if (m) {
    if (m[1] !== 'None') b.path = m[1]!;
    const size = humanToBytes(m[2]!);
    if (size !== undefined) b.sizeBytes = size;
    b.readonly = m[3] !== undefined;
  }
  return b;
}

// "fileio/vi_d1_lun1 (/var/lib/d1.img) (default_tg_pt_gp)"
function tpgLun(node: TreeNode): LioTpgLun {
  const n = /^lun(\d+)$/.exec(node.name);
  const m = /^([\w:-]+)\/(\S+)(?: \(([^)]*)\))?(?: \([^)]*\))?$/.exec(node.summary ?? '');
  if (!n || !m) throw new ValidationError(`targetcli ls: LUN ${JSON.stringify(node.name)} has an unreadable summary ${JSON.stringify(node.summary)}`, 'targetcli');
  const lun: LioTpgLun = { lun: Number(n[1]), plugin: m[1]!, storageObject: m[2]! };
  if (m[3] !== undefined && m[3].startsWith('/')) lun.path = m[3];
  return lun;
}

// "lun1 fileio/vi_d1_lun1 (rw)"
function mappedLun(node: TreeNode): LioMappedLun {
  const n = /^mapped_lun(\d+)$/.exec(node.name);
  const m = /^lun(\d+) ([\w:-]+)\/(\S+) \((rw|ro)\)$/.exec(node.summary ?? '');
  if (!n || !m) throw new ValidationError(`targetcli ls: mapped LUN ${JSON.stringify(node.name)} has an unreadable summary ${JSON.stringify(node.summary)}`, 'targetcli');
  return { mappedLun: Number(n[1]), tpgLun: Number(m[1]), plugin: m[2]!, storageObject: m[3]!, writeProtect: m[4] === 'ro' };
}

// "mutual auth, Mapped LUNs: 2" / "1-way auth, Mapped LUNs: 0" / "auth via tpg, Mapped LUNs: 1" / "Mapped LUNs: 1"
function acl(node: TreeNode): LioAcl {
  const s = node.summary ?? '';
  const a: LioAcl = { initiator: node.name, mappedLuns: node.children.map(mappedLun) };
  if (s.includes('mutual auth')) a.auth = 'mutual';
  else if (s.includes('1-way auth')) a.auth = '1-way';
  else if (s.includes('auth via tpg')) a.auth = 'tpg';
  return a;
}

// "127.0.0.1:3260" / "[::1]:3260"
function portal(node: TreeNode): Portal {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s]+)):(\d+)$/.exec(node.name);
  if (!m) throw new ValidationError(`targetcli ls: portal ${JSON.stringify(node.name)} is not ADDRESS:PORT`, 'targetcli');
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

// "no-gen-acls, auth per-acl" / "gen-acls, no-auth" / "gen-acls, tpg-auth, 1-way auth" / "disabled"
function tpg(node: TreeNode): LioTpg {
  const n = /^tpg(\d+)$/.exec(node.name);
  if (!n) throw new ValidationError(`targetcli ls: ${JSON.stringify(node.name)} is not a TPG`, 'targetcli');
  const flags = (node.summary ?? '').split(', ');
  const luns = child(node, 'luns');
  const acls = child(node, 'acls');
  const portals = child(node, 'portals');
  return {
    tag: Number(n[1]),
    enabled: !flags.includes('disabled'),
    generateNodeAcls: flags.includes('gen-acls'),
    authentication: flags.includes('auth per-acl') || flags.includes('tpg-auth'),
    luns: luns ? luns.children.map(tpgLun) : [],
    acls: acls ? acls.children.map(acl) : [],
    portals: portals ? portals.children.map(portal) : [],
  };
}

function target(node: TreeNode): LioTarget {
  return { iqn: node.name, tpgs: node.children.map(tpg) };
}

/**
 * Reads `targetcli ls` (the whole tree), `targetcli ls /iscsi` or
 * `targetcli ls /iscsi/IQN`: whatever part of the tree was printed.
 */
export function parseLioTree(text: string): LioTree {
  const out: LioTree = { backstores: [], targets: [] };
  const visit = (node: TreeNode, parent?: string): void => {
    if (node.name === '/') {
      node.children.forEach((c) => visit(c, '/'));
    } else if (node.name === 'backstores' && parent !== 'iscsi') {
      for (const kind of node.children) {
        if (kind.name === 'fileio' || kind.name === 'block') out.backstores.push(...kind.children.map((c) => backstore(kind.name, c)));
      }
    } else if (node.name === 'iscsi') {
      out.targets.push(...node.children.map(target));
    } else if (/^(iqn|eui|naa)\./.test(node.name) && node.children.every((c) => /^tpg\d+$/.test(c.name))) {
      out.targets.push(target(node));
    }
  };
  for (const root of parseTree(text)) visit(root);
  return out;
}
