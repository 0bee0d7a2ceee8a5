// A real Linux guest for tests that need a running OS in the VM: Debian's cloud kernel and
// a busybox initramfs (linux-guest-build.sh, cached under /var/tmp/virt-iscsi-guest),
// booted by libvirt under TCG (a stock kernel hangs under this kind of host's KVM, and
// most have no /dev/kvm). The guest runs commands sent over a virtio-serial port (the
// protocol is described in linux-guest-init.sh) and can keep writing a known pattern to a
// disk while a test resizes, restarts or migrates what is under it.
//
//   const g = await startGuest({ name: 'resize', disks: [iscsiDisk] });
//   const { dev } = await g.waitForDisk('sda');
//   await g.startWriter(dev);  ...  const w = await g.stopWriter();  // w.errors, w.mismatches
//   await g.destroy();
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { attr, buildXml, child, children, parseXml } from '../../src/xml/codec.js';
import { diskNode, type DiskDef } from '../../src/xml/disk.js';
import { parseDomain } from '../../src/xml/domain.js';
import { quoteArg } from '../../src/runner/quote.js';
import { LIBVIRT_URI } from './libvirt.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const GUEST_CACHE = process.env.GUEST_CACHE ?? '/var/tmp/virt-iscsi-guest';
/** The virtio-serial port name the guest's agent listens on (linux-guest-init.sh). */
export const AGENT_PORT_NAME = 'org.virt-iscsi.agent.0';

function exec(file: string, args: readonly string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** `virsh -c qemu:///system ARGS` without blocking the event loop (the agent socket keeps reading). */
export async function virshAsync(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  return (await exec('virsh', ['-c', LIBVIRT_URI, ...args], timeoutMs)).stdout;
}

// ---------------------------------------------------------------------------------------
// Build (once per machine) and reuse

export interface GuestImage {
  dir: string;
  kernel: string;
  initrd: string;
  kernelRelease: string;
  /** Time linux-guest-build.sh took in this process (a reuse costs one apt-cache call). */
  ms: number;
}

let image: Promise<GuestImage> | undefined;

/** Builds the guest or reuses the cached one; once per process. */
export function guestImage(): Promise<GuestImage> {
  image ??= (async () => {
    const t0 = Date.now();
    const { stdout } = await exec('bash', [join(HERE, 'linux-guest-build.sh')], 900_000);
    const dir = stdout.trim().split('\n').pop()!;
    const info = readFileSync(join(dir, 'info'), 'utf8');
    return {
      dir,
      kernel: join(dir, 'vmlinuz'),
      initrd: join(dir, 'initrd.gz'),
      kernelRelease: /^kernel_release=(.*)$/m.exec(info)?.[1] ?? 'unknown',
      ms: Date.now() - t0,
    };
  })();
  image.catch(() => (image = undefined));
  return image;
}

// ---------------------------------------------------------------------------------------
// Domain XML

export interface GuestXmlOptions {
  name: string;
  kernel: string;
  initrd: string;
  consoleLog: string;
  agentSocket: string;
  memoryMiB?: number;
  /** Disks present from boot (hot-plug more with virsh attach-device). */
  disks?: readonly DiskDef[];
  /** More device XML, put inside <devices> as given. */
  extraXml?: string;
  cmdline?: string;
}

/**
 * A TCG domain that boots the guest kernel directly: ACPI on (PCI hot-plug), a virtio-scsi
 * controller for hot-plugged disks and CD-ROMs, the console on a serial port written to a
 * file, the agent on a virtio-serial channel (a unix socket QEMU listens on), no network,
 * no USB, no balloon.
 */
export function guestDomainXml(o: GuestXmlOptions): string {
  const xml = buildXml({
    domain: {
      '@type': 'qemu',
      name: o.name,
      memory: { '@unit': 'MiB', '#text': String(o.memoryMiB ?? 256) },
      vcpu: '1',
      os: {
        type: { '@arch': 'x86_64', '@machine': 'pc', '#text': 'hvm' },
        kernel: o.kernel,
        initrd: o.initrd,
        cmdline: o.cmdline ?? 'console=ttyS0 panic=-1',
      },
      features: { acpi: '', apic: '' },
      on_poweroff: 'destroy',
      on_reboot: 'destroy',
      on_crash: 'destroy',
      devices: {
        disk: (o.disks ?? []).map(diskNode),
        controller: [
          { '@type': 'scsi', '@index': '0', '@model': 'virtio-scsi' },
          { '@type': 'virtio-serial', '@index': '0' },
          { '@type': 'usb', '@model': 'none' },
        ],
        serial: { '@type': 'file', source: { '@path': o.consoleLog }, target: { '@port': '0' } },
        channel: { '@type': 'unix', source: { '@mode': 'bind', '@path': o.agentSocket }, target: { '@type': 'virtio', '@name': AGENT_PORT_NAME } },
        memballoon: { '@model': 'none' },
      },
    },
  });
  return o.extraXml ? xml.replace('</devices>', `${o.extraXml}</devices>`) : xml;
}

// ---------------------------------------------------------------------------------------
// The agent connection

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

interface Pending {
  out: string[];
  err: string[];
  into: 'out' | 'err' | undefined;
  resolve(r: RunResult): void;
  reject(e: Error): void;
}

class Agent {
  private sock: Socket | undefined;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private queue: Promise<unknown> = Promise.resolve();
  private hello: (() => void) | undefined;
  private closedWith: Error | undefined;

  /**
   * Connects (the socket appears when QEMU starts) and waits until the agent answers: its
   * HELLO (it says that on each open of its port), or a ping. The ping covers a reconnect the
   * guest did not notice: a quick close and connect may never show it end-of-file, so its
   * agent keeps reading the port it has open and says no HELLO.
   */
  async open(path: string, timeoutMs: number, describe: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let ready!: () => void;
    const answered = new Promise<void>((resolve) => (ready = resolve));
    this.hello = () => ready();
    for (;;) {
      try {
        this.sock = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`no agent socket at ${path} after ${timeoutMs} ms: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d: string) => this.onData(d));
    this.sock.on('close', () => this.fail(new Error('the guest agent socket closed (QEMU stopped?)')));
    this.sock.on('error', (e) => this.fail(e));
    const ping = (): void => void this.send('true', 5000).then(ready, () => undefined);
    const pinger = setInterval(ping, 5000);
    ping();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the guest agent did not answer within ${timeoutMs} ms\n${describe()}`)), Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([answered, timedOut]);
    } finally {
      clearTimeout(timer);
      clearInterval(pinger);
    }
  }

  private fail(e: Error): void {
    this.closedWith ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    const m = /^@@VI (\S+) (\S+)(?: (\S+))?$/.exec(line);
    if (m) {
      if (m[1] === 'HELLO') return this.hello?.();
      const p = this.pending.get(Number(m[1]));
      if (!p) return; // an answer nobody waits for any more (it timed out)
      if (m[2] === 'OUT') p.into = 'out';
      else if (m[2] === 'ERR') p.into = 'err';
      else if (m[2] === 'END') {
        this.pending.delete(Number(m[1]));
        const decode = (lines: string[]): string => Buffer.from(lines.join(''), 'base64').toString('utf8');
        p.resolve({ stdout: decode(p.out), stderr: decode(p.err), exitCode: Number(m[3]) });
      }
      return;
    }
    const p = [...this.pending.values()].find((x) => x.into !== undefined);
    if (p && p.into) p[p.into].push(line.trim());
  }

  /** One command at a time: the guest answers in order, and a timeout counts from the send. */
  run(cmd: string, timeoutMs: number): Promise<RunResult> {
    const next = this.queue.then(() => this.send(cmd, timeoutMs));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private send(cmd: string, timeoutMs: number): Promise<RunResult> {
    if (this.closedWith || !this.sock) return Promise.reject(this.closedWith ?? new Error('the guest agent is not connected'));
    const id = this.nextId++;
    // The guest kills the command (SIGKILL) after `secs`; the host waits a little longer.
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    return new Promise<RunResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`guest command did not answer within ${timeoutMs + 10_000} ms: ${cmd}`));
      }, timeoutMs + 10_000);
      this.pending.set(id, {
        out: [],
        err: [],
        into: undefined,
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.sock!.write(`${id} ${secs} ${Buffer.from(cmd, 'utf8').toString('base64')}\n`);
    });
  }

  close(): void {
    this.fail(new Error('the guest was destroyed'));
    this.sock?.destroy();
  }
}

// ---------------------------------------------------------------------------------------
// The writer's pattern

export interface WriterOptions {
  /** First block of the region written (in blockSize units). Default 0. */
  firstBlock?: number;
  /** Blocks in the region, written in turn. Default 64. */
  blocks?: number;
  /** Bytes per write. Default 4096. */
  blockSize?: number;
}

export interface WriterResult {
  dev: string;
  firstBlock: number;
  blocks: number;
  blockSize: number;
  /** Writes done (failed ones included). */
  blocksWritten: number;
  /** Failed writes (dd's status and message) and kernel "I/O error"-type lines since start. */
  errors: string[];
  /** Kernel log lines since start that mention the SCSI layer giving up or resetting. */
  kernelWarnings: string[];
  /** Writes that took 1 s or more: "gen=N blk=B ms=MS". */
  stalls: string[];
  maxWriteMs: number;
  elapsedMs: number;
  /** Blocks whose content read back in the guest is not the last write to them. */
  mismatches: string[];
}

/** What block `b` must hold after `writes` writes, or undefined if none reached it. */
export function expectedGen(b: number, writes: number, firstBlock: number, blocks: number): number | undefined {
  const k = b - firstBlock;
  if (k < 0 || k >= blocks || writes <= k) return undefined;
  return k + blocks * Math.floor((writes - 1 - k) / blocks);
}

/**
 * Checks the writer's pattern in blocks read back anywhere (in the guest, or on the host
 * from the image file): `read(b)` gives the block's first line ('' for zeros). A block whose
 * last write failed may hold that write or any earlier one.
 */
export function checkPattern(read: (block: number) => string, w: Pick<WriterResult, 'firstBlock' | 'blocks' | 'blocksWritten' | 'errors'>): string[] {
  const failed = new Set<number>();
  for (const e of w.errors) {
    const m = /^gen=(\d+) /.exec(e);
    if (m) failed.add(Number(m[1]));
  }
  const bad: string[] = [];
  for (let b = w.firstBlock; b < w.firstBlock + w.blocks; b++) {
    const want = expectedGen(b, w.blocksWritten, w.firstBlock, w.blocks);
    const got = read(b).replace(/\0/g, '').trim();
    if (want === undefined) {
      if (got !== '') bad.push(`block ${b}: expected never written, found ${JSON.stringify(got)}`);
      continue;
    }
    const m = /^VIW blk=(\d+) gen=(\d+)$/.exec(got);
    const gen = m ? Number(m[2]) : undefined;
    const ok = m && Number(m[1]) === b && (gen === want || (failed.has(want) && gen! < want && (gen! - want) % w.blocks === 0));
    if (!ok) bad.push(`block ${b}: expected "VIW blk=${b} gen=${want}", found ${JSON.stringify(got)}`);
  }
  return bad;
}

const KERNEL_IO_ERROR = /I\/O error|critical (medium|target|nexus|transport|space allocation) error|blk_update_request|Buffer I\/O/i;
const KERNEL_SCSI_TROUBLE = /abort|timing out command|device reset|host reset|offlin|rejecting I\/O|Unhandled/i;

// ---------------------------------------------------------------------------------------
// The guest

export interface GuestDisk {
  /** The guest's block device name: sda, sr0, vdb... */
  dev: string;
  sizeBytes: number;
}

/** A string like sdb, vdc or hdc is a libvirt target dev; any other string is a serial. */
export type DiskRef = string | { target: string } | { serial: string };

export interface StartGuestOptions {
  /** A short tag; the domain is named vit-guest-TAG-RANDOM. */
  name: string;
  disks?: readonly DiskDef[];
  extraXml?: string;
  memoryMiB?: number;
  /** HELLO from the agent within this long after `virsh start`. Default 180 s (TCG, busy host). */
  bootTimeoutMs?: number;
}

export interface Guest {
  readonly domain: string;
  /** ms from `virsh start` to the agent's HELLO. */
  readonly bootMs: number;
  readonly runDir: string;
  /** Runs a sh script in the guest; resolves whatever its exit status (rejects on timeout). */
  run(cmd: string, opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** run() that rejects on a non-zero exit, with stderr; resolves stdout. */
  sh(cmd: string, opts?: { timeoutMs?: number }): Promise<string>;
  /** Waits until the guest has the disk: by libvirt target dev (sdb) or by serial. */
  waitForDisk(ref: DiskRef, opts?: { timeoutMs?: number }): Promise<GuestDisk>;
  /** /sys/block/DEV/size in bytes. */
  diskSize(dev: string): Promise<number>;
  /** Asks the SCSI layer to re-read the device's capacity (echo 1 > .../rescan). */
  rescan(dev: string): Promise<void>;
  startWriter(dev: string, opts?: WriterOptions): Promise<void>;
  /** "WRITES MAX_MS" of the running writer. */
  writerProgress(): Promise<{ writes: number; maxWriteMs: number }>;
  stopWriter(): Promise<WriterResult>;
  /** The kernel console (ttyS0) so far. */
  consoleLog(): string;
  /**
   * Drops the agent connection and opens the socket again (after a live migration, the
   * domain's QEMU, and so the socket's listener, is a new process). Commands in flight fail.
   */
  reconnect(opts?: { timeoutMs?: number }): Promise<void>;
  /** Stops the domain, undefines it, removes the run dir. Safe to call twice. */
  destroy(): Promise<void>;
}

const DEV = /^[a-z]+[0-9]*$/;

export async function startGuest(opts: StartGuestOptions): Promise<Guest> {
  if (!/^[A-Za-z0-9-]{1,24}$/.test(opts.name)) throw new Error(`guest name tag ${JSON.stringify(opts.name)}: expected 1-24 letters, digits or '-'`);
  const img = await guestImage();
  const domain = `vit-guest-${opts.name}-${randomBytes(3).toString('hex')}`;
  const runDir = join(GUEST_CACHE, 'run', domain);
  mkdirSync(runDir, { recursive: true });
  // libvirt relabels kernel and initrd for QEMU's user while the domain runs; a private copy
  // keeps guests that run at the same time from changing the cached files' owner under
  // each other.
  const kernel = join(runDir, 'vmlinuz');
  const initrd = join(runDir, 'initrd.gz');
  copyFileSync(img.kernel, kernel);
  copyFileSync(img.initrd, initrd);
  const consoleLog = join(runDir, 'console.log');
  const agentSocket = join(runDir, 'agent.sock');
  const xmlFile = join(runDir, 'domain.xml');
  const xml = guestDomainXml({ name: domain, kernel, initrd, consoleLog, agentSocket, memoryMiB: opts.memoryMiB, disks: opts.disks, extraXml: opts.extraXml });
  writeFileSync(xmlFile, xml);

  let agent = new Agent();
  let destroyed = false;
  const readConsole = (): string => (existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '');
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    agent.close();
    await virshAsync(['destroy', domain]).catch(() => undefined);
    await virshAsync(['undefine', domain]).catch(() => undefined);
    rmSync(runDir, { recursive: true, force: true });
  };

  let bootMs = 0;
  try {
    await virshAsync(['define', xmlFile]);
    const t0 = Date.now();
    await virshAsync(['start', domain]);
    const timeout = opts.bootTimeoutMs ?? 180_000;
    await agent.open(agentSocket, timeout, () => `console (${consoleLog}):\n${readConsole().slice(-3000)}`);
    bootMs = Date.now() - t0;
  } catch (e) {
    await destroy();
    throw e;
  }

  const run = (cmd: string, o: { timeoutMs?: number } = {}): Promise<RunResult> => agent.run(cmd, o.timeoutMs ?? 60_000);
  const sh = async (cmd: string, o: { timeoutMs?: number } = {}): Promise<string> => {
    const r = await run(cmd, o);
    if (r.exitCode !== 0) throw new Error(`guest command failed (exit ${r.exitCode}): ${cmd}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const checkDev = (given: string): string => {
    const dev = given.replace(/^\/dev\//, '');
    if (!DEV.test(dev)) throw new Error(`not a guest block device name: ${JSON.stringify(dev)} (expected e.g. sda, sr0, vdb)`);
    return dev;
  };
  const diskSize = async (dev: string): Promise<number> => Number((await sh(`cat /sys/block/${checkDev(dev)}/size`)).trim()) * 512;

  /** A guest shell snippet that prints the matching block device names. */
  const finder = async (ref: DiskRef): Promise<string> => {
    const target = typeof ref === 'string' ? (/^(sd|vd|hd)[a-z]+$/.test(ref) ? ref : undefined) : 'target' in ref ? ref.target : undefined;
    const serial = typeof ref === 'string' ? (target ? undefined : ref) : 'serial' in ref ? ref.serial : undefined;
    if (target) {
      const live = await virshAsync(['dumpxml', domain]);
      const disk = parseDomain(live).disks.find((d) => d.target.dev === target);
      if (!disk) throw new Error(`domain ${domain} has no disk with target dev ${target}`);
      const a = disk.address;
      if (a?.type === 'drive') {
        // The controller's PCI address puts the guest's SCSI host in its sysfs path.
        const ctl = children(child(child(parseXml(live, ['controller']), 'domain'), 'devices'), 'controller').find(
          (c) => attr(c, 'type') === 'scsi' && attr(c, 'index') === String(a.controller),
        );
        const pci = child(ctl, 'address');
        const hex = (name: string, digits: number): string => Number(attr(pci, name)).toString(16).padStart(digits, '0');
        const pciPath = pci ? `${hex('domain', 4)}:${hex('bus', 2)}:${hex('slot', 2)}.${hex('function', 1)}` : '';
        if (pciPath !== '' && !/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(pciPath)) {
          throw new Error(`controller scsi index ${a.controller} of ${domain} has an odd PCI address ${JSON.stringify(pci)}`);
        }
        return `for d in /sys/bus/scsi/devices/*:${a.bus}:${a.target}:${a.unit}; do
          case "$(readlink -f "$d")" in *${pciPath}/*) ls "$d/block" 2>/dev/null ;; esac; done; true`;
      }
      if (a?.type === 'pci') {
        const pciPath = `${a.domain.toString(16).padStart(4, '0')}:${a.bus.toString(16).padStart(2, '0')}:${a.slot.toString(16).padStart(2, '0')}.${a.function}`;
        return `ls /sys/bus/pci/devices/${pciPath}/virtio*/block 2>/dev/null`;
      }
      throw new Error(`disk ${target} of ${domain} has no address yet`);
    }
    // SCSI disks and CD-ROMs carry the serial in VPD page 0x80 (4 header bytes), virtio-blk in /serial.
    return `for b in /sys/block/*; do n=\${b##*/}
      s=$( (tail -c +5 "$b/device/vpd_pg80" || cat "$b/serial") 2>/dev/null | tr -d '\\0')
      [ "$s" = ${quoteArg(serial!)} ] && echo "$n"; done; true`;
  };

  const waitForDisk = async (ref: DiskRef, o: { timeoutMs?: number } = {}): Promise<GuestDisk> => {
    const timeoutMs = o.timeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const script = await finder(ref).catch((e: Error) => e);
      if (typeof script === 'string') {
        const dev = (await sh(script)).trim().split('\n')[0] ?? '';
        if (dev !== '') return { dev: checkDev(dev), sizeBytes: await diskSize(dev) };
      } else if (Date.now() > deadline) throw script;
      if (Date.now() > deadline) {
        const seen = await sh('ls /sys/block; dmesg | grep -iE "scsi|sd |sr " | tail -20').catch(() => '');
        throw new Error(`the guest did not see disk ${JSON.stringify(ref)} within ${timeoutMs} ms; it has:\n${seen}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  let writer: (Omit<WriterResult, 'blocksWritten' | 'errors' | 'kernelWarnings' | 'stalls' | 'maxWriteMs' | 'elapsedMs' | 'mismatches'> & { dir: string; dmesgFrom: number }) | undefined;
  let writers = 0;

  const startWriter = async (dev: string, o: WriterOptions = {}): Promise<void> => {
    if (writer) throw new Error(`a writer already runs on ${writer.dev}; stop it first`);
    dev = checkDev(dev);
    const firstBlock = o.firstBlock ?? 0;
    const blocks = o.blocks ?? 64;
    const blockSize = o.blockSize ?? 4096;
    for (const [k, v] of Object.entries({ firstBlock, blocks, blockSize })) {
      if (!Number.isInteger(v) || v < (k === 'firstBlock' ? 0 : 1)) throw new Error(`writer ${k} must be a whole number (got ${v})`);
    }
    const dir = `/tmp/vi-writer-${++writers}`;
    const dmesgFrom = Number((await sh('dmesg | wc -l')).trim());
    await sh(`setsid vi-writer /dev/${checkDev(dev)} ${firstBlock} ${blocks} ${blockSize} ${dir} </dev/null >/dev/null 2>&1 &
      n=0; until [ -s ${dir}/progress ] || [ -s ${dir}/errors ]; do n=$((n+1)); [ $n -gt 300 ] && exit 1; sleep 0.1; done`);
    writer = { dev, firstBlock, blocks, blockSize, dir, dmesgFrom };
  };

  const writerProgress = async (): Promise<{ writes: number; maxWriteMs: number }> => {
    if (!writer) throw new Error('no writer runs');
    const [writes, max] = (await sh(`cat ${writer.dir}/progress`)).trim().split(' ').map(Number);
    return { writes: writes ?? 0, maxWriteMs: max ?? 0 };
  };

  const stopWriter = async (): Promise<WriterResult> => {
    const w = writer;
    if (!w) throw new Error('no writer runs');
    writer = undefined;
    const d = w.dir;
    // A write stuck on a dead disk holds the writer up to the SCSI layer's timeouts.
    const out = await sh(`touch ${d}/stop; until [ -e ${d}/result ]; do sleep 0.1; done
      cat ${d}/result; echo @@errors; cat ${d}/errors; echo @@stalls; cat ${d}/stalls
      echo @@dmesg; dmesg | tail -n +${w.dmesgFrom + 1}`, { timeoutMs: 300_000 });
    const [head, rest] = [out.slice(0, out.indexOf('@@errors')), out.slice(out.indexOf('@@errors'))];
    const [writes, maxWriteMs, elapsedMs] = head.trim().split(' ').map(Number);
    const section = (name: string): string[] => {
      const m = new RegExp(`@@${name}\\n([\\s\\S]*?)(?=@@|$)`).exec(rest);
      return (m?.[1] ?? '').split('\n').filter((l) => l.trim() !== '');
    };
    const dmesg = section('dmesg');
    const result: WriterResult = {
      dev: w.dev,
      firstBlock: w.firstBlock,
      blocks: w.blocks,
      blockSize: w.blockSize,
      blocksWritten: writes ?? 0,
      errors: [...section('errors'), ...dmesg.filter((l) => KERNEL_IO_ERROR.test(l))],
      kernelWarnings: dmesg.filter((l) => KERNEL_SCSI_TROUBLE.test(l)),
      stalls: section('stalls'),
      maxWriteMs: maxWriteMs ?? 0,
      elapsedMs: elapsedMs ?? 0,
      mismatches: [],
    };
    // Read the region back with O_DIRECT (not the guest's cache): one line per block.
    const last = w.firstBlock + w.blocks - 1;
    const back = await sh(
      `for b in $(seq ${w.firstBlock} ${last}); do
         echo "$b $(dd if=/dev/${w.dev} bs=${w.blockSize} skip=$b count=1 iflag=direct status=none | head -c 64 | tr -d '\\0' | head -n 1)"; done`,
      { timeoutMs: 120_000 },
    );
    const lines = new Map<number, string>();
    for (const l of back.split('\n')) {
      const m = /^(\d+) ?(.*)$/.exec(l);
      if (m) lines.set(Number(m[1]), m[2]!);
    }
    result.mismatches = checkPattern((b) => lines.get(b) ?? '', result);
    return result;
  };

  return {
    domain,
    bootMs,
    runDir,
    run,
    sh,
    waitForDisk,
    diskSize,
    rescan: async (dev) => void (await sh(`echo 1 > /sys/block/${checkDev(dev)}/device/rescan`)),
    startWriter,
    writerProgress,
    stopWriter,
    consoleLog: readConsole,
    async reconnect(o = {}) {
      agent.close();
      agent = new Agent();
      await agent.open(agentSocket, o.timeoutMs ?? 60_000, () => `console (${consoleLog}):\n${readConsole().slice(-3000)}`);
    },
    destroy,
  };
}

/** The first line of each writer block, read from the image file on the host. */
export function readHostBlocks(file: string, w: WriterResult): (b: number) => string {
  const fd = openSync(file, 'r');
  const lines = new Map<number, string>();
  try {
    const buf = Buffer.alloc(64);
    for (let b = w.firstBlock; b < w.firstBlock + w.blocks; b++) {
      const n = readSync(fd, buf, 0, 64, b * w.blockSize);
      lines.set(b, buf.subarray(0, n).toString('latin1').split('\n')[0]!);
    }
  } finally {
    closeSync(fd);
  }
  return (b) => lines.get(b) ?? '';
}
