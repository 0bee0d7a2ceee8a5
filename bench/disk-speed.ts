// What the VM's disk gets (`make bench-disk`, part of `make bench`): the speed of an iSCSI
// disk through QEMU's own iSCSI driver (libiscsi), with exactly the options libvirt gives
// QEMU for the disk XML virt-iscsi writes, beside the alternatives, and which of them are
// safe. How:
//
// - Target: private tgtd instances (one per --nr_iothreads value) on 127.0.0.1, one target
//   per target-side variant (backing store, write cache, image allocation, iSCSI session
//   parameters), each serving its own 1 GiB image from the temp directory (a real file
//   system: tgt's aio backing store opens with O_DIRECT). Today's default is what the tgt
//   backend sets up, session parameters included (src/storage/tgt/session-params.ts).
// - Client options: the disk XML comes from the product's builders (diskFor, as export
//   attaches it; variants change only the driver's cache/io); `virsh domxml-to-native
//   qemu-argv` turns it into the -blockdev options and the scsi-hd device's write-cache,
//   exactly as libvirt would start QEMU. Variants whose QEMU options come out the same are
//   measured once (io= does not reach the iscsi driver at all).
// - Sequential 128 KiB: `qemu-img bench` with those block options (json: filename, cache
//   mode by -t). Random 4 KiB: fio's nbd engine against `qemu-storage-daemon` running the
//   same -blockdev JSON, its NBD export's writethrough set from the device's write-cache
//   (off: each write is flushed, as QEMU does for a guest whose disk reports no write
//   cache). Large requests are left to qemu-img: QEMU's NBD server allocates a buffer per
//   request (glibc maps and unmaps one of 128 KiB each time unless told otherwise, below),
//   which a VM's virtio device, reading guest memory in place, does not.
//   Reads hit data written before (untimed); writes on a sparse image punch the region
//   back to holes first, so every write allocates. Every write run ends with a flush,
//   counted in its time.
// - Safety, measured: a few writes and a flush go through each variant while strace counts
//   tgtd's fdatasync/fsync calls. A variant is safe when the flush reached the storage
//   host's disk (at least one sync). cache=unsafe drops the guest's flushes; tgt's aio
//   backing store ignores SYNCHRONIZE CACHE (and FUA) and writes with O_DIRECT, which
//   leaves a sparse file's new blocks and the drive's own cache unflushed.
// - Each number is the median of the rounds; rounds run every variant in an order that
//   turns. The score of a variant is the geometric mean, over the workloads, of its
//   speed relative to today's default; the best safe variant is named, and whether
//   today's default is within 5% of it.
// Prints a table and writes bench/disk-speed.json.
//   BENCH_DISK_ROUNDS=3   BENCH_DISK_MIB=1024 (image size)
//   BENCH_DISK_ONLY=id,id (variants to run; `ours` is always run)
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { diskFor } from '../src/hypervisor/disks.js';
import { DEFAULT_SESSION_PARAMS } from '../src/storage/tgt/session-params.js';
import { buildDisk, type DiskCache, type DiskDef, type DiskIo, type NetworkSource } from '../src/xml/disk.js';
import { cleanupStack } from '../test/helpers/cleanups.js';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../test/helpers/libvirt.js';
import { waitFor } from '../test/helpers/daemon.js';
import { startTgtd, type Tgtd } from '../test/helpers/tgtd.js';
import { machine, median, pad, root } from './common.js';

const ROUNDS = Number(process.env.BENCH_DISK_ROUNDS ?? 3);
const IMAGE_MIB = Number(process.env.BENCH_DISK_MIB ?? 1024);
const ONLY = process.env.BENCH_DISK_ONLY?.split(',').map((s) => s.trim());
/** Where reads and writes land: the first REGION_MIB of the image. */
const REGION_MIB = Math.min(256, IMAGE_MIB);
const IQN_PREFIX = 'iqn.2024-01.dev.virt-iscsi:bench';
const INITIATOR = 'iqn.2024-01.dev.virt-iscsi:bench-initiator';

// ---- the variants -------------------------------------------------------------------------

interface TargetSide {
  /** tgtd --nr_iothreads; undefined: tgtd's default (16 threads a LUN). */
  threads?: number;
  bsType: 'rdwr' | 'aio';
  /** tgt's write-cache (the WCE bit of mode page 8); on is tgt's default. */
  writeCache: boolean;
  image: 'sparse' | 'full';
  /** iSCSI session parameters set on the target (tgtadm --mode target --op update). */
  params: ReadonlyArray<readonly [string, string]>;
}

interface ClientSide {
  cache?: DiskCache;
  io?: DiskIo;
}

interface Variant {
  id: string;
  label: string;
  client: ClientSide;
  target: TargetSide;
  /** Measured even though another variant has the same options: how far apart two measurements of one thing land. */
  replica?: boolean;
}

/** What virt-iscsi's tgt backend sets up: rdwr, tgt's write cache, its session parameters. */
const TGT_DEFAULT: TargetSide = { bsType: 'rdwr', writeCache: true, image: 'sparse', params: DEFAULT_SESSION_PARAMS.map((p) => [p.key, p.value] as const) };
const BIG_SEGMENTS = [...TGT_DEFAULT.params, ['MaxRecvDataSegmentLength', '262144'], ['MaxXmitDataSegmentLength', '262144']] as const;

/** Today's default first: what virt-iscsi export sets up (disk XML from diskFor, tgt target and LUN as its backend makes them). */
export const VARIANTS: readonly Variant[] = [
  { id: 'ours', label: "today's default (no cache=, tgt rdwr)", client: {}, target: TGT_DEFAULT },
  { id: 'ours-again', label: "today's default, measured again", client: {}, target: TGT_DEFAULT, replica: true },
  { id: 'cache-none', label: 'cache=none', client: { cache: 'none' }, target: TGT_DEFAULT },
  { id: 'cache-writeback', label: 'cache=writeback', client: { cache: 'writeback' }, target: TGT_DEFAULT },
  { id: 'cache-writethrough', label: 'cache=writethrough', client: { cache: 'writethrough' }, target: TGT_DEFAULT },
  { id: 'cache-directsync', label: 'cache=directsync', client: { cache: 'directsync' }, target: TGT_DEFAULT },
  { id: 'cache-unsafe', label: 'cache=unsafe (reference)', client: { cache: 'unsafe' }, target: TGT_DEFAULT },
  { id: 'io-native', label: 'cache=none io=native', client: { cache: 'none', io: 'native' }, target: TGT_DEFAULT },
  { id: 'io-threads', label: 'io=threads', client: { io: 'threads' }, target: TGT_DEFAULT },
  { id: 'io-uring', label: 'io=io_uring', client: { io: 'io_uring' }, target: TGT_DEFAULT },
  { id: 'tgt-aio', label: 'tgt bs-type aio', client: {}, target: { ...TGT_DEFAULT, bsType: 'aio' } },
  { id: 'tgt-wc-off', label: 'tgt write-cache off', client: {}, target: { ...TGT_DEFAULT, writeCache: false } },
  { id: 'tgt-threads-4', label: 'tgtd --nr_iothreads 4', client: {}, target: { ...TGT_DEFAULT, threads: 4 } },
  { id: 'tgt-threads-64', label: 'tgtd --nr_iothreads 64', client: {}, target: { ...TGT_DEFAULT, threads: 64 } },
  { id: 'image-full', label: 'image fully allocated', client: {}, target: { ...TGT_DEFAULT, image: 'full' } },
  { id: 'tgt-r2t', label: "tgt's own InitialR2T=Yes, 64K burst", client: {}, target: { ...TGT_DEFAULT, params: [] } },
  { id: 'tgt-big-segments', label: 'tgt 256 KiB data segments', client: {}, target: { ...TGT_DEFAULT, params: BIG_SEGMENTS } },
];

// ---- the workloads ------------------------------------------------------------------------

interface Workload {
  id: string;
  tool: 'qemu-img' | 'fio';
  pattern: 'read' | 'write' | 'randread' | 'randwrite';
  bs: number;
  qd: number;
  /** Requests a run makes. */
  count: number;
}

const KiB = 1024;
const WORKLOADS: readonly Workload[] = [1, 32].flatMap((qd) => [
  ...(['read', 'write'] as const).map((pattern) => ({ id: `seq ${pattern} 128K QD${qd}`, tool: 'qemu-img' as const, pattern, bs: 128 * KiB, qd, count: qd === 1 ? 512 : 2048 })),
  ...(['randread', 'randwrite'] as const).map((pattern) => ({ id: `rand ${pattern.slice(4)} 4K QD${qd}`, tool: 'fio' as const, pattern, bs: 4 * KiB, qd, count: qd === 1 ? 1000 : 8000 })),
]);
const isWrite = (w: Workload): boolean => w.pattern.endsWith('write');

// ---- QEMU options from the disk XML ---------------------------------------------------------

interface QemuDisk {
  /** -blockdev JSON documents, storage node first, then the format node. */
  blockdevs: Array<Record<string, unknown>>;
  formatNode: string;
  writeCache: boolean;
  direct: boolean;
  noFlush: boolean;
  /** The same, with QEMU's defaults filled in and node names left out: equal means the same disk. */
  key: string;
}

/** The -blockdev and -device arguments libvirt would give QEMU for this disk (virsh domxml-to-native). */
function qemuOptionsFor(disk: DiskDef, dir: string): QemuDisk {
  const domain = minimalDomainXml(`vit-diskspeed-${randomBytes(3).toString('hex')}`).replace('</devices>', `${buildDisk(disk)}</devices>`);
  const file = join(dir, 'domain-argv.xml');
  writeFileSync(file, domain);
  const argv = execFileSync('virsh', ['-c', LIBVIRT_URI, 'domxml-to-native', 'qemu-argv', '--xml', file], { encoding: 'utf8' });
  // libvirt quotes each JSON argument in single quotes; JSON here holds no single quote.
  const args = [...argv.matchAll(/-(blockdev|device) '(\{[^']*\})'/g)].map((m) => ({ kind: m[1]!, json: JSON.parse(m[2]!) as Record<string, unknown> }));
  const device = args.find((a) => a.kind === 'device' && a.json.driver === 'scsi-hd')?.json;
  if (!device) throw new Error(`virsh domxml-to-native gave no scsi-hd device for the disk:\n${argv}`);
  const formatNode = String(device.drive);
  const format = args.find((a) => a.kind === 'blockdev' && a.json['node-name'] === formatNode)?.json;
  const storage = format && args.find((a) => a.kind === 'blockdev' && a.json['node-name'] === format.file)?.json;
  if (!format || !storage || storage.driver !== 'iscsi') throw new Error(`no iscsi storage node under ${formatNode}:\n${argv}`);
  const cache = (n: Record<string, unknown>): { direct: boolean; 'no-flush': boolean } => ({ direct: false, 'no-flush': false, ...(n.cache as object | undefined) });
  // Keys sorted: libvirt writes "cache" among the others only when the XML sets it.
  const strip = (n: Record<string, unknown>): Array<[string, unknown]> => {
    const { 'node-name': _n, file: _f, ...rest } = n;
    return Object.entries({ ...rest, cache: cache(n) }).sort(([a], [b]) => a.localeCompare(b));
  };
  // scsi-hd's write-cache defaults to on (auto: the block backend's, which is on).
  const writeCache = device['write-cache'] !== 'off';
  return {
    blockdevs: [storage, format],
    formatNode,
    writeCache,
    direct: cache(storage).direct,
    noFlush: cache(storage)['no-flush'],
    key: JSON.stringify([strip(storage), strip(format), writeCache]),
  };
}

/** qemu-img's -t for these flags (its names are libvirt's cache modes). */
function cacheMode(q: QemuDisk): string {
  if (q.noFlush) return 'unsafe';
  if (q.writeCache) return q.direct ? 'none' : 'writeback';
  return q.direct ? 'directsync' : 'writethrough';
}

// ---- targets --------------------------------------------------------------------------------

interface Lun {
  tgtd: Tgtd;
  iqn: string;
  image: string;
  spec: TargetSide;
}

function targetKey(t: TargetSide): string {
  return JSON.stringify([t.threads ?? 0, t.bsType, t.writeCache, t.image, t.params]);
}

// tgt-admin's mode page 8 (caching) for "write-cache off": the WCE bit (0x04 of byte 2) clear.
const WRITE_CACHE_OFF_PAGE = 'mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0';

function makeImage(path: string, kind: 'sparse' | 'full'): void {
  if (kind === 'sparse') execFileSync('truncate', ['-s', `${IMAGE_MIB}M`, path]);
  else execFileSync('qemu-img', ['create', '-q', '-f', 'raw', '-o', 'preallocation=full', path, `${IMAGE_MIB}M`]);
}

// ---- one run ----------------------------------------------------------------------------------

interface Measure {
  /** Bytes per second. */
  bps: number;
  iops: number;
}

function qemuImgJson(q: QemuDisk): string {
  const [storage, format] = q.blockdevs as [Record<string, unknown>, Record<string, unknown>];
  const clean = (n: Record<string, unknown>): Record<string, unknown> => {
    const { 'node-name': _n, file: _f, cache: _c, 'auto-read-only': _a, 'read-only': _r, ...rest } = n;
    return rest;
  };
  return `json:${JSON.stringify({ ...clean(format), file: clean(storage) })}`;
}

export function qemuImgArgs(q: QemuDisk, w: Workload): string[] {
  return ['bench', '-t', cacheMode(q), '-d', String(w.qd), '-s', String(w.bs), '-c', String(w.count), ...(isWrite(w) ? ['-w', '--pattern=165', `--flush-interval=${w.count}`] : []), qemuImgJson(q)];
}

function runQemuImg(q: QemuDisk, w: Workload): Measure {
  const r = spawnSync('qemu-img', qemuImgArgs(q, w), { encoding: 'utf8', timeout: 600_000 });
  const m = /Run completed in ([\d.]+) seconds/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`qemu-img ${qemuImgArgs(q, w).join(' ')} failed: ${r.stderr}${r.stdout}`);
  const s = Number(m[1]);
  return { bps: (w.count * w.bs) / s, iops: w.count / s };
}

/** Buffers up to 4 MiB come from the heap: no mmap/munmap per request (see the top of the file). */
const QSD_MALLOC = 'glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=67108864';

export function qsdArgs(q: QemuDisk, socket: string): string[] {
  return [
    ...q.blockdevs.flatMap((b) => ['--blockdev', JSON.stringify(b)]),
    '--nbd-server',
    `addr.type=unix,addr.path=${socket}`,
    '--export',
    `type=nbd,id=e0,node-name=${q.formatNode},writable=on,writethrough=${q.writeCache ? 'off' : 'on'}`,
  ];
}

export function fioArgs(q: QemuDisk, w: Workload, socket: string, output: string): string[] {
  return [
    '--name=vit',
    '--ioengine=nbd',
    `--uri=nbd+unix:///${q.formatNode}?socket=${socket}`,
    `--rw=${w.pattern}`,
    `--bs=${w.bs}`,
    `--iodepth=${w.qd}`,
    `--size=${REGION_MIB}M`,
    `--io_size=${w.count * w.bs}`,
    '--norandommap',
    ...(isWrite(w) ? ['--end_fsync=1'] : []),
    '--output-format=json',
    `--output=${output}`,
  ];
}

/** qemu-storage-daemon with the disk's options, an NBD export on a unix socket; stopped by PID. */
async function withQsd<T>(q: QemuDisk, dir: string, fn: (socket: string) => T | Promise<T>): Promise<T> {
  const socket = join(dir, `qsd-${randomBytes(4).toString('hex')}.sock`);
  const env = { ...process.env, GLIBC_TUNABLES: QSD_MALLOC };
  const child: ChildProcess = spawn('qemu-storage-daemon', qsdArgs(q, socket), { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor('qemu-storage-daemon to listen', () => {
      if (child.exitCode !== null) throw new Error(`qemu-storage-daemon exited: ${err}`);
      return existsSync(socket);
    });
    return await fn(socket);
  } finally {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await exited;
    rmSync(socket, { force: true });
  }
}

async function runFio(q: QemuDisk, w: Workload, dir: string): Promise<Measure> {
  const out = join(dir, 'fio.json');
  return withQsd(q, dir, (socket) => {
    const args = fioArgs(q, w, socket, out);
    const r = spawnSync('fio', args, { encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`fio ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
    const job = (JSON.parse(readFileSync(out, 'utf8')) as { jobs: Array<Record<string, { io_bytes: number; total_ios: number }> & { job_runtime: number }> }).jobs[0]!;
    const side = job[isWrite(w) ? 'write' : 'read']!;
    // job_runtime covers the whole job, the end_fsync flush of a write run included.
    const s = job.job_runtime / 1000;
    return { bps: side.io_bytes / s, iops: side.total_ios / s };
  });
}

// ---- safety ----------------------------------------------------------------------------------

/** fdatasync/fsync calls tgtd makes while 16 writes and one flush go through the variant. */
async function syncsOnFlush(q: QemuDisk, lun: Lun, dir: string): Promise<number> {
  const out = join(dir, 'strace.txt');
  return withQsd(q, dir, async (socket) => {
    const tracer = spawn('strace', ['-f', '-c', '-o', out, '-e', 'trace=fdatasync,fsync,sync_file_range,syncfs', '-p', String(lun.tgtd.pid)], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 1000)); // strace attaches to every thread first
      const w: Workload = { id: 'probe', tool: 'fio', pattern: 'randwrite', bs: 4 * KiB, qd: 1, count: 16 };
      const r = spawnSync('fio', fioArgs(q, w, socket, join(dir, 'probe.json')), { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`fio probe failed: ${r.stderr}`);
    } finally {
      const done = new Promise<void>((resolve) => tracer.once('exit', () => resolve()));
      if (tracer.pid !== undefined) process.kill(tracer.pid, 'SIGINT');
      await done;
    }
    const text = readFileSync(out, 'utf8');
    return [...text.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fdatasync|fsync|sync_file_range|syncfs)\s*$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  });
}

// ---- main ---------------------------------------------------------------------------------------

interface Row {
  id: string;
  label: string;
  safe: boolean;
  syncsOnFlush: number;
  sameAs?: string;
  cacheMode: string;
  /** Median over the rounds, per workload: MB/s for 128K, IOPS for 4K. */
  results: Record<string, number>;
  runs: Record<string, number[]>;
  /** Geometric mean of the fio workloads relative to today's default. */
  score?: number;
}

const value = (w: Workload, m: Measure): number => (w.bs >= 64 * KiB ? m.bps / 1e6 : m.iops);
const unit = (w: Workload): string => (w.bs >= 64 * KiB ? 'MB/s' : 'IOPS');

async function main(): Promise<void> {
  for (const tool of ['qemu-img', 'qemu-storage-daemon', 'fio', 'strace', 'tgtd', 'virsh']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is missing: make setup installs it`);
  }
  if (!/\bnbd\b/.test(spawnSync('fio', ['--enghelp'], { encoding: 'utf8' }).stdout)) throw new Error("this fio has no nbd engine (Debian's has, with libnbd)");
  const { cleanup, close } = cleanupStack();
  let closing = false;
  const onSignal = (): void => {
    if (closing) return;
    closing = true;
    void close().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    cleanup(await ensureLibvirtd());
    const dir = mkdtempSync(join(tmpdir(), 'vit-disk-'));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const chosen = VARIANTS.filter((v) => v.id === 'ours' || !ONLY || ONLY.includes(v.id));

    // One tgtd per thread count, one target per target-side variant.
    const tgtds = new Map<number, Tgtd>();
    const luns = new Map<string, Lun>();
    for (const v of chosen) {
      const key = targetKey(v.target);
      if (luns.has(key)) continue;
      const threads = v.target.threads ?? 0;
      let tgtd = tgtds.get(threads);
      if (!tgtd) {
        tgtd = await startTgtd(threads ? { args: ['--nr_iothreads', String(threads)] } : {});
        const t = tgtd;
        cleanup(() => t.stop());
        tgtds.set(threads, tgtd);
      }
      const tid = luns.size + 1;
      const iqn = `${IQN_PREFIX}.${tid}`;
      const image = join(dir, `lun${tid}.img`);
      makeImage(image, v.target.image);
      const adm = (args: string[]): string => tgtd!.tgtadm(['--lld', 'iscsi', ...args]);
      adm(['--op', 'new', '--mode', 'target', '--tid', String(tid), '--targetname', iqn]);
      adm(['--op', 'new', '--mode', 'logicalunit', '--tid', String(tid), '--lun', '1', '--backing-store', image, '--bstype', v.target.bsType]);
      if (!v.target.writeCache) adm(['--op', 'update', '--mode', 'logicalunit', '--tid', String(tid), '--lun', '1', '--params', WRITE_CACHE_OFF_PAGE]);
      for (const [name, val] of v.target.params) adm(['--op', 'update', '--mode', 'target', '--tid', String(tid), '--name', name, '--value', val]);
      adm(['--op', 'bind', '--mode', 'target', '--tid', String(tid), '--initiator-name', INITIATOR]);
      luns.set(key, { tgtd, iqn, image, spec: v.target });
    }

    // The disk XML as export writes it, then the variants' QEMU options.
    const disks = new Map<string, QemuDisk>();
    const seen = new Map<string, string>();
    const rows: Row[] = [];
    for (const v of chosen) {
      const lun = luns.get(targetKey(v.target))!;
      const [host, port] = lun.tgtd.portal.split(':') as [string, string];
      const source: NetworkSource = { type: 'network', protocol: 'iscsi', target: lun.iqn, lun: 1, hosts: [{ name: host, port: Number(port) }], initiator: INITIATOR };
      const base = diskFor(source, 'disk', { dev: 'sda', bus: 'scsi' });
      const disk: DiskDef = v.client.cache || v.client.io ? { ...base, driver: { ...base.driver, ...v.client } } : base;
      const q = qemuOptionsFor(disk, dir);
      const key = `${q.key}|${targetKey(v.target)}`;
      const sameAs = v.replica ? undefined : seen.get(key);
      if (!seen.has(key)) seen.set(key, v.id);
      disks.set(v.id, q);
      rows.push({ id: v.id, label: v.label, safe: false, syncsOnFlush: 0, cacheMode: cacheMode(q), ...(sameAs ? { sameAs } : {}), results: {}, runs: {} });
    }
    const measured = rows.filter((r) => !r.sameAs);

    process.stderr.write('safety: writes and a flush through each variant, tgtd traced\n');
    for (const r of measured) {
      const v = chosen.find((x) => x.id === r.id)!;
      r.syncsOnFlush = await syncsOnFlush(disks.get(r.id)!, luns.get(targetKey(v.target))!, dir);
      r.safe = r.syncsOnFlush > 0;
    }

    const fill = Buffer.alloc(1 << 20, 0xa5);
    const filled = new Set<Lun>();
    const prepare = (lun: Lun, w: Workload): void => {
      if (isWrite(w)) {
        filled.delete(lun);
        // A sparse image gets its region back as holes: every write allocates, as on a new disk.
        if (lun.spec.image === 'sparse') execFileSync('fallocate', ['--punch-hole', '--offset', '0', '--length', `${REGION_MIB}M`, lun.image]);
        return;
      }
      if (filled.has(lun)) return;
      filled.add(lun);
      const fd = openSync(lun.image, 'r+');
      try {
        for (let i = 0; i < REGION_MIB; i++) writeSync(fd, fill, 0, fill.length, i << 20);
      } finally {
        closeSync(fd);
      }
      execFileSync('sync', [lun.image]);
    };

    for (let round = 1; round <= ROUNDS; round++) {
      for (let i = 0; i < measured.length; i++) {
        const r = measured[(i + round) % measured.length]!;
        const v = chosen.find((x) => x.id === r.id)!;
        const lun = luns.get(targetKey(v.target))!;
        const q = disks.get(r.id)!;
        process.stderr.write(`round ${round}/${ROUNDS}: ${r.label}\n`);
        // Writes first (each on fresh holes when sparse), then reads of data written before.
        for (const w of [...WORKLOADS.filter(isWrite), ...WORKLOADS.filter((x) => !isWrite(x))]) {
          prepare(lun, w);
          const m = w.tool === 'qemu-img' ? runQemuImg(q, w) : await runFio(q, w, dir);
          (r.runs[w.id] ??= []).push(Math.round(value(w, m) * 10) / 10);
        }
      }
    }

    for (const r of measured) for (const w of WORKLOADS) r.results[w.id] = Math.round(median(r.runs[w.id]!) * 10) / 10;
    for (const r of rows.filter((x) => x.sameAs)) {
      const twin = rows.find((x) => x.id === r.sameAs)!;
      Object.assign(r, { safe: twin.safe, syncsOnFlush: twin.syncsOnFlush, results: twin.results });
    }
    const ours = rows.find((r) => r.id === 'ours')!;
    const ids = WORKLOADS.map((w) => w.id);
    for (const r of rows) r.score = Math.round(Math.exp(ids.reduce((s, id) => s + Math.log(r.results[id]! / ours.results[id]!), 0) / ids.length) * 1000) / 1000;
    const safe = rows.filter((r) => r.safe && !r.sameAs);
    const best = safe.reduce((a, b) => (b.score! > a.score! ? b : a));
    const within = ours.score! >= best.score! * 0.95;

    const cols = WORKLOADS.map((w) => ({ w, head: w.id.replace(' QD', '/') }));
    const lines = [
      `What the VM's disk gets: ${IMAGE_MIB} MiB image, I/O in its first ${REGION_MIB} MiB; medians of ${ROUNDS} rounds; 128K: MB/s, 4K: IOPS`,
      `seq: qemu-img bench through QEMU's iscsi driver; rand: fio -> NBD -> qemu-storage-daemon -> the iscsi driver; both with libvirt's -blockdev options for the disk`,
      `${'variant'.padEnd(34)}${'safe'.padEnd(6)}${'score'.padStart(6)}  ${cols.map((c) => c.head.padStart(18)).join('')}`,
      ...rows.map(
        (r) =>
          `${r.label.slice(0, 33).padEnd(34)}${(r.safe ? 'yes' : 'NO').padEnd(6)}${pad(r.score!.toFixed(2), 6)}  ${r.sameAs ? `  same QEMU options as ${r.sameAs}` : cols.map((c) => pad(r.results[c.w.id]!, 18)).join('')}`,
      ),
      '',
      `best safe variant: ${best.label} (score ${best.score!.toFixed(2)}); today's default scores ${ours.score!.toFixed(2)}: ${within ? 'within' : 'NOT within'} 5%`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    const q = disks.get('ours')!;
    const reproduce = {
      qemuImg: `qemu-img ${qemuImgArgs(q, WORKLOADS[0]!)
        .map((a) => (a.startsWith('json:') ? `'${a}'` : a))
        .join(' ')}`,
      qsd: `GLIBC_TUNABLES=${QSD_MALLOC} qemu-storage-daemon ${qsdArgs(q, 'SOCK')
        .map((a) => (a.startsWith('{') ? `'${a}'` : a))
        .join(' ')}`,
      fio: `fio ${fioArgs(q, WORKLOADS.find((w) => w.id === 'rand read 4K QD32')!, 'SOCK', 'out.json').join(' ')}`,
    };
    const out = {
      date: new Date().toISOString(),
      machine: machine(),
      versions: {
        qemu: execFileSync('qemu-img', ['--version'], { encoding: 'utf8' }).split('\n')[0],
        tgtd: execFileSync('tgtd', ['--version'], { encoding: 'utf8' }).trim(),
        fio: execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim(),
      },
      imageMiB: IMAGE_MIB,
      regionMiB: REGION_MIB,
      rounds: ROUNDS,
      workloads: WORKLOADS.map((w) => ({ ...w, unit: unit(w) })),
      variants: rows.map((r) => ({ ...r, spec: chosen.find((v) => v.id === r.id), qemu: { blockdevs: disks.get(r.id)!.blockdevs, writeCache: disks.get(r.id)!.writeCache } })),
      bestSafe: best.id,
      oursWithin5Percent: within,
      reproduce,
    };
    writeFileSync(join(root, 'bench', 'disk-speed.json'), `${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write('written to bench/disk-speed.json\n');
  } finally {
    if (!closing) await close();
  }
}

// Run as a program (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
