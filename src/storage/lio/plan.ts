// The targetcli commands that create or remove one target, as data (no I/O), each
// with the check that proves it took effect once the state is read back.
//
// targetcli quirks this follows (targetcli-fb 2.1.53, seen in the lab guest; see
// test/fixtures/lio/README.md):
// - One command per run: targetcli joins its argv with spaces and parses the line
//   again with configshell's grammar, so no value may hold spaces or quotes, and
//   values are limited to configshell's characters (checked before anything runs).
// - Errors usually exit 1, but warnings ("Cannot map new lun ...") exit 0 and older
//   versions exit 0 on errors too: every command's effect is checked by reading the
//   state back (targetcli exits 0 on many errors).
// - `/iscsi create` adds a 0.0.0.0:3260 portal when the global preference
//   auto_add_default_portal is on (the default); it is deleted when other portals are
//   wanted, without touching the user's preferences. A listening 0.0.0.0:3260 also
//   keeps any other target from binding a specific address on port 3260.
// - `acls create` and `luns create` map LUNs automatically unless add_mapped_luns=false;
//   we map each LUN ourselves so write_protect is right for read-only LUNs.
// - One-shot commands do not save: `saveconfig` runs explicitly when the target is to
//   persist. LIO saves all of its live state at once, so a target made without
//   persist is saved too by the next saveconfig anyone runs.
// - CHAP secrets never go on targetcli's argv: the commands that carry them are given to
//   targetcli's shell on stdin (backend.ts). targetcli echoes them ("Parameter password is
//   now '...'"): they are passed as RunOptions.secrets, so every printed command and
//   output masks them.
import { createHash } from 'node:crypto';
import { ValidationError } from '../../errors.js';
import { parseIscsiName } from '../../names/iscsi-name.js';
import type { Portal } from '../../names/portal.js';
import type { LunSpec, TargetSpec } from '../backend.js';
import type { SavedConfig } from './saveconfig.js';
import type { LioTree } from './targetcli-ls.js';
import { samePortal } from '../../names/portal.js';

export const DEFAULT_LIO_PORTAL: Portal = { host: '0.0.0.0', port: 3260 };
/** Prefix of the backstores we create: delete only ever removes these. */
export const BACKSTORE_PREFIX = 'vi-';
/** The TPG every target we create uses. */
export const TPG = 'tpg1';

/** What the state read back holds. `saved` is the saveconfig file, when there is one. */
export interface LioView {
  tree: LioTree;
  saved?: SavedConfig;
  /** CHAP user names read from configfs, keyed by ACL initiator ('' for the TPG's own). */
  chapUsers: Map<string, { user: string; mutualUser: string }>;
  /** tpgt_1/attrib/demo_mode_write_protect, when read. */
  demoWriteProtect?: boolean;
}

export interface LioCommand {
  title: string;
  /** What follows `targetcli`. */
  args: string[];
  secrets?: string[];
  /** Takes the command back when a later step fails (commands inside the target have none: deleting the target removes them). */
  undo?: string[];
  /** A failure whose output matches means the state is already as wanted. */
  alreadyDone?: RegExp;
  /** Says what is wrong when the state read back lacks this command's effect. */
  verify?(view: LioView): string | undefined;
}

export interface LioPlanOptions {
  portals?: readonly Portal[];
  /** saveconfig file; unset: targetcli's default. */
  saveconfigPath?: string;
}

// configshell's value grammar (configshell_fb shell.py: `var`).
const CONFIGSHELL_VALUE = /^[A-Za-z0-9?;&*$!#,=_\\+/.<>()~@:%[\]-]+$/;
const CONFIGSHELL_TEXT = "letters, digits and ?;&*$!#,=_\\+/.<>()~@:-%[] only (targetcli re-parses its command line)";
// rtslib utils.normalize_wwn: the iqn must have a dot after the date's and no '_'.
const RTSLIB_IQN = /^iqn\.[0-9]{4}-[0-1][0-9]\..*\..*$/;
const SERIAL = /^[A-Za-z0-9._:-]{1,64}$/;

function show(v: string): string {
  return JSON.stringify(v);
}

/** An iSCSI name LIO accepts (rtslib's own check, on top of RFC 3720). */
export function lioName(raw: string, field: string): string {
  const name = parseIscsiName(raw, field);
  if (name.startsWith('iqn.') && (!RTSLIB_IQN.test(name) || name.includes('_'))) {
    throw new ValidationError(
      `${field} ${show(raw)} is not accepted by LIO: targetcli wants a dotted authority after the date, e.g. iqn.2024-01.com.example:disk1, not iqn.2024-01.example:disk1`,
      field,
    );
  }
  return name;
}

function checkValue(field: string, value: string, secret = false): void {
  if (!CONFIGSHELL_VALUE.test(value)) {
    throw new ValidationError(`${field} ${secret ? '(the secret)' : show(value)} is not allowed; expected ${CONFIGSHELL_TEXT}`, field);
  }
}

/** `vi-<8 hex of the IQN>-lun<N>`: unique per target, stable, and ours by its prefix. */
export function backstoreName(iqn: string, lun: number): string {
  const h = createHash('sha256').update(iqn.toLowerCase()).digest('hex').slice(0, 8);
  return `${BACKSTORE_PREFIX}${h}-lun${lun}`;
}

function plugin(l: LunSpec): 'block' | 'fileio' {
  return l.path.startsWith('/dev/') ? 'block' : 'fileio';
}

function readOnly(l: LunSpec): boolean {
  return l.readonly === true || l.cdrom === true;
}

function portalText(p: Portal): string {
  return p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}

/** Checks a spec against what LIO can do; returns the normalised target name and initiators. */
export function validateLioSpec(spec: TargetSpec): { iqn: string; initiators: string[]; all: boolean } {
  const iqn = lioName(spec.iqn, 'target');
  const seen = new Set<number>();
  for (const l of spec.luns) {
    // Mapped LUNs stop at 255 in rtslib (MappedLUN.MAX_LUN); LUN 0 is left free, as with tgt.
    if (!Number.isInteger(l.lun) || l.lun < 1 || l.lun > 255) {
      throw new ValidationError(`LUN ${String(l.lun)} is not allowed; expected an integer from 1 to 255`, 'lun');
    }
    if (seen.has(l.lun)) throw new ValidationError(`LUN ${l.lun} is given twice`, 'lun');
    seen.add(l.lun);
    if (!l.path.startsWith('/')) throw new ValidationError(`LUN ${l.lun} path ${show(l.path)} is not absolute`, 'path');
    checkValue(`LUN ${l.lun} path`, l.path);
    if (l.serial !== undefined && !SERIAL.test(l.serial)) {
      throw new ValidationError(`LUN ${l.lun} serial ${show(l.serial)} is not allowed; expected 1 to 64 letters, digits or . _ : -`, 'serial');
    }
    if (l.vendorId !== undefined || l.productId !== undefined) {
      throw new ValidationError(`LUN ${l.lun}: vendor and product ids are not settable through targetcli`, 'vendorId');
    }
  }
  const all = spec.allow.includes('ALL');
  if (all && spec.allow.length > 1) {
    throw new ValidationError(`allow lists ALL and ${show(spec.allow.find((a) => a !== 'ALL')!)}; ALL already lets every initiator in`, 'allow');
  }
  const initiators = all
    ? []
    : spec.allow.map((a) => {
        if (!/^(iqn|eui|naa)\./i.test(a)) {
          throw new ValidationError(
            `allowed initiator ${show(a)} is not an iSCSI name: LIO ACLs are per initiator IQN, not by address; name the initiator's IQN (or ALL)`,
            'allow',
          );
        }
        return lioName(a, 'allowed initiator');
      });
  if (all && spec.luns.length > 0) {
    const ro = spec.luns.filter(readOnly).length;
    if (ro !== 0 && ro !== spec.luns.length) {
      throw new ValidationError(
        'with ALL, LIO write-protects every LUN of the target or none (demo_mode_write_protect); make all LUNs read-only, none, or name the initiators',
        'readonly',
      );
    }
  }
  if (spec.chap) {
    const c = spec.chap;
    checkValue('CHAP user', c.user);
    checkValue('CHAP secret', c.secret, true);
    if ((c.mutualUser === undefined) !== (c.mutualSecret === undefined)) throw new ValidationError('mutual CHAP needs both a user and a secret', 'chap');
    if (c.mutualUser !== undefined) checkValue('mutual CHAP user', c.mutualUser);
    if (c.mutualSecret !== undefined) checkValue('mutual CHAP secret', c.mutualSecret, true);
  }
  return { iqn, initiators, all };
}

function findTpg(view: LioView, iqn: string) {
  return view.tree.targets.find((t) => t.iqn === iqn)?.tpgs.find((g) => g.tag === 1);
}

/** The commands that create the target, in order. */
export function lioCreatePlan(spec: TargetSpec, options: LioPlanOptions = {}): LioCommand[] {
  const { iqn, initiators, all } = validateLioSpec(spec);
  const portals = options.portals && options.portals.length > 0 ? [...options.portals] : [DEFAULT_LIO_PORTAL];
  for (const p of portals) checkValue('portal address', p.host);
  const tpg = `/iscsi/${iqn}/${TPG}`;
  const luns = [...spec.luns].sort((a, b) => a.lun - b.lun);
  const cmds: LioCommand[] = [];

  for (const l of luns) {
    const name = backstoreName(iqn, l.lun);
    const kind = plugin(l);
    const args = kind === 'block' ? [`/backstores/block`, 'create', `name=${name}`, `dev=${l.path}`] : [`/backstores/fileio`, 'create', `name=${name}`, `file_or_dev=${l.path}`];
    if (kind === 'block' && readOnly(l)) args.push('readonly=true');
    if (l.serial !== undefined) args.push(`wwn=${l.serial}`);
    cmds.push({
      title: `create ${kind} backstore ${name} for ${l.path}`,
      args,
      undo: [`/backstores/${kind}`, 'delete', name],
      verify: (v) => {
        const b = v.tree.backstores.find((x) => x.plugin === kind && x.name === name);
        if (!b) return `backstore ${kind}/${name} is missing`;
        if (b.path !== l.path) return `backstore ${kind}/${name} serves ${show(b.path ?? '')}, not ${show(l.path)}`;
        return undefined;
      },
    });
  }

  cmds.push({
    title: `create target ${iqn}`,
    args: ['/iscsi', 'create', iqn],
    undo: ['/iscsi', 'delete', iqn],
    verify: (v) => (findTpg(v, iqn) ? undefined : `target ${iqn} with ${TPG} is missing`),
  });

  if (!portals.some((p) => samePortal(p, DEFAULT_LIO_PORTAL))) {
    cmds.push({
      title: `remove the default portal 0.0.0.0:3260 of ${iqn}`,
      args: [`${tpg}/portals`, 'delete', '0.0.0.0', '3260'],
      alreadyDone: /No such NetworkPortal/,
      verify: (v) => (findTpg(v, iqn)?.portals.some((p) => samePortal(p, DEFAULT_LIO_PORTAL)) ? 'the default portal 0.0.0.0:3260 is still there' : undefined),
    });
  }
  for (const p of portals) {
    cmds.push({
      title: `listen on ${portalText(p)} for ${iqn}`,
      args: [`${tpg}/portals`, 'create', p.host, String(p.port)],
      alreadyDone: /already exists/,
      verify: (v) => (findTpg(v, iqn)?.portals.some((q) => samePortal(p, q)) ? undefined : `portal ${portalText(p)} is missing`),
    });
  }

  for (const l of luns) {
    const name = backstoreName(iqn, l.lun);
    const kind = plugin(l);
    cmds.push({
      title: `export ${kind}/${name} as LUN ${l.lun}`,
      args: [`${tpg}/luns`, 'create', `/backstores/${kind}/${name}`, `lun=${l.lun}`, 'add_mapped_luns=false'],
      verify: (v) => {
        const lun = findTpg(v, iqn)?.luns.find((x) => x.lun === l.lun);
        return lun && lun.storageObject === name ? undefined : `LUN ${l.lun} does not serve ${kind}/${name}`;
      },
    });
  }

  for (const init of initiators) {
    cmds.push({
      title: `allow initiator ${init}`,
      args: [`${tpg}/acls`, 'create', init, 'add_mapped_luns=false'],
      verify: (v) => (findTpg(v, iqn)?.acls.some((a) => a.initiator === init) ? undefined : `the ACL for ${init} is missing`),
    });
    for (const l of luns) {
      const wp = readOnly(l);
      cmds.push({
        title: `map LUN ${l.lun} ${wp ? 'read-only' : 'read-write'} for ${init}`,
        args: [`${tpg}/acls/${init}`, 'create', `mapped_lun=${l.lun}`, `tpg_lun_or_backstore=${l.lun}`, `write_protect=${wp ? 1 : 0}`],
        verify: (v) => {
          const m = findTpg(v, iqn)?.acls.find((a) => a.initiator === init)?.mappedLuns.find((x) => x.mappedLun === l.lun);
          if (!m || m.tpgLun !== l.lun) return `LUN ${l.lun} is not mapped for ${init}`;
          return m.writeProtect === wp ? undefined : `LUN ${l.lun} is mapped ${m.writeProtect ? 'read-only' : 'read-write'} for ${init}`;
        },
      });
    }
  }

  const chap = spec.chap;
  if (chap) {
    const auth = [`userid=${chap.user}`, `password=${chap.secret}`];
    if (chap.mutualUser !== undefined && chap.mutualSecret !== undefined) auth.push(`mutual_userid=${chap.mutualUser}`, `mutual_password=${chap.mutualSecret}`);
    const secrets = [chap.secret, ...(chap.mutualSecret !== undefined ? [chap.mutualSecret] : [])];
    const verifyChap = (key: string) => (v: LioView) => {
      const got = v.chapUsers.get(key);
      const want = { user: chap.user, mutualUser: chap.mutualUser ?? '' };
      return got && got.user === want.user && got.mutualUser === want.mutualUser ? undefined : `the CHAP account of ${key || TPG} is not set`;
    };
    if (all) {
      cmds.push({ title: `set the CHAP account of ${iqn}`, args: [tpg, 'set', 'auth', ...auth], secrets, verify: verifyChap('') });
    } else {
      for (const init of initiators) {
        cmds.push({ title: `set the CHAP account for ${init}`, args: [`${tpg}/acls/${init}`, 'set', 'auth', ...auth], secrets, verify: verifyChap(init) });
      }
    }
  }

  const attrs = [`authentication=${chap ? 1 : 0}`, `generate_node_acls=${all ? 1 : 0}`];
  const demoWp = all && luns.length > 0 && luns.every(readOnly);
  if (all) attrs.push('cache_dynamic_acls=1', `demo_mode_write_protect=${demoWp ? 1 : 0}`);
  cmds.push({
    title: all ? `let every initiator in to ${iqn}` : `require ACLs${chap ? ' and CHAP' : ''} on ${iqn}`,
    args: [tpg, 'set', 'attribute', ...attrs],
    verify: (v) => {
      const g = findTpg(v, iqn);
      if (!g) return `target ${iqn} is missing`;
      if (g.generateNodeAcls !== all) return `generate_node_acls is ${g.generateNodeAcls ? 1 : 0}`;
      if (g.authentication !== Boolean(chap)) return `authentication is ${g.authentication ? 1 : 0}`;
      if (all && v.demoWriteProtect !== undefined && v.demoWriteProtect !== demoWp) return `demo_mode_write_protect is ${v.demoWriteProtect ? 1 : 0}`;
      return undefined;
    },
  });

  if (spec.persist) cmds.push(saveconfigCommand(options.saveconfigPath, iqn, true));
  return cmds;
}

/** `targetcli saveconfig [savefile=PATH]`, checked against the file it writes. */
export function saveconfigCommand(path: string | undefined, iqn: string, present: boolean): LioCommand {
  return {
    title: `save the LIO configuration${path ? ` to ${path}` : ''}`,
    args: path ? ['saveconfig', `savefile=${path}`] : ['saveconfig'],
    verify: (v) => {
      if (!v.saved) return 'the saveconfig file is missing';
      const there = v.saved.targets.some((t) => t.iqn === iqn);
      return there === present ? undefined : `target ${iqn} is ${present ? 'not ' : ''}in the saveconfig file`;
    },
  };
}

/**
 * The commands that remove a target and the backstores of its LUNs that we created
 * (named with BACKSTORE_PREFIX); already gone is success (teardown must be idempotent).
 */
export function lioDeletePlan(iqn: string, tree: LioTree, saved: SavedConfig | undefined, saveconfigPath?: string): LioCommand[] {
  const target = tree.targets.find((t) => t.iqn === iqn);
  const cmds: LioCommand[] = [];
  if (target) {
    cmds.push({
      title: `delete target ${iqn}`,
      args: ['/iscsi', 'delete', iqn],
      alreadyDone: /No such Target/,
      verify: (v) => (v.tree.targets.some((t) => t.iqn === iqn) ? `target ${iqn} is still there` : undefined),
    });
    const ours = new Map<string, { kind: string; name: string }>();
    for (const g of target.tpgs) {
      for (const l of g.luns) if (l.storageObject.startsWith(BACKSTORE_PREFIX)) ours.set(`${l.plugin}/${l.storageObject}`, { kind: l.plugin, name: l.storageObject });
    }
    for (const [key, { kind, name }] of ours) {
      cmds.push({
        title: `delete backstore ${key}`,
        args: [`/backstores/${kind}`, 'delete', name],
        alreadyDone: /No storage object named/,
        verify: (v) => (v.tree.backstores.some((b) => b.plugin === kind && b.name === name) ? `backstore ${key} is still there` : undefined),
      });
    }
  }
  if (saved?.targets.some((t) => t.iqn === iqn)) cmds.push(saveconfigCommand(saveconfigPath, iqn, false));
  return cmds;
}

// ---- grow ------------------------------------------------------------------------------------

/** Where the kernel keeps each backstore: core/<hba>_<n>/<name> (rtslib gives every storage object an HBA of its own). */
export const CONFIGFS_CORE = '/sys/kernel/config/target/core';

/** configfs calls the block plugin's HBAs iblock_N (rtslib: BlockStorageObject plugin "iblock"). */
const HBA_PREFIX: Record<string, string> = { fileio: 'fileio_', block: 'iblock_' };

/**
 * `find CORE -mindepth 2 -maxdepth 2 -type d -name NAME` prints one directory a line, e.g.
 *   /sys/kernel/config/target/core/fileio_3/vi-c6341120-lun1
 * The one of the plugin's HBAs is the storage object's; undefined when none is.
 */
export function storageObjectDir(findOutput: string, plugin: string, name: string): string | undefined {
  const prefix = HBA_PREFIX[plugin];
  if (!prefix) return undefined;
  return findOutput
    .split('\n')
    .map((l) => l.trim())
    .find((l) => {
      const parts = l.split('/');
      return parts.at(-1) === name && parts.at(-2)?.startsWith(prefix) === true && /^\d+$/.test(parts.at(-2)!.slice(prefix.length));
    });
}

/**
 * The size a fileio storage object reports, from its configfs `info` (Linux
 * target_core_file.c fd_show_configfs_dev_params; Linux 6.1), e.g.
 *   Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384
 *           TCM FILEIO ID: 0        File: /var/lib/lab.img  Size: 33554432  Mode: O_DSYNC Async: 1
 */
export function fileioInfoSize(info: string): number | undefined {
  const m = /\bFile: .*?\bSize: (\d+)\b/.exec(info);
  return m ? Number(m[1]) : undefined;
}

export interface LioGrowCommand {
  title: string;
  argv: string[];
}

/**
 * The commands that make a LUN report its grown backing (no I/O stops, nothing is
 * re-created: serial, mapping and sessions stay):
 * - fileio over a regular file: the kernel takes the size given at creation (fd_dev_size)
 *   and answers READ CAPACITY and checks every LBA against that number, which its configfs
 *   `control` file sets again at any time: `fd_dev_size=BYTES` written there.
 * - block (iblock), or fileio over a block device: the kernel reads the device's size on
 *   each command, so a grown device shows at once: nothing to do.
 * Then, for a saved target, `targetcli saveconfig`: rtslib restores a fileio object at
 * the size saveconfig.json holds, which must be the new one.
 */
export function lioGrowPlan(o: { plugin: string; name: string; dir: string; fileBacked: boolean; sizeBytes: number; saved: boolean; saveconfigPath?: string }): LioGrowCommand[] {
  if (!Number.isSafeInteger(o.sizeBytes) || o.sizeBytes <= 0) throw new ValidationError(`size ${o.sizeBytes} is not a positive whole number of bytes`, 'size');
  const out: LioGrowCommand[] = [];
  if (o.plugin === 'fileio' && o.fileBacked) {
    out.push({
      title: `set the size of fileio backstore ${o.name} to ${o.sizeBytes} bytes`,
      argv: ['sh', '-c', 'printf "%s\\n" "$1" > "$2"', 'sh', `fd_dev_size=${o.sizeBytes}`, `${o.dir}/control`],
    });
    if (o.saved) out.push({ title: `save the LIO configuration${o.saveconfigPath ? ` to ${o.saveconfigPath}` : ''}`, argv: ['targetcli', ...(o.saveconfigPath ? ['saveconfig', `savefile=${o.saveconfigPath}`] : ['saveconfig'])] });
  } else if (o.plugin !== 'fileio' && o.plugin !== 'block') {
    throw new ValidationError(`backstore ${o.plugin}/${o.name} is neither fileio nor block: virt-iscsi does not grow it`, 'lun');
  }
  return out;
}
