// `node --import tsx bench/stack-parse.ts`: reading and checking a stack file of 10,000
// exports (defaults, five keys each, every fifth a CD-ROM, every tenth with multipath
// portals), as `virt-iscsi apply -f` does. Each round runs in a fresh Node process (the
// time a user's run sees: no warmed-up JIT), timing readStackFile alone, not Node's start
// or module loading. Goal: the median wall time under 1 s. Prints the rounds (with the CPU
// time, which a busy machine inflates less), the median and the load average (the machine
// may be shared), and exits 1 when the goal is missed.
//   BENCH_ROUNDS=N (default 5), BENCH_EXPORTS=N (default 10000)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GOAL_MS = 1000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const EXPORTS = Number(process.env.BENCH_EXPORTS ?? 10_000);

/** A stack file as people write them, only longer. */
export function bigStack(n: number): string {
  const lines = [
    '# yaml-language-server: $schema=../schema/stack.schema.json',
    'stack: big',
    'defaults:',
    '  storage: ssh://root@stor1.example.com',
    '  hypervisor: ssh://root@kvm1.example.com',
    '  host-records: /var/lib/virt-iscsi/exports',
    'exports:',
  ];
  for (let i = 0; i < n; i++) {
    const iso = i % 5 === 4;
    lines.push(`  - image: /srv/iscsi/vm${i}-${iso ? 'install.iso' : 'data.img'}   # export ${i}`);
    lines.push(`    vm: web${i % 500}`);
    lines.push(`    name: e${i}`);
    lines.push(`    mode: ${i % 10 === 0 ? 'multipath' : 'direct'}`);
    if (i % 10 === 0) lines.push('    portals: [192.0.2.10, "192.0.2.11:3261"]', '    min-paths: 2');
    else lines.push('    portal: 192.0.2.10:3260');
    lines.push(`    persist: ${i % 3 !== 0}`);
  }
  return `${lines.join('\n')}\n`;
}

async function child(file: string): Promise<void> {
  const { readStackFile } = await import('../src/workflows/stack-file.js');
  const start = performance.now();
  const cpu = process.cpuUsage();
  const spec = await readStackFile(file);
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  process.stdout.write(`${JSON.stringify({ ms, cpuMs: (used.user + used.system) / 1000, exports: spec.exports.length })}\n`);
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'vit-bench-stack-'));
  try {
    const file = join(dir, 'big.yaml');
    const text = bigStack(EXPORTS);
    writeFileSync(file, text);
    const self = fileURLToPath(import.meta.url);
    const times: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', file], { encoding: 'utf8', maxBuffer: 1 << 20 });
      const { ms, cpuMs, exports } = JSON.parse(out.trim().split('\n').pop()!) as { ms: number; cpuMs: number; exports: number };
      if (exports !== EXPORTS) throw new Error(`read ${exports} exports, not ${EXPORTS}`);
      times.push(ms);
      process.stdout.write(`round ${r + 1}: ${ms.toFixed(0)} ms (CPU ${cpuMs.toFixed(0)} ms, all threads)\n`);
    }
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted.length % 2 ? sorted[sorted.length >> 1]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2;
    const load = loadavg().map((l) => l.toFixed(1)).join(' ');
    process.stdout.write(`stack file of ${EXPORTS} exports (${(text.length / 1024 ** 2).toFixed(1)} MiB): median ${median.toFixed(0)} ms (goal < ${GOAL_MS} ms), min ${sorted[0]!.toFixed(0)} ms; load average ${load}\n`);
    if (median >= GOAL_MS) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3]!);
else main();
