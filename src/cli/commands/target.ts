// `virt-iscsi target create|delete|list|show|sync`: the iSCSI target on the storage host.
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { Option, type Command } from 'commander';
import { ValidationError, VirtIscsiError } from '../../errors.js';
import { formatPortal, parsePortal } from '../../names/portal.js';
import { withInterrupts } from '../../plan/plan.js';
import type { ChapSpec, LunSpec, TargetBackend, TargetSpec } from '../../storage/backend.js';
import { BACKEND_NAMES, createBackend, detectBackend, parseBackendName, type BackendOptions } from '../../storage/backends.js';
import { rbdLun } from '../../storage/rbd/lun.js';
import { isRbdRef, parseRbdRef } from '../../storage/rbd/ref.js';
import { DEFAULT_CONF_DIR } from '../../storage/tgt/records.js';
import { addCephOptions, cephClientFromFlags, type CephFlags } from '../ceph-options.js';
import { readSecretFile } from '../../util/local-file.js';
import { addDryRun, addJson, addSshOptions, sessionOptions, type HostCommandOptions } from '../options.js';
import { printJson, printText } from '../output.js';
import { Session, withSession } from '../session.js';
import { parseLunArg } from './xml-target-conf.js';
import { renderList, renderSync, renderTarget } from './target-render.js';
import { planRecorder } from '../plan-document.js';

interface TargetOptions extends HostCommandOptions {
  host: string;
  backend?: string;
  controlPort?: number;
  portal?: string;
  confDir?: string;
  install?: boolean;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function controlPort(value: string): number {
  if (!/^\d{1,5}$/.test(value)) throw new ValidationError(`--control-port ${JSON.stringify(value)} is not a number`, 'control-port');
  return Number(value);
}

/** --host, --backend, tgt's --control-port/--portal/--conf-dir, SSH options. */
function addTargetOptions(cmd: Command): Command {
  return addSshOptions(
    cmd
      .option('--host <uri>', 'storage host: local or ssh://[user@]host[:port]', 'local')
      .addOption(new Option('--backend <name>', 'target software (default: detected on the host)').choices([...BACKEND_NAMES]))
      .option('--control-port <n>', 'tgt: tgtd control port (tgtadm -C), for a tgtd beside the system one', controlPort)
      .option('--portal <addr>', 'tgt: IP[:PORT] a tgtd started by virt-iscsi listens on (default: every address, port 3260)')
      .option('--conf-dir <dir>', `tgt: where target records are written (default ${DEFAULT_CONF_DIR})`),
  );
}

/** The session's runner for --host and the backend for it (named, or detected there). */
async function openBackend(s: Session, o: TargetOptions, extra: Partial<BackendOptions> = {}): Promise<TargetBackend> {
  const runner = await s.runner(o.host);
  const options: BackendOptions = { ...extra, controlPort: o.controlPort, confDir: o.confDir, install: o.install };
  if (o.portal !== undefined) {
    const p = parsePortal(o.portal);
    if (isIP(p.host) === 0) throw new ValidationError(`--portal ${JSON.stringify(o.portal)} names a host; tgtd listens on an IP address`, 'portal');
    options.portal = formatPortal(p);
  }
  const name = o.backend ? parseBackendName(o.backend) : await detectBackend(runner, options);
  return createBackend(name, runner, options);
}

/**
 * Runs `fn` in a session and prints its result: as JSON, or with `text`. A dry run with
 * --json prints one document holding the plan and the result.
 */
async function run<T>(o: TargetOptions, fn: (s: Session) => Promise<T>, text: (r: T) => string, json: (r: T) => unknown = (r) => r): Promise<T> {
  if (o.dryRun && o.json) {
    const s = new Session(sessionOptions(o));
    try {
      const r = await fn(s);
      printJson({ ...planRecorder(s.recorded).document(), plan: s.recorded.map(({ host, shell }) => ({ host, shell })), result: json(r) });
      return r;
    } finally {
      await s.close();
    }
  }
  return withSession(sessionOptions(o), async (s) => {
    const r = await fn(s);
    if (o.json) printJson(json(r));
    else printText(text(r));
    return r;
  });
}

// ---- create -------------------------------------------------------------------------

interface CreateFlags extends TargetOptions, CephFlags {
  allow: string[];
  chap?: string;
  chapSecretFile?: string;
  mutualChap?: string;
  mutualChapSecretFile?: string;
  generateSecret?: boolean;
  anySecretLength?: boolean;
  tid?: number;
  persist: boolean;
}

/** A LUN as given: --lun and the per-LUN flags that followed it. */
interface LunFlags {
  arg: string;
  readonly?: boolean;
  cdrom?: boolean;
  serial?: string;
  vendorId?: string;
  productId?: string;
  bsType?: string;
}

type PerLun = Omit<LunFlags, 'arg'>;

const SECRET_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** 16 characters (the most initiators accept) from an alphabet without look-alikes. */
function generateSecret(): string {
  return Array.from({ length: 16 }, () => SECRET_ALPHABET[randomInt(SECRET_ALPHABET.length)]).join('');
}

/** The secret for one CHAP direction: from its file, or generated when asked. */
async function chapSecret(user: string, fileFlag: string, file: string | undefined, generate: boolean | undefined, generated: Record<string, string>): Promise<string> {
  if (file !== undefined) return readSecretFile(fileFlag, file);
  if (!generate) throw new ValidationError(`CHAP user ${JSON.stringify(user)} needs a secret: give ${fileFlag} FILE, or --generate-secret`, 'chap');
  generated[user] = generateSecret();
  return generated[user]!;
}

async function createSpec(iqn: string, luns: readonly LunFlags[], all: PerLun, o: CreateFlags, generated: Record<string, string>): Promise<TargetSpec> {
  if (luns.length === 0) throw new ValidationError('give at least one --lun N=PATH (e.g. --lun 1=/srv/disk.img)', 'lun');
  if (all.serial !== undefined && luns.length > 1) throw new ValidationError('--serial before the --lun options would give every LUN the same serial: put it after its --lun', 'serial');
  const rbdGiven = luns.some((given) => isRbdRef(parseLunArg(given.arg).path));
  if (!rbdGiven && (o.cephConf ?? o.cephId ?? o.cephKeyring) !== undefined) {
    throw new ValidationError('--ceph-conf, --ceph-id and --ceph-keyring are for LUNs that are RBD images (--lun N=rbd:POOL/IMAGE)', 'ceph');
  }
  const client = rbdGiven ? cephClientFromFlags(o) : {};
  const lunSpecs: LunSpec[] = luns.map((given) => {
    const f = { ...all, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as LunFlags;
    const arg = parseLunArg(given.arg);
    // An RBD image is served by tgt's rbd backing store (tgt-rbd), opened as the Ceph client given.
    const l: LunSpec = isRbdRef(arg.path) ? rbdLun(arg.lun, parseRbdRef(arg.path), client) : arg;
    if (f.readonly) l.readonly = true;
    if (f.cdrom) l.cdrom = true;
    if (f.serial !== undefined) l.serial = f.serial;
    if (f.vendorId !== undefined) l.vendorId = f.vendorId;
    if (f.productId !== undefined) l.productId = f.productId;
    if (f.bsType !== undefined) l.bsType = f.bsType;
    return l;
  });
  const spec: TargetSpec = { iqn, luns: lunSpecs, allow: o.allow, persist: o.persist };
  if (o.tid !== undefined) spec.tid = o.tid;
  if (o.chap === undefined && (o.chapSecretFile !== undefined || o.mutualChap !== undefined)) {
    throw new ValidationError('--chap-secret-file and --mutual-chap need --chap USER', 'chap');
  }
  if (o.chap !== undefined) {
    const chap: ChapSpec = { user: o.chap, secret: await chapSecret(o.chap, '--chap-secret-file', o.chapSecretFile, o.generateSecret, generated) };
    if (o.mutualChap !== undefined) {
      chap.mutualUser = o.mutualChap;
      chap.mutualSecret = await chapSecret(o.mutualChap, '--mutual-chap-secret-file', o.mutualChapSecretFile, o.generateSecret, generated);
    } else if (o.mutualChapSecretFile !== undefined) {
      throw new ValidationError('--mutual-chap-secret-file needs --mutual-chap USER', 'chap');
    }
    spec.chap = chap;
  }
  return spec;
}

function addCreate(target: Command): void {
  // Commander reports options in command-line order, so a per-LUN flag binds to the --lun before it.
  let luns: LunFlags[] = [];
  const all: PerLun = {};
  const perLun =
    <K extends keyof PerLun>(key: K, value?: PerLun[K]) =>
    (arg: PerLun[K]): void => {
      const dest: PerLun = luns[luns.length - 1] ?? all;
      dest[key] = value ?? arg;
    };
  const tid = (v: string): number => {
    if (!/^\d{1,10}$/.test(v)) throw new ValidationError(`--tid ${JSON.stringify(v)} is not a number`, 'tid');
    return Number(v);
  };
  const cmd = addJson(
    addDryRun(
      addTargetOptions(
        addCephOptions(target.command('create'))
          .description('export images as LUNs of a new target: LUNs, then CHAP, then the initiators allowed in; persisted unless --no-persist')
          .argument('<iqn>', 'target name (iqn./eui./naa.)')
          .option('--lun <N=PATH>', 'LUN number (1 and up) and raw image file or block device on the storage host, or rbd:POOL/IMAGE (tgt-rbd) (repeatable)')
          .option('--readonly', 'serve the --lun before it read-only (every LUN when given first)')
          .option('--cdrom', 'serve the --lun before it as a read-only CD-ROM, e.g. an ISO (every LUN when given first)')
          .option('--serial <sn>', 'SCSI serial of the --lun before it (default: a generated one)')
          .option('--vendor-id <id>', 'SCSI vendor id (8 characters at most) of the --lun before it')
          .option('--product-id <id>', 'SCSI product id (16 characters at most) of the --lun before it')
          .option('--bs-type <type>', 'tgt backing store type of the --lun before it: rdwr (default), aio, ...')
          .option('--allow <who>', 'initiator allowed in: IP, CIDR, initiator IQN, or ALL (repeatable; default: nobody)', collect, [])
          .option('--chap <user>', 'CHAP user the initiator must log in as')
          .option('--chap-secret-file <file>', "file holding the CHAP user's secret (12-16 characters)")
          .option('--mutual-chap <user>', 'mutual CHAP: user the target answers as')
          .option('--mutual-chap-secret-file <file>', "file holding the target's mutual CHAP secret")
          .option('--generate-secret', 'generate the CHAP secrets not read from a file, and print them once')
          .option('--any-secret-length', 'accept CHAP secrets outside the 12-16 characters most initiators need')
          .option('--tid <n>', 'tgt target id (default: the next free one)', tid)
          .option('--no-persist', 'live only: do not write the target where tgtd loads it at start')
          .option('--install', 'install tgt with apt-get or dnf when it is missing'),
      ),
    ),
  ).action(async (iqn: string, o: CreateFlags) => {
    const generated: Record<string, string> = {};
    const spec = await createSpec(iqn, luns, all, o, generated);
    await withInterrupts((signal) =>
      run(
        o,
        async (s) => (await openBackend(s, o, { signal })).create(spec, { anySecretLength: o.anySecretLength }),
        (state) => {
          const head = o.dryRun ? `would create target ${state.iqn}` : `created target ${state.iqn} on ${o.host}`;
          // Printed once, here only: the secret is in no log and (masked) in no plan.
          const secrets = o.dryRun ? [] : Object.entries(generated).map(([user, secret]) => `generated CHAP secret for ${user}: ${secret}`);
          return [head, renderTarget(state), ...secrets].join('\n');
        },
        (state) => (o.dryRun || Object.keys(generated).length === 0 ? state : { ...state, generatedSecrets: generated }),
      ),
    );
  });
  cmd.on('option:lun', (arg: string) => {
    luns = [...luns, { arg }];
  });
  cmd.on('option:readonly', perLun('readonly', true));
  cmd.on('option:cdrom', perLun('cdrom', true));
  cmd.on('option:serial', perLun('serial'));
  cmd.on('option:vendor-id', perLun('vendorId'));
  cmd.on('option:product-id', perLun('productId'));
  cmd.on('option:bs-type', perLun('bsType'));
}

// ---- delete, list, show, sync ---------------------------------------------------------------

function addDelete(target: Command): void {
  addDryRun(
    addTargetOptions(
      target
        .command('delete')
        .description('remove a target, its LUNs, ACLs and CHAP accounts, and its record; never the image files')
        .argument('<iqn>', 'target name')
        .option('--force', 'also when initiators are logged in (they lose the disk), or when virt-iscsi did not make it'),
    ),
  ).action(async (iqn: string, o: TargetOptions & { force?: boolean }) => {
    await withSession(sessionOptions(o), async (s) => {
      await (await openBackend(s, o)).delete(iqn, { force: o.force });
      if (!o.dryRun) printText(`deleted target ${iqn} on ${o.host} (or it was not there)`);
    });
  });
}

function addList(target: Command): void {
  addJson(addTargetOptions(target.command('list').description('the targets tgtd serves'))).action(async (o: TargetOptions) => {
    await run(o, async (s) => (await openBackend(s, o)).list(), renderList);
  });
}

function addShow(target: Command): void {
  addJson(addTargetOptions(target.command('show').description("one target's LUNs, sessions, ACLs and CHAP users").argument('<iqn>', 'target name'))).action(
    async (iqn: string, o: TargetOptions) => {
      await run(
        o,
        async (s) => {
          const t = await (await openBackend(s, o)).show(iqn);
          if (!t) throw new ValidationError(`target ${JSON.stringify(iqn)} does not exist on ${o.host}`, 'iqn');
          return t;
        },
        renderTarget,
      );
    },
  );
}

/** Sync found something it could not set right; the report above says what. */
class SyncError extends VirtIscsiError {
  readonly kind = 'sync';
}

function addSync(target: Command): void {
  addJson(
    addDryRun(
      addTargetOptions(
        target
          .command('sync')
          .description('compare live targets with their records and repair: restore missing ones, drop stale records, undo hand changes')
          .option('--force', 'also repair targets that initiators are logged in to'),
      ),
    ),
  ).action(async (o: TargetOptions & { force?: boolean }) => {
    const items = await withInterrupts((signal) =>
      run(
        o,
        async (s) => {
          const backend = await openBackend(s, o, { signal });
          if (!backend.sync) throw new ValidationError(`the ${backend.name} backend has nothing to sync`, 'backend');
          return backend.sync({ force: o.force });
        },
        (r) => renderSync(r, o.dryRun === true),
      ),
    );
    const left = items.filter((i) => i.status === 'drift' || i.status === 'failed' || i.status === 'unreadable');
    if (left.length > 0) throw new SyncError(`${left.length} target(s) still differ from their records: ${left.map((i) => `${i.iqn} (${i.status})`).join(', ')}`);
  });
}

export function registerTarget(program: Command): void {
  const target = program.command('target').description('the iSCSI target on the storage host (tgt or LIO; IET as plans)');
  addCreate(target);
  addDelete(target);
  addList(target);
  addShow(target);
  addSync(target);
}
