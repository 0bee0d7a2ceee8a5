// A typed driver for virsh over a Runner, so a hypervisor reached over SSH takes the same
// code path as this machine. Every call is `virsh -c URI ...`. XML documents and secret
// values never go on argv and never into a file: virsh reads them from /dev/stdin (the
// Runners make that a pipe), so nothing is left behind when virt-iscsi is killed. A dry
// run prints the document as a heredoc, secrets as ********. Reads are marked `query`, so
// a dry run still looks at the real state.
import { ConnectError, PrerequisiteError, ValidationError } from '../errors.js';
import { checkLibvirtUri, DEFAULT_LIBVIRT_URI } from '../names/libvirt-uri.js';
import { randomBytes } from 'node:crypto';
import { rememberRead } from '../runner/read-cache.js';
import type { RunOptions, RunResult, Runner } from '../runner/types.js';
import { parseDomain, type DomainInfo } from '../xml/domain.js';
import { buildSecret, type SecretDef, type SecretUsageType } from '../xml/secret.js';
import { NotFoundError, VirshError, virshError, type LibvirtObjectKind, type VirshFailure } from './virsh-errors.js';
import {
  parseBlkInfo,
  parseBlkList,
  parseDomainNames,
  parseDomPersistent,
  parseDomState,
  parsePoolInfo,
  parsePoolList,
  parseSecretList,
  parseVolInfo,
  parseVolList,
  type BlkInfo,
  type BlkListEntry,
  type DomainState,
  type PoolInfo,
  type PoolListEntry,
  type SecretListEntry,
  type VolListEntry,
} from './virsh-parse.js';

export { DEFAULT_LIBVIRT_URI };

/** The reads `prefetch` can batch, as the methods below ask them (after `virsh -c URI`). */
export const READS = {
  poolInfo: (pool: string): string[] => ['pool-info', '--bytes', '--pool', pool],
  poolDumpXml: (pool: string): string[] => ['pool-dumpxml', '--inactive', '--pool', pool],
  poolList: (): string[] => ['pool-list', '--all', '--details'],
  volList: (pool: string): string[] => ['vol-list', '--details', '--pool', pool],
  secretList: (): string[] => ['secret-list'],
  domainXml: (domain: string, inactive = false): string[] => ['dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', domain],
  domInfo: (domain: string): string[] => ['dominfo', '--domain', domain],
};

/** A word virsh's command parser takes as it is (no quote, space, `;`, `#` or backslash). */
const PLAIN_WORD = /^[A-Za-z0-9_.:@+\/=,-]+$/;
/** Reads per virsh process: its one argument stays far below the kernel's 128 KiB limit. */
const PREFETCH_BATCH = 400;

/** Where a device change applies: the running domain, its persistent definition, or both. */
export interface DeviceFlags {
  live: boolean;
  config: boolean;
}

export interface Volume {
  name: string;
  path: string;
  type: string;
  /** Bytes, from vol-info --bytes. */
  capacity: number;
  allocation: number;
}

/** What `virsh migrate` sends instead of the source's own XML: the running domain and its persistent definition. */
export interface MigrationXml {
  live: string;
  persistent: string;
}

export type MediaChange = { eject: true } | { insert: string; block: boolean };

export interface VirshOptions {
  /** Milliseconds one virsh call may take (a pool start logs in to a target). */
  timeoutMs?: number;
}

const NOT_FOUND: Partial<Record<VirshFailure, LibvirtObjectKind>> = {
  'no-domain': 'domain',
  'no-pool': 'pool',
  'no-volume': 'volume',
  'no-secret': 'secret',
  'no-device': 'disk',
};

function flagArgs(f: DeviceFlags): string[] {
  if (!f.live && !f.config) throw new TypeError('a device change needs live, config or both');
  return [...(f.live ? ['--live'] : []), ...(f.config ? ['--config'] : [])];
}

export class Virsh {
  /** Every libvirt URI is checked here, wherever it came from: a URI can name a program to run. */
  constructor(
    readonly runner: Runner,
    readonly uri: string = DEFAULT_LIBVIRT_URI,
    readonly options: VirshOptions = {},
  ) {
    checkLibvirtUri(uri);
  }

  /** "qemu:///system", or "qemu:///system on ssh://root@kvm1" for a remote hypervisor. */
  get where(): string {
    return this.runner.host === 'local' ? this.uri : `${this.uri} on ${this.runner.host}`;
  }

  /** Under --dry-run changes are only recorded: what they would create is not there to read. */
  get dryRun(): boolean {
    return this.runner.dryRun === true;
  }

  /**
   * Runs `virsh -c URI ARGS`; a failure becomes NotFoundError (the object named is not
   * there), ConnectError (libvirtd unreachable), PrerequisiteError (no virsh) or VirshError.
   */
  async run(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const argv = ['virsh', '-c', this.uri, ...args];
    const opts: RunOptions = { timeoutMs: this.options.timeoutMs ?? 120_000, ...options };
    const r = await this.runner.run(argv, opts);
    if (r.exitCode === 0) return r;
    if (r.exitCode === 127) throw new PrerequisiteError(`virsh is not installed on ${this.runner.host}: install libvirt-clients`);
    const e = virshError(this.runner, argv, r, opts);
    if (e.failure === 'unreachable') {
      const detail = r.stderr.trim().split('\n').pop()?.replace(/^error: /, '') ?? '';
      throw new ConnectError(this.runner.host, `cannot connect to libvirt at ${this.where}: ${detail}; is libvirtd running there?`, { cause: e });
    }
    const kind = NOT_FOUND[e.failure];
    if (kind && e.objectName !== undefined) throw Object.assign(new NotFoundError(kind, e.objectName, this.where), { cause: e });
    throw e;
  }

  /** `virsh ARGS FILE FLAGS` with the XML document in FILE. */
  private withXml(args: readonly string[], xml: string, flags: readonly string[] = []): Promise<RunResult> {
    return this.run([...args, '--file', '/dev/stdin', ...flags], { stdin: xml });
  }

  private query(args: readonly string[]): Promise<RunResult> {
    return this.run(args, { query: true });
  }

  /**
   * Several reads (each as READS builds it) asked in one virsh process, each answer kept in
   * the runner's read cache as if it had been asked alone: `virsh -c URI 'CMD ; echo MARK ;
   * CMD ; echo MARK ...'` runs every command whatever the one before did and prints each
   * answer as it prints it alone (libvirt 9.0), e.g.
   *   <pool type='iscsi-direct'>...</pool>\n\n@@virt-iscsi-1f2e3d4c-0\n\n@@virt-iscsi-1f2e3d4c-1\n
   * where the second command failed: a failed read prints a blank line (its error goes to
   * stderr) and is left to be asked alone, so its error is the usual one. A read with a
   * word virsh's own command parser would split or quote is left out too.
   */
  async prefetch(reads: ReadonlyArray<readonly string[]>): Promise<void> {
    const plain = [...new Map(reads.filter((args) => args.length > 0 && args.every((a) => PLAIN_WORD.test(a))).map((a) => [a.join(' '), a])).values()];
    for (let from = 0; from < plain.length; from += PREFETCH_BATCH) {
      const batch = plain.slice(from, from + PREFETCH_BATCH);
      const mark = `@@virt-iscsi-${randomBytes(4).toString('hex')}`;
      const line = batch.map((args, i) => `${args.join(' ')} ; echo ${mark}-${i}`).join(' ; ');
      const r = await this.runner.run(['virsh', '-c', this.uri, line], { query: true, timeoutMs: this.options.timeoutMs ?? 120_000 });
      let pos = 0;
      for (const [i, args] of batch.entries()) {
        const end = `${mark}-${i}\n`;
        const at = r.stdout.indexOf(end, pos);
        if (at < 0) break;
        const answer = r.stdout.slice(pos, at);
        pos = at + end.length;
        if (answer.trim() !== '') rememberRead(this.runner, ['virsh', '-c', this.uri, ...args], { stdout: answer, stderr: '', exitCode: 0 });
      }
    }
  }

  /** undefined when the object is not there. */
  private async ifExists<T>(what: LibvirtObjectKind, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof NotFoundError && e.what === what) return undefined;
      throw e;
    }
  }

  // ---- pools ---------------------------------------------------------------------------

  async poolDefine(xml: string): Promise<void> {
    await this.withXml(['pool-define'], xml);
  }

  async poolStart(name: string): Promise<void> {
    await this.run(['pool-start', '--pool', name]);
  }

  async poolAutostart(name: string, enable = true): Promise<void> {
    await this.run(['pool-autostart', '--pool', name, ...(enable ? [] : ['--disable'])]);
  }

  /** Rescans the pool's volumes (LUNs). */
  async poolRefresh(name: string): Promise<void> {
    await this.run(['pool-refresh', '--pool', name]);
  }

  /** Stops the pool; a pool not running is success. */
  async poolDestroy(name: string): Promise<void> {
    try {
      await this.run(['pool-destroy', '--pool', name]);
    } catch (e) {
      if (!(e instanceof VirshError && e.failure === 'pool-inactive')) throw e;
    }
  }

  async poolUndefine(name: string): Promise<void> {
    await this.run(['pool-undefine', '--pool', name]);
  }

  async poolInfo(name: string): Promise<PoolInfo | undefined> {
    return this.ifExists('pool', async () => parsePoolInfo((await this.query(READS.poolInfo(name))).stdout));
  }

  /** The pool's XML as libvirt keeps it (inactive definition), or undefined. */
  async poolDumpXml(name: string): Promise<string | undefined> {
    return this.ifExists('pool', async () => (await this.query(READS.poolDumpXml(name))).stdout);
  }

  async poolList(): Promise<PoolListEntry[]> {
    return parsePoolList((await this.query(READS.poolList())).stdout);
  }

  /** The pool's volumes as vol-list prints them (sizes rounded). */
  async volList(pool: string): Promise<VolListEntry[]> {
    return parseVolList((await this.query(READS.volList(pool))).stdout);
  }

  /** The pool's volumes with exact sizes (vol-list rounds them, so vol-info --bytes each). */
  async volumes(pool: string): Promise<Volume[]> {
    const list = await this.volList(pool);
    const out: Volume[] = [];
    for (const v of list) {
      const info = parseVolInfo((await this.query(['vol-info', '--bytes', '--pool', pool, '--vol', v.name])).stdout);
      out.push({ name: v.name, path: v.path, type: v.type, capacity: info.capacity, allocation: info.allocation });
    }
    return out;
  }

  // ---- secrets -------------------------------------------------------------------------

  /** Defines the secret; it must carry its UUID, which is returned. */
  async secretDefine(def: SecretDef & { uuid: string }): Promise<string> {
    await this.withXml(['secret-define'], buildSecret(def));
    return def.uuid;
  }

  /** Sets the value from stdin (`--file /dev/stdin --plain`): never on argv, never in a file. */
  async secretSetValue(uuid: string, value: string): Promise<void> {
    await this.run(['secret-set-value', '--secret', uuid, '--file', '/dev/stdin', '--plain'], { secrets: [value], stdin: value });
  }

  /**
   * Sets a value given as base64 (a Ceph key as `ceph auth get-key` prints it) from stdin
   * (`--file /dev/stdin`, which virsh reads as base64 without --plain), never on argv.
   */
  async secretSetValueBase64(uuid: string, base64: string): Promise<void> {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new ValidationError(`the value for secret ${uuid} is not base64`, 'secret');
    await this.run(['secret-set-value', '--secret', uuid, '--file', '/dev/stdin'], { secrets: [base64], stdin: base64 });
  }

  /** Removes the secret; one already gone is success. */
  async secretUndefine(uuid: string): Promise<void> {
    await this.ifExists('secret', () => this.run(['secret-undefine', '--secret', uuid]));
  }

  async secretList(): Promise<SecretListEntry[]> {
    return parseSecretList((await this.query(READS.secretList())).stdout);
  }

  /** The secret of this usage type (iscsi unless said) with this usage name, if any. */
  async secretByUsage(usage: string, type: SecretUsageType = 'iscsi'): Promise<SecretListEntry | undefined> {
    return (await this.secretList()).find((s) => s.usageType === type && s.usage === usage);
  }

  async secretDumpXml(uuid: string): Promise<string | undefined> {
    return this.ifExists('secret', async () => (await this.query(['secret-dumpxml', '--secret', uuid])).stdout);
  }

  // ---- domains -------------------------------------------------------------------------

  /** Every domain libvirt has here, running or shut off. */
  async domainNames(): Promise<string[]> {
    return parseDomainNames((await this.query(['list', '--all', '--name'])).stdout);
  }

  async domState(domain: string): Promise<DomainState> {
    return parseDomState((await this.query(['domstate', '--reason', '--domain', domain])).stdout);
  }

  /** Whether the domain has a definition (false for one started with `virsh create`). */
  async domPersistent(domain: string): Promise<boolean> {
    return parseDomPersistent((await this.query(READS.domInfo(domain))).stdout);
  }

  /** `dumpxml` parsed: the running configuration, or with `inactive` the persistent one. */
  async domainXml(domain: string, inactive = false): Promise<DomainInfo> {
    return parseDomain((await this.query(READS.domainXml(domain, inactive))).stdout);
  }

  /**
   * Live migration to `destUri` (as this libvirtd reaches the destination's): peer to peer
   * and tunnelled, so only the libvirt connection between the two is needed; the definition
   * moves with the domain (persistent there, undefined here).
   */
  async migrate(domain: string, destUri: string, xml?: MigrationXml): Promise<void> {
    const argv = ['migrate', '--live', '--p2p', '--tunnelled', '--persistent', '--undefinesource', '--domain', domain, '--desturi', destUri];
    if (!xml) {
      await this.run(argv);
      return;
    }
    // Two documents: files in a private directory on the host virsh runs on, removed after.
    const made = (await this.runner.run(['mktemp', '-d', '/tmp/virt-iscsi-migrate.XXXXXX'])).stdout.trim();
    const dir = made === '' ? '/tmp/virt-iscsi-migrate.XXXXXX' : made; // a dry run makes none
    try {
      await this.runner.writeFile(`${dir}/live.xml`, xml.live, { mode: 0o600 });
      await this.runner.writeFile(`${dir}/persistent.xml`, xml.persistent, { mode: 0o600 });
      await this.run([...argv, '--xml', `${dir}/live.xml`, '--persistent-xml', `${dir}/persistent.xml`]);
    } finally {
      if (made !== '') await this.runner.run(['rm', '-rf', '--', dir]);
    }
  }

  /** The domain's XML as a migration sends it (`dumpxml --migratable`), running or, with `inactive`, persistent. */
  async migratableXml(domain: string, inactive = false): Promise<string> {
    return (await this.query(['dumpxml', '--migratable', ...(inactive ? ['--inactive'] : []), '--domain', domain])).stdout;
  }

  async attachDevice(domain: string, xml: string, flags: DeviceFlags): Promise<void> {
    await this.withXml(['attach-device', '--domain', domain], xml, flagArgs(flags));
  }

  async detachDevice(domain: string, xml: string, flags: DeviceFlags): Promise<void> {
    await this.withXml(['detach-device', '--domain', domain], xml, flagArgs(flags));
  }

  /** Changes a device in place (new media in a cdrom drive): matched by its target dev. */
  async updateDevice(domain: string, xml: string, flags: DeviceFlags): Promise<void> {
    await this.withXml(['update-device', '--domain', domain], xml, flagArgs(flags));
  }

  /** Ejects, or inserts a file or block device (`block`) into a cdrom drive. */
  async changeMedia(domain: string, dev: string, change: MediaChange, flags: DeviceFlags): Promise<void> {
    const what = 'eject' in change ? ['--eject'] : ['--source', change.insert, '--insert', ...(change.block ? ['--block'] : [])];
    await this.run(['change-media', '--domain', domain, '--path', dev, ...what, ...flagArgs(flags)]);
  }

  /**
   * Tells QEMU the disk at `dev` is now `bytes` long, and QEMU tells the guest (virtio-scsi
   * "capacity data has changed", virtio-blk config change). QEMU re-reads what its backend
   * reports first and refuses to go past it: an iSCSI LUN ("Cannot grow iSCSI devices") or
   * a host block device must report the new size before this call.
   */
  async blockResize(domain: string, dev: string, bytes: number): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new TypeError(`blockresize size ${bytes} is not a positive whole number of bytes`);
    await this.run(['blockresize', '--domain', domain, '--path', dev, '--size', `${bytes}B`]);
  }

  /** Pauses the running domain: QEMU stops its vCPUs and waits for every disk request in flight to end. */
  async suspend(domain: string): Promise<void> {
    await this.run(['suspend', '--domain', domain]);
  }

  async resume(domain: string): Promise<void> {
    await this.run(['resume', '--domain', domain]);
  }

  async blkList(domain: string, inactive = false): Promise<BlkListEntry[]> {
    return parseBlkList((await this.query(['domblklist', '--details', ...(inactive ? ['--inactive'] : []), '--domain', domain])).stdout);
  }

  /** Sizes of a disk as the running domain sees it. */
  async blkInfo(domain: string, dev: string): Promise<BlkInfo> {
    return parseBlkInfo((await this.query(['domblkinfo', '--domain', domain, '--device', dev])).stdout);
  }
}
