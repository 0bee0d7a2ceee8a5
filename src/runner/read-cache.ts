// One command's reads, asked once: a query (RunOptions.query) or file read gives the same
// answer to every caller until something that may change it runs. A run over N exports
// asks the same tgtd, domains, pools and secrets N times; with this, each question reaches
// the host once until a change. Which reads a change can affect is told by a scope taken
// from the argv (the libvirt object a virsh command names, tgtd, a file): a change drops
// every cached read of its scopes, on every host (a change on one host can show on another:
// a target made on the storage host is what a hypervisor's pool lists), and every read
// that has no scope of its own. A command that is not known to be narrow changes
// everything. Waiting for something to change (sleep in plan.ts) drops every read, so a
// poll never sees its own earlier answer; taking a lock drops what it guards.
import { posix } from 'node:path';
import type { HoldOptions, HoldResult, RunOptions, RunResult, Runner, WriteFileOptions } from './types.js';

/** A read or a change touches these; ANY: not known to be narrower, so it meets every scope. */
const ANY = '*';

let epoch = 0;

/** What was read before now may have changed by itself (a wait, a lock taken): read again. */
export function readsMayBeStale(): void {
  epoch++;
}

interface Entry {
  epoch: number;
  scopes: readonly string[];
  value: Promise<RunResult | string | undefined>;
}

/** virsh subcommands that only read, with what they read; the others change what their --pool/--domain names. */
const VIRSH_READS: Record<string, 'pool' | 'pools' | 'domain' | 'domains' | 'secrets' | 'host'> = {
  'pool-info': 'pool',
  'pool-dumpxml': 'pool',
  'vol-list': 'pool',
  'vol-info': 'pool',
  'vol-dumpxml': 'pool',
  'pool-list': 'pools',
  dumpxml: 'domain',
  domstate: 'domain',
  dominfo: 'domain',
  domblklist: 'domain',
  domblkinfo: 'domain',
  list: 'domains',
  'secret-list': 'secrets',
  'secret-dumpxml': 'secrets',
  'pool-capabilities': 'host',
  echo: 'host',
};

const optionValue = (argv: readonly string[], flag: string): string | undefined => {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
};

/** Programs whose answer is about the host itself (installed programs, modules, names): only a change of unknown reach drops it. */
const HOST_FACTS = new Set(['iscsiadm --version', 'hostname -f', 'uname -n', 'qemu-img --help']);
/** Files that say who the host is (its machine id, its initiator name) and what its kernel has loaded: the host. */
const HOST_FILES = /^(\/etc\/machine-id|\/etc\/iscsi\/initiatorname\.iscsi|\/sys\/module\/[a-z0-9_]+)$/;
const pathScope = (path: string): string => (HOST_FILES.test(path) ? 'host' : `file ${path}`);

/** A file's scope, and the directory listing it is in. */
const fileScopes = (path: string): string[] => [`file ${path}`, `dir ${posix.dirname(path)}`];

/**
 * What a command reads or changes. `virsh -c URI CMD ...`: the pool or domain it names
 * (a pool change also changes the pool list; a domain change, the domain list); `tgtadm`:
 * tgtd's state; reads of files (`stat`, `test`, `qemu-img info`, `find DIR`) and `mkdir`:
 * those files; questions about the host itself: the host. Anything else: ANY.
 */
export function commandScopes(argv: readonly string[], query: boolean): string[] {
  if (argv[0] === 'tgtadm') return ['tgt'];
  if (argv[0] !== 'virsh') return query ? readScopes(argv) : argv[0] === 'mkdir' && argv.length > 1 ? fileScopes(argv[argv.length - 1]!) : [ANY];
  if (argv[1] !== '-c' || argv.length < 4) return [ANY];
  const uri = argv[2]!;
  const cmd = argv[3]!;
  const pool = optionValue(argv, '--pool');
  const domain = optionValue(argv, '--domain');
  const read = VIRSH_READS[cmd];
  if (query && read) {
    if (read === 'pool') return pool !== undefined ? [`virsh ${uri} pool ${pool}`] : [ANY];
    if (read === 'domain') return domain !== undefined ? [`virsh ${uri} domain ${domain}`] : [ANY];
    return [`virsh ${uri} ${read}`];
  }
  if (query) return [ANY];
  if (cmd === 'pool-define' || cmd === 'pool-create') return [`virsh ${uri} pool `, `virsh ${uri} pools`]; // the new pool's name is in its XML: every pool
  // Starting, stopping or refreshing a pool logs in to (or out of) its target: tgtd's sessions change too.
  if (cmd.startsWith('pool-') && pool !== undefined) return [`virsh ${uri} pool ${pool}`, `virsh ${uri} pools`, 'tgt'];
  if (cmd.startsWith('vol-') && pool !== undefined) return [`virsh ${uri} pool ${pool}`];
  if (cmd.startsWith('secret-')) return [`virsh ${uri} secrets`];
  // A disk plugged in or out is QEMU logging in to or out of its target (network, iscsi-direct disks).
  if (['attach-device', 'detach-device', 'update-device', 'change-media', 'blockresize', 'suspend', 'resume'].includes(cmd) && domain !== undefined) {
    return [`virsh ${uri} domain ${domain}`, `virsh ${uri} domains`, 'tgt'];
  }
  return [ANY];
}

/** What a read that is not virsh or tgtadm looks at. */
function readScopes(argv: readonly string[]): string[] {
  const [cmd] = argv;
  if (HOST_FACTS.has(argv.join(' ')) || (cmd === 'modprobe' && argv[1] === '--dry-run') || (cmd === 'getent' && argv[1] === 'ahosts')) return ['host'];
  if (cmd === 'test' && argv.length === 3) return [pathScope(argv[2]!)];
  if (cmd === 'find' && argv.length > 1) return [`dir ${argv[1]!}`];
  if (cmd === 'stat' && argv.includes('--')) return argv.slice(argv.indexOf('--') + 1).map((p) => `file ${p}`);
  if (cmd === 'qemu-img' && argv[1] === 'info' && argv.length > 2) return [`file ${argv[argv.length - 1]!}`];
  return [ANY];
}

/** A change's scope meets a read's: the same, or the change names a prefix of it (every pool). */
const meets = (change: string, read: string): boolean => change === ANY || read === ANY || read === change || (change.endsWith(' ') && read.startsWith(change));

/** The reads of one Session, shared by its runners (so a change on one host drops what it may change on another). */
export class ReadCache {
  private readonly entries = new Map<string, Entry>();

  get size(): number {
    return this.entries.size;
  }

  /** The cached answer, or `read()` asked once for every caller until a change in its scopes. */
  get<T extends RunResult | string | undefined>(key: string, scopes: readonly string[], read: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && hit.epoch === epoch) return hit.value as Promise<T>;
    const value = read();
    const entry: Entry = { epoch, scopes, value };
    this.entries.set(key, entry);
    // A failure (a dropped connection) is asked again by the next caller.
    value.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    return value;
  }

  /** An answer got another way (several reads in one process): as if `key` had been read now. */
  put(key: string, scopes: readonly string[], value: RunResult): void {
    this.entries.set(key, { epoch, scopes, value: Promise.resolve(value) });
  }

  clear(): void {
    this.entries.clear();
  }

  /** Drops every read a change in `scopes` can affect. */
  changed(scopes: readonly string[]): void {
    for (const [key, e] of this.entries) if (e.scopes.some((r) => scopes.some((c) => meets(c, r)))) this.entries.delete(key);
  }

  /**
   * Runs a change: what it can affect is dropped before it starts (no read begun during it
   * is kept) and again when it ends.
   */
  async change<T>(scopes: readonly string[], run: () => Promise<T>): Promise<T> {
    this.changed(scopes);
    try {
      return await run();
    } finally {
      this.changed(scopes);
    }
  }
}

/** The Runner of one host with a Session's ReadCache in front of its reads. */
export class CachingRunner implements Runner {
  constructor(
    private readonly inner: Runner,
    private readonly cache: ReadCache,
  ) {}

  get host(): string {
    return this.inner.host;
  }

  get dryRun(): boolean | undefined {
    return this.inner.dryRun;
  }

  private key(kind: string, what: unknown): string {
    return `${this.host}\0${kind}\0${JSON.stringify(what)}`;
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    // Output streamed as it comes, or input fed, is for this caller alone.
    const cacheable = options.query === true && options.stdin === undefined && options.onOutput === undefined;
    if (!cacheable) return this.cache.change(commandScopes(argv, options.query === true), () => this.inner.run(argv, options));
    return this.cache.get(this.key('run', [argv, options.env ?? null]), commandScopes(argv, true), () => this.inner.run(argv, options));
  }

  /** Stores what a read of `argv` (a query, no input) answered, got another way. */
  remember(argv: readonly string[], result: RunResult): void {
    this.cache.put(this.key('run', [argv, null]), commandScopes(argv, true), result);
  }

  readFile(path: string): Promise<string | undefined> {
    return this.cache.get(this.key('file', path), [pathScope(path)], () => this.inner.readFile(path));
  }

  writeFile(path: string, data: string, options?: WriteFileOptions): Promise<void> {
    return this.cache.change(fileScopes(path), () => this.inner.writeFile(path, data, options));
  }

  removeFile(path: string): Promise<void> {
    return this.cache.change(fileScopes(path), () => this.inner.removeFile(path));
  }

  get hold(): ((argv: readonly string[], options: HoldOptions) => Promise<HoldResult>) | undefined {
    const inner = this.inner;
    if (!inner.hold) return undefined;
    // A lock (of the target software's state and its configuration files): what another
    // run changed before we got it must be read again.
    return async (argv, options) => {
      const r = await inner.hold!(argv, options);
      this.cache.changed(['tgt', 'file ', 'dir ']);
      return r;
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The runner's read cache, when it has one (through a dry run's RecordingRunner too). */
export function rememberRead(runner: Runner, argv: readonly string[], result: RunResult): void {
  (runner as { remember?: (argv: readonly string[], result: RunResult) => void }).remember?.(argv, result);
}
