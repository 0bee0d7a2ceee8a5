// Start-up cost of the CLI (`make bench-startup`, part of `make bench`): the wall time of a
// whole `node ENTRY ARGS` run for commands that do almost nothing else, so what is
// measured is Node's start and the loading of our modules and packages. Entries, run in
// turn (an order that turns each round) after a warm-up round that is not counted:
//   bundle    bin/virt-iscsi.js: the esbuild bundle (dist/bundle, npm run build makes it)
//   modules   dist/cli/run.js: tsc's output, one file per module, packages from node_modules
//   node -e 0 Node's own start, the floor
// Commands: --version; status with no exports (a private, empty state dir); xml disk.
// Each run's wall time, and its CPU time (user + system, from GNU time): on a machine
// that other work keeps busy the wall time swings by a second while the CPU time, which
// start-up costs almost all of, stays put. Prints the median wall and the mean CPU time
// (GNU time counts in 10 ms steps; the mean of many runs resolves less) and writes
// bench/results.json (key "startup", other keys kept).
//   BENCH_ROUNDS=N (default 25)   BENCH_STARTUP_EXTRA=name=entry.js,... (more entries)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, median, mergeResults, pad, root } from './common.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);

interface Entry {
  name: string;
  /** node's arguments before the command's. */
  argv: string[];
}

const entries: Entry[] = [
  { name: 'bundle', argv: [join(root, 'bin', 'virt-iscsi.js')] },
  { name: 'modules', argv: [join(root, 'dist', 'cli', 'run.js')] },
  ...(process.env.BENCH_STARTUP_EXTRA ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => {
      const [name, file] = pair.split('=') as [string, string];
      return { name, argv: [file] };
    }),
];

const state = mkdtempSync(join(tmpdir(), 'vit-startup-'));
try {
  for (const e of entries) if (!existsSync(e.argv[0]!)) throw new Error(`${e.argv[0]} is missing: run npm run build (make bench does)`);
  const commands: Array<{ name: string; args: string[] }> = [
    { name: '--version', args: ['--version'] },
    { name: 'status (no exports)', args: ['status'] },
    { name: 'xml disk', args: ['xml', 'disk', '--portal', '192.0.2.1', '--target', 'iqn.2001-04.com.example:storage.disk1', '--lun', '1', '--dev', 'sdb', '--bus', 'scsi'] },
  ];
  const env = { ...process.env, XDG_STATE_HOME: state };
  const once = (argv: readonly string[]): { ms: number; cpuMs: number; rssKb: number } => {
    const start = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '@@time %U %S %M', process.execPath, ...argv], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const ms = performance.now() - start;
    const t = /@@time ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr);
    if (r.status !== 0 || !t) throw new Error(`node ${argv.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
    return { ms, cpuMs: (Number(t[1]) + Number(t[2])) * 1000, rssKb: Number(t[3]) };
  };
  const runs = new Map<string, Array<{ ms: number; cpuMs: number; rssKb: number }>>();
  const key = (entry: string, command: string): string => `${entry}\u0000${command}`;
  const jobs = [
    ...entries.flatMap((e) => commands.map((c) => ({ entry: e.name, command: c.name, argv: [...e.argv, ...c.args] }))),
    { entry: 'node -e 0', command: 'node -e 0', argv: ['-e', '0'] },
  ];
  for (let round = 0; round <= ROUNDS; round++) {
    for (let i = 0; i < jobs.length; i++) {
      const j = jobs[(i + round) % jobs.length]!;
      const r = once(j.argv);
      if (round === 0) continue;
      const k = key(j.entry, j.command);
      runs.set(k, [...(runs.get(k) ?? []), r]);
    }
  }
  const rows = jobs.map((j) => {
    const xs = runs.get(key(j.entry, j.command))!;
    const wall = xs.map((x) => x.ms);
    return {
      entry: j.entry,
      command: j.command,
      ms: Math.round(median(wall)),
      minMs: Math.round(Math.min(...wall)),
      maxMs: Math.round(Math.max(...wall)),
      cpuMs: Math.round(xs.reduce((a, x) => a + x.cpuMs, 0) / xs.length),
      rssMiB: Math.round(median(xs.map((x) => x.rssKb)) / 102.4) / 10,
    };
  });
  const floor = rows.find((r) => r.entry === 'node -e 0')!;
  const lines = [
    `CLI start-up, ${ROUNDS} runs each: CPU ms (mean), wall ms (median); node -e 0: CPU ${floor.cpuMs} ms, wall ${floor.ms} ms`,
    `${'command'.padEnd(22)}${entries.map((e) => pad(e.name, 18)).join('')}`,
  ];
  for (const c of commands) {
    lines.push(
      `${c.name.padEnd(22)}${entries
        .map((e) => {
          const r = rows.find((x) => x.entry === e.name && x.command === c.name)!;
          return pad(`${r.cpuMs} / ${r.ms}`, 18);
        })
        .join('')}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  mergeResults({ startup: { date: new Date().toISOString(), machine: machine(), rounds: ROUNDS, nodeFloor: { cpuMs: floor.cpuMs, ms: floor.ms }, rows } });
  process.stdout.write('written to bench/results.json (key "startup")\n');
} finally {
  rmSync(state, { recursive: true, force: true });
}
