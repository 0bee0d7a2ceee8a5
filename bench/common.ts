// What the benchmarks under bench/ share: running a program with its wall time (and, when
// asked, its peak RSS from GNU time), medians, virsh, and bench/results.json, which several
// benchmarks fill, each under its own key.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LIBVIRT_URI } from '../test/helpers/libvirt.js';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const RESULTS = join(root, 'bench', 'results.json');

export interface RunOut {
  ms: number;
  stdout: string;
  stderr: string;
  /** Peak resident set of the process (and the children it waited for), KiB; with `rss`. */
  rssKb?: number;
}

export interface TimedOptions {
  env?: NodeJS.ProcessEnv;
  /** Measure the peak RSS with GNU time (/usr/bin/time -f %M); its own cost is a fork and exec. */
  rss?: boolean;
  timeoutMs?: number;
}

/** Runs a program to its end; its wall time, output and peak RSS. A failure throws with its output. */
export function timed(file: string, args: readonly string[], o: TimedOptions = {}): Promise<RunOut> {
  const rssFile = o.rss ? join(tmpdir(), `vit-bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`) : undefined;
  const [cmd, argv] = rssFile ? ['/usr/bin/time', ['-f', '%M', '-o', rssFile, file, ...args]] : [file, args];
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(cmd, argv, { cwd: root, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), o.timeoutMs ?? 3_600_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const ms = performance.now() - start;
      clearTimeout(timer);
      let rssKb: number | undefined;
      if (rssFile && existsSync(rssFile)) {
        // GNU time writes "Command exited with non-zero status N" before the number on failure.
        const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
        rssKb = Number(lines[lines.length - 1]);
        rmSync(rssFile, { force: true });
      }
      if (code !== 0) {
        const tail = (s: string): string => (s.length > 4000 ? `...${s.slice(-4000)}` : s);
        reject(new Error(`${[file, ...args].join(' ')} failed (${signal ?? `exit ${code}`}) after ${Math.round(ms)} ms\n${tail(stdout)}${tail(stderr)}`));
      } else resolve({ ms, stdout, stderr, ...(rssKb !== undefined && Number.isFinite(rssKb) ? { rssKb } : {}) });
    });
  });
}

/** Runs a program; its stdout. A failure throws with its stderr. */
export function run(file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...(env ? { env } : {}) }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

export const virsh = (args: readonly string[]): Promise<string> => run('virsh', ['-c', LIBVIRT_URI, ...args]);

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const pad = (s: string | number, n: number): string => String(s).padStart(n);

/** The machine, and its load average when the results were written (other work on it skews them). */
export function machine(): { cpus: number; cpu: string; memMiB: number; node: string; loadavg: number[] } {
  return { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', memMiB: Math.round(totalmem() / 2 ** 20), node: process.version, loadavg: loadavg().map((l) => Math.round(l * 100) / 100) };
}

/** bench/results.json as it is (an empty object when missing or unreadable). */
export function readResults(): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** Writes these keys into bench/results.json, keeping what other benchmarks wrote there. */
export function mergeResults(part: Record<string, unknown>): void {
  writeFileSync(RESULTS, `${JSON.stringify({ ...readResults(), ...part }, null, 2)}\n`);
}

/** The disks of a domain (target dev per line of `virsh domblklist`). */
export async function domainDisks(vm: string): Promise<string[]> {
  return (await virsh(['domblklist', vm]))
    .split('\n')
    .slice(2)
    .map((l) => l.trim())
    .filter(Boolean);
}
