// A thin typed driver over the rbd CLI (and `ceph auth get-key`) through a Runner, so a
// storage host or hypervisor over SSH is driven exactly like this one.
//
// rbd exits with the errno of what failed and says which on stderr (rbd 16.2.15):
//   2   rbd: error opening pool 'nopool': (2) No such file or directory
//   2   rbd: error opening image none: (2) No such file or directory
//   17  rbd: create error: (17) File exists
//   13  monclient(hunting): handle_auth_bad_method ...  /  rbd: couldn't connect to the cluster!   (wrong key)
//   2   auth: unable to find a keyring on ...  /  rbd: couldn't connect to the cluster!         (no keyring)
//   110 monclient(hunting): authenticate timed out after 5  /  rbd: couldn't connect ...      (no monitor)
//   1   global_init: unable to open config file from search list /x.conf
// The ceph CLI (Python) differs: exit 1 and "timed out" when no monitor answers, 13 and
// "[errno 13] RADOS permission denied (error connecting to the cluster)" for a wrong key,
// and it prints "no keyring found" noise on stderr even when it succeeds with --keyring.
// Both wait 300 s for a dead monitor by default: every command here passes a timeout.
import { PrerequisiteError, VirtIscsiError, ValidationError } from '../../errors.js';
import { commandError } from '../../runner/check.js';
import { EXIT_NOT_FOUND, EXIT_TIMEOUT } from '../../runner/local.js';
import type { RunOptions, RunResult, Runner } from '../../runner/types.js';
import { formatSize } from '../size.js';
import { cephArgv, cephUser, checkCephClient, DEFAULT_CEPH_CONF, DEFAULT_CEPH_TIMEOUT_SEC, type CephClient } from './client.js';
import { parseCephKey, parseMonDump, type CephMonitor, parseRbdInfo, parseRbdLs, parseRbdStatus, type RbdImageInfo, type RbdWatcher } from './parse.js';
import { formatRbdRef, parseRbdPoolName, rbdImageSpec, type RbdImageRef } from './ref.js';

export type CephFailure =
  | 'not-installed'
  | 'no-conf'
  | 'no-keyring'
  | 'auth'
  | 'timeout'
  | 'no-pool'
  | 'no-image'
  | 'no-user'
  | 'exists'
  | 'denied'
  | 'has-watchers'
  | 'other';

/** A Ceph command failed for a reason we know; `message` is one line for people, naming the value. */
export class CephError extends VirtIscsiError {
  readonly kind = 'ceph';
  constructor(
    message: string,
    readonly reason: CephFailure,
    readonly host: string,
    /** The command as shown to people (secrets masked). */
    readonly display: string,
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** What a failure was about, for the message. */
interface FailureContext {
  host: string;
  client: CephClient;
  /** "rbd:POOL/IMAGE", a pool, or a user: what the command was asked about. */
  subject?: string;
  pool?: string;
  user?: string;
}

const where = (c: FailureContext): string => `the Ceph cluster of ${c.client.conf ?? DEFAULT_CEPH_CONF} (on ${c.host})`;

/**
 * Each known failure: how to tell it (exit code and stderr) and what to tell people. The
 * first match wins, so the connection failures (which also print "couldn't connect")
 * come before the answers of a cluster that was reached.
 */
const FAILURES: ReadonlyArray<{ reason: CephFailure; test: (r: RunResult) => boolean; say: (c: FailureContext) => string }> = [
  {
    reason: 'not-installed',
    test: (r) => r.exitCode === EXIT_NOT_FOUND,
    say: (c) => `the Ceph client tools are not installed on ${c.host}: apt-get install ceph-common (or dnf install ceph-common)`,
  },
  {
    reason: 'no-conf',
    test: (r) => /unable to open config file|error calling conf_read_file/.test(r.stderr),
    say: (c) => `Ceph configuration ${c.client.conf ?? DEFAULT_CEPH_CONF} cannot be read on ${c.host}: give the cluster's ceph.conf with --ceph-conf`,
  },
  {
    reason: 'timeout',
    test: (r) => r.exitCode === 110 || r.exitCode === EXIT_TIMEOUT || /authenticate timed out|^timed out$/m.test(r.stderr),
    say: (c) => `no Ceph monitor of ${c.client.conf ?? DEFAULT_CEPH_CONF} answered ${c.host} within ${c.client.timeoutSec ?? DEFAULT_CEPH_TIMEOUT_SEC} s: check mon_host and that the monitors run`,
  },
  {
    reason: 'auth',
    test: (r) => r.exitCode === 13 && /couldn't connect to the cluster|error connecting to the cluster/.test(r.stderr),
    say: (c) => `Ceph refused the key of ${cephUser(c.client)}${c.client.keyring ? ` in ${c.client.keyring}` : ''} (on ${c.host}): wrong key, or no such user`,
  },
  {
    reason: 'no-keyring',
    test: (r) => /couldn't connect to the cluster|error connecting to the cluster/.test(r.stderr) && /no keyring found|unable to find a keyring/.test(r.stderr),
    say: (c) => `no keyring for ${cephUser(c.client)} on ${c.host}: give it with --ceph-keyring, or name it in the conf's "keyring" setting`,
  },
  {
    reason: 'no-pool',
    test: (r) => /error opening pool/.test(r.stderr),
    say: (c) => `pool ${JSON.stringify(c.pool ?? '')} does not exist in ${where(c)}`,
  },
  {
    reason: 'no-image',
    test: (r) => r.exitCode === 2 && /error opening image|No such file or directory/.test(r.stderr),
    say: (c) => `RBD image ${c.subject ?? ''} does not exist in ${where(c)}`,
  },
  {
    reason: 'no-user',
    test: (r) => /don't have client\./.test(r.stderr),
    say: (c) => `Ceph user ${c.user ?? ''} does not exist in ${where(c)}`,
  },
  {
    reason: 'exists',
    test: (r) => r.exitCode === 17,
    say: (c) => `RBD image ${c.subject ?? ''} already exists in ${where(c)}; refusing to overwrite it`,
  },
  {
    reason: 'has-watchers',
    test: (r) => /image has watchers|image still has watchers/.test(r.stderr),
    say: (c) => `RBD image ${c.subject ?? ''} is open by a client (QEMU, tgtd...): close it first`,
  },
  {
    reason: 'denied',
    test: (r) => r.exitCode === 13 || (r.exitCode === 1 && /EACCES|access denied|Operation not permitted/.test(r.stderr)),
    say: (c) => `${cephUser(c.client)} may not do this in ${where(c)} (its caps do not allow it)`,
  },
];

/** The CephError for a failed rbd/ceph command: a known failure in its own words, else the command and its last line. */
export function cephFailure(runner: Runner, argv: readonly string[], r: RunResult, ctx: FailureContext, options: RunOptions = {}): CephError {
  const known = FAILURES.find((f) => f.test(r));
  const base = commandError(runner, argv, r, options);
  return new CephError(known ? known.say(ctx) : base.message, known?.reason ?? 'other', runner.host, base.display, r.exitCode, base.stderr);
}

export interface RbdCreateOptions {
  /**
   * Image features (rbd --image-feature); default: the cluster's (layering, exclusive-lock,
   * object-map, fast-diff, deep-flatten in Pacific), which QEMU and tgt-rbd both open.
   */
  features?: readonly string[];
}

/** The rbd CLI (and `ceph auth`) for one client of one cluster, on one host. */
export class Rbd {
  readonly client: CephClient;

  constructor(
    readonly runner: Runner,
    client: CephClient = {},
  ) {
    this.client = checkCephClient(client);
  }

  private get timeoutSec(): number {
    return this.client.timeoutSec ?? DEFAULT_CEPH_TIMEOUT_SEC;
  }

  /**
   * `rbd --conf .. --id .. --client_mount_timeout N --rados_mon_op_timeout N ARGS`. The
   * Runner's own timeout is the backstop for an OSD that never answers.
   */
  private async rbd(args: readonly string[], ctx: Omit<FailureContext, 'host' | 'client'>, options: RunOptions = {}): Promise<RunResult> {
    const t = String(this.timeoutSec);
    const argv = ['rbd', ...cephArgv(this.client), '--client_mount_timeout', t, '--rados_mon_op_timeout', t, ...args];
    const r = await this.runner.run(argv, { timeoutMs: (this.timeoutSec * 3 + 30) * 1000, ...options });
    if (r.exitCode === 0) return r;
    throw cephFailure(this.runner, argv, r, { ...ctx, host: this.runner.host, client: this.client }, options);
  }

  private ref(ref: RbdImageRef): Omit<FailureContext, 'host' | 'client'> {
    return { subject: formatRbdRef(ref), pool: ref.pool };
  }

  // ---- reading (queries: a dry run still runs them) ------------------------------------

  /** The image, or undefined when the pool holds no such image. A missing pool is a CephError ('no-pool'). */
  async info(ref: RbdImageRef): Promise<RbdImageInfo | undefined> {
    try {
      return parseRbdInfo((await this.rbd(['info', '--format', 'json', rbdImageSpec(ref)], this.ref(ref), { query: true })).stdout);
    } catch (e) {
      if (e instanceof CephError && e.reason === 'no-image') return undefined;
      throw e;
    }
  }

  async exists(ref: RbdImageRef): Promise<boolean> {
    return (await this.info(ref)) !== undefined;
  }

  /** The image, or a CephError ('no-image', 'no-pool', ...) naming it. */
  async require(ref: RbdImageRef): Promise<RbdImageInfo> {
    const info = await this.info(ref);
    if (info) return info;
    throw new CephError(`RBD image ${formatRbdRef(ref)} does not exist in the Ceph cluster of ${this.client.conf ?? DEFAULT_CEPH_CONF} (on ${this.runner.host})`, 'no-image', this.runner.host, '', 2, '');
  }

  /** The clients that have the image open (QEMU, tgtd, rbd map). */
  async watchers(ref: RbdImageRef): Promise<RbdWatcher[]> {
    return parseRbdStatus((await this.rbd(['status', '--format', 'json', rbdImageSpec(ref)], this.ref(ref), { query: true })).stdout);
  }

  /** The image names in a pool. */
  async list(pool: string): Promise<string[]> {
    const name = parseRbdPoolName(pool);
    return parseRbdLs((await this.rbd(['ls', '--format', 'json', name], { pool: name }, { query: true })).stdout);
  }

  // ---- changing ------------------------------------------------------------------------

  /**
   * Creates the image with `sizeBytes` (thin: nothing is allocated until written). Never
   * overwrites: rbd create refuses an existing name atomically (exit 17), which becomes a
   * CephError with reason 'exists'. A missing pool is 'no-pool'.
   */
  async create(ref: RbdImageRef, sizeBytes: number, options: RbdCreateOptions = {}): Promise<void> {
    checkSize(sizeBytes);
    const features = (options.features ?? []).flatMap((f) => {
      if (!/^[a-z][a-z-]*$/.test(f)) throw new ValidationError(`RBD image feature ${JSON.stringify(f)} is not a feature name such as layering`, 'feature');
      return ['--image-feature', f];
    });
    await this.rbd(['create', '--size', `${sizeBytes}B`, ...features, rbdImageSpec(ref)], this.ref(ref));
  }

  /**
   * Grows the image to `sizeBytes`; the same size does nothing. Shrinking is refused here
   * (a ValidationError naming both sizes): it cuts off the end of a guest's disk.
   */
  async resize(ref: RbdImageRef, sizeBytes: number): Promise<void> {
    checkSize(sizeBytes);
    const info = await this.require(ref);
    if (sizeBytes === info.sizeBytes) return;
    if (sizeBytes < info.sizeBytes) {
      throw new ValidationError(
        `RBD image ${formatRbdRef(ref)} is ${formatSize(info.sizeBytes)}; refusing to shrink it to ${formatSize(sizeBytes)} (that cuts off the end of the disk)`,
        'size',
      );
    }
    await this.rbd(['resize', '--size', `${sizeBytes}B`, rbdImageSpec(ref)], this.ref(ref));
  }

  /**
   * Removes an image. Only for taking back an image this program has just created (the
   * undo of create, a failed conversion): never call it on a user's image. rbd refuses
   * an image a client has open ('has-watchers').
   */
  async removeCreated(ref: RbdImageRef): Promise<void> {
    await this.rbd(['rm', '--no-progress', rbdImageSpec(ref)], this.ref(ref));
  }

  /** The cluster's monitors, as clients reach them (`ceph mon dump`): what a libvirt rbd disk lists as its hosts. */
  async monitors(): Promise<CephMonitor[]> {
    const argv = ['ceph', ...cephArgv(this.client), '--connect-timeout', String(this.timeoutSec), 'mon', 'dump', '--format', 'json'];
    const r = await this.runner.run(argv, { query: true, timeoutMs: (this.timeoutSec * 2 + 30) * 1000 });
    if (r.exitCode !== 0) throw cephFailure(this.runner, argv, r, { host: this.runner.host, client: this.client });
    return parseMonDump(r.stdout);
  }

  // ---- keys ----------------------------------------------------------------------------

  /**
   * This client's own cephx key, from its keyring (the one the conf names for it, found
   * with `ceph-conf --lookup keyring`, or --ceph-keyring): an rbd client such as
   * client.libvirt may not read keys with `ceph auth`. `ceph-authtool -p` prints the key
   * alone; it is a secret: never printed, handed on through stdin.
   */
  async clientKey(): Promise<string> {
    const user = cephUser(this.client);
    let keyring = this.client.keyring;
    if (keyring === undefined) {
      const argv = ['ceph-conf', ...(this.client.conf ? ['-c', this.client.conf] : []), '--name', user, '--lookup', 'keyring'];
      const r = await this.runner.run(argv, { query: true });
      if (r.exitCode === 127) throw new PrerequisiteError(`ceph-conf is not installed on ${this.runner.host}: install ceph-common`);
      keyring = r.exitCode === 0 ? r.stdout.trim().split(',')[0]!.trim() : undefined;
      if (!keyring) throw new ValidationError(`the Ceph conf on ${this.runner.host} names no keyring for ${user}: give --ceph-keyring`, 'ceph-keyring');
    }
    const argv = ['ceph-authtool', '-p', '-n', user, keyring];
    const r = await this.runner.run(argv, { query: true });
    if (r.exitCode !== 0) {
      const why = r.stderr.trim().split('\n').pop() || `exit ${r.exitCode}`;
      throw new ValidationError(`cannot read the key of ${user} from ${keyring} on ${this.runner.host}: ${why}`, 'ceph-keyring');
    }
    return parseCephKey(r.stdout, user);
  }

  /**
   * The cephx key of `user` (e.g. "client.libvirt"), base64, for a libvirt `ceph` secret.
   * Needs a client allowed to read keys (client.admin). The key is never printed: it is
   * masked in any error after it was read, and the caller hands it on through a file or
   * stdin (Virsh.secretSetValueBase64), never argv.
   */
  async authKey(user: string): Promise<string> {
    if (!/^client\.[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(user)) throw new ValidationError(`Ceph user ${JSON.stringify(user)} is not allowed: expected client.ID, e.g. client.libvirt`, 'ceph-user');
    const argv = ['ceph', ...cephArgv(this.client), '--connect-timeout', String(this.timeoutSec), 'auth', 'get-key', user];
    const r = await this.runner.run(argv, { query: true, timeoutMs: (this.timeoutSec * 2 + 30) * 1000 });
    if (r.exitCode !== 0) throw cephFailure(this.runner, argv, r, { host: this.runner.host, client: this.client, user });
    return parseCephKey(r.stdout, user);
  }
}

function checkSize(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0) {
    throw new ValidationError(`RBD image size ${sizeBytes} is not a positive multiple of 512 bytes`, 'size');
  }
}
