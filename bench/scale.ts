// The scale benchmark (`make bench-scale`, part of `make bench`): what apply, status, a
// no-op apply and destroy of a stack with N exports cost, beside the raw commands for the
// same N (bench/raw-scale.sh: raw-export.sh once per export). Each N gets N sparse 4 MiB
// images spread over VMS running domains (with enough virtio-scsi controllers: libvirt puts
// 7 disks on one), a private tgtd, and a stack file pointing at both; everything runs with
// the built CLI (dist/, through bin/virt-iscsi.js, as users run it). Variants, side by side
// in an order that turns each round:
//   virt-iscsi, local   apply -f (peak RSS too), status --json, apply -f again, destroy -f
//   raw script, local   export N, status (tgtadm show, pool-list, domblklist), unexport N
//   virt-iscsi, ssh     the same stack with storage and hypervisor ssh:// (a real sshd on
//                       127.0.0.1): apply, status, no-op apply, destroy
// The raw script over SSH is left out: at one ssh call per command it takes ~3 s an export.
// Every cycle is checked outside its timing: the disks are in the domains, status lists N
// healthy exports, and nothing is left after destroy (disks, targets).
//
// Marginal cost at N: (T(N) - T(M)) / (N - M), M the next smaller N measured (T(N)/N when
// there is none): what one more export costs once N are there, start-up left out.
// Goals (checked at the N they name, when measured; exit 1 when one is missed):
//   apply: marginal <= 1.2x the raw script's, at N = 50 and 200; destroy likewise
//   status of 200: <= 2 s locally, <= 3 s over SSH; no-op apply of 200: <= 3 s
//   peak RSS of apply of 200: <= 150 MB
// Writes bench/results.json (key "scale", other keys kept) and bench/scale.svg.
//
//   BENCH_N=1,10,50,200   the Ns (default 1,10,50)
//   BENCH_ROUNDS=R        rounds per N (default 5 for N <= 10, 3 for N <= 50, else 1)
//   BENCH_VMS=4           domains the exports are spread over
//   BENCH_SSH=0           leave the SSH variant out
//   BENCH_SCALE_KEY=K     write results.json key K instead of "scale" (and no plot)
//   BENCH_RAW_MAX=50      run the raw script only for N up to 50
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLibvirtd, minimalDomainXml } from '../test/helpers/libvirt.js';
import { startSshd, type Sshd } from '../test/helpers/sshd.js';
import { startTgtd, type Tgtd } from '../test/helpers/tgtd.js';
import { cleanupStack } from '../test/helpers/cleanups.js';
import { devName } from '../src/hypervisor/placement.js';
import { domainDisks, machine, median, mergeResults, pad, readResults, root, timed, virsh, type RunOut } from './common.js';
import { writeScaleSvg } from './plot.js';
import { OPS, type Op, type Sample, type ScaleGoal, type ScaleResults, type ScaleRow, type Variant } from './scale-results.js';

const NS = (process.env.BENCH_N ?? '1,10,50').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_N: ${JSON.stringify(s)} is not a whole number >= 1`);
  return n;
});
const VMS = Number(process.env.BENCH_VMS ?? 4);
const SSH = process.env.BENCH_SSH !== '0';
/** The raw script runs for N up to this only (a run at large N that has the baseline's raw numbers). */
const RAW_MAX = Number(process.env.BENCH_RAW_MAX ?? Infinity);
/** The key of bench/results.json the run goes to (and, for "scale", the plot). */
const KEY = process.env.BENCH_SCALE_KEY ?? 'scale';
const roundsFor = (n: number): number => Number(process.env.BENCH_ROUNDS ?? 0) || (n <= 10 ? 5 : n <= 50 ? 3 : 1);
const IMAGE_MIB = 4;
const DISKS_PER_CONTROLLER = 7;
const CMD_TIMEOUT_MS = 3_600_000;

export { OPS, type Op, type Sample, type ScaleGoal, type ScaleResults, type ScaleRow, type Variant } from './scale-results.js';

interface Export {
  name: string;
  image: string;
  vm: string;
}


const yamlString = (s: string): string => JSON.stringify(s);

async function main(): Promise<void> {
  const { cleanup, close } = cleanupStack();
  let closing = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (closing) return;
    closing = true;
    process.stderr.write(`bench: ${sig}: cleaning up\n`);
    void close().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    cleanup(await ensureLibvirtd());
    const tgtd = await startTgtd();
    cleanup(() => tgtd.stop());
    const sshd = SSH ? await startSshd() : undefined;
    if (sshd) cleanup(() => sshd.stop());
    const id = `sc${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'vit-scale-'));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    for (const sub of ['img', 'tgt-conf', 'records', 'state-local', 'state-ssh', 'raw']) mkdirSync(join(dir, sub));

    // Pools left by a cycle that failed half-way (theirs are virt-iscsi-NAME, the script's raw-NAME).
    cleanup(async () => {
      for (const pool of (await virsh(['pool-list', '--all', '--name'])).split('\n').map((l) => l.trim())) {
        if (!pool.includes(id)) continue;
        await virsh(['pool-destroy', pool]).catch(() => undefined);
        await virsh(['pool-undefine', pool]).catch(() => undefined);
      }
    });

    const maxPerVm = Math.ceil(Math.max(...NS) / VMS);
    const controllers = Math.floor((maxPerVm - 1) / DISKS_PER_CONTROLLER) + 1;
    const vms = Array.from({ length: VMS }, (_, k) => `vit-${id}-${k}`);
    for (const vm of vms) {
      writeFileSync(join(dir, `${vm}.xml`), minimalDomainXml(vm, { scsiControllers: controllers }));
      await virsh(['define', join(dir, `${vm}.xml`)]);
      cleanup(() => virsh(['undefine', vm]));
      await virsh(['start', vm]);
      cleanup(() => virsh(['destroy', vm]));
    }

    const samples: Sample[] = [];
    let mode: string | undefined;
    const bench = new Bench(id, dir, tgtd, sshd, vms);
    const write = (): ScaleResults => {
      const results = summarize(samples, mode);
      mergeResults({ [KEY]: results });
      if (KEY === 'scale') writeScaleSvg(results, join(root, 'bench', 'scale.svg'), readResults().scaleBaseline as ScaleResults | undefined);
      return results;
    };

    process.stderr.write(`warm-up (N = 1, not counted)\n`);
    for (const v of bench.variants) await bench.cycle(v, bench.exports(1, 'w'), () => undefined);

    for (const n of NS) {
      const exports = bench.exports(n, `n${n}`);
      const rounds = roundsFor(n);
      for (let round = 1; round <= rounds; round++) {
        for (let i = 0; i < bench.variants.length; i++) {
          const v = bench.variants[(i + round) % bench.variants.length]!;
          process.stderr.write(`N = ${n}, round ${round}/${rounds}: ${v}\n`);
          if (v === 'raw script, local' && n > RAW_MAX) continue;
          // Written after each command: a run stopped part-way keeps what it measured.
          const record = (op: Op, r: RunOut): void => {
            samples.push({ n, variant: v, op, ms: r.ms, ...(r.rssKb !== undefined ? { rssKb: r.rssKb } : {}) });
            write();
          };
          await bench.cycle(v, exports, record, (m) => (mode ??= m));
        }
      }
      write();
    }
    const results = write();
    process.stdout.write(`${table(results)}\nwritten to bench/results.json (key "${KEY}")${KEY === 'scale' ? ' and bench/scale.svg' : ''}\n`);
    if (results.goals.some((g) => g.met === false)) process.exitCode = 1;
  } finally {
    if (!closing) await close();
  }
}

class Bench {
  readonly variants: Variant[];
  private readonly imagesMade = new Set<string>();

  constructor(
    readonly id: string,
    readonly dir: string,
    readonly tgtd: Tgtd,
    readonly sshd: Sshd | undefined,
    readonly vms: readonly string[],
  ) {
    this.variants = ['virt-iscsi, local', 'raw script, local', ...(sshd ? (['virt-iscsi, ssh'] as const) : [])];
  }

  /** N exports (images made once, sparse), spread over the domains in turn. */
  exports(n: number, tag: string): Export[] {
    return Array.from({ length: n }, (_, i) => {
      const image = join(this.dir, 'img', `${tag}-${i}.img`);
      if (!this.imagesMade.has(image)) {
        writeFileSync(image, '');
        truncateSync(image, IMAGE_MIB << 20);
        this.imagesMade.add(image);
      }
      return { name: `${this.id}-${tag}-${i}`, image, vm: this.vms[i % this.vms.length]! };
    });
  }

  private stackFile(exports: readonly Export[], where: 'local' | 'ssh'): string {
    const host = where === 'ssh' ? this.sshd!.uri : 'local';
    const tag = exports[0]!.name.split('-')[1]!;
    const lines = [
      `stack: ${this.id}-${tag}-${where}`,
      'defaults:',
      `  storage: ${yamlString(host)}`,
      `  hypervisor: ${yamlString(host)}`,
      `  portal: ${yamlString(this.tgtd.portal)}`,
      `  control-port: ${this.tgtd.controlPort}`,
      `  conf-dir: ${yamlString(join(this.dir, 'tgt-conf'))}`,
      `  host-records: ${yamlString(join(this.dir, 'records'))}`,
      'exports:',
      ...exports.flatMap((e) => [`  - image: ${yamlString(e.image)}`, `    vm: ${yamlString(e.vm)}`, `    name: ${yamlString(e.name)}`]),
    ];
    const file = join(this.dir, `stack-${tag}-${where}.yaml`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  private rawList(exports: readonly Export[]): string {
    const perVm = new Map<string, number>();
    const lines = exports.map((e, i) => {
      const k = perVm.get(e.vm) ?? 0;
      perVm.set(e.vm, k + 1);
      return `${1000 + i} r${e.name} ${e.image} ${e.vm} ${devName('sd', k)}`;
    });
    const file = join(this.dir, `raw-${exports[0]!.name.split('-')[1]}.list`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  private async checkDisks(what: string, exports: readonly Export[], empty = false): Promise<void> {
    for (const vm of this.vms) {
      const want = empty ? 0 : exports.filter((e) => e.vm === vm).length;
      const have = (await domainDisks(vm)).length;
      if (have !== want) throw new Error(`${what}: domain ${vm} has ${have} disk(s), expected ${want}`);
    }
  }

  private checkNoTargets(what: string): void {
    const left = this.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']).split('\n').filter((l) => l.startsWith('Target '));
    if (left.length) throw new Error(`${what}: tgtd still has ${left.length} target(s): ${left.slice(0, 3).join('; ')}`);
  }

  /** One apply/status/reapply/destroy cycle of a variant; `record` gets each timed step. */
  async cycle(v: Variant, exports: readonly Export[], record: (op: Op, r: RunOut) => void, onMode?: (mode: string) => void): Promise<void> {
    const n = exports.length;
    if (v === 'raw script, local') {
      const list = this.rawList(exports);
      const [host, port] = this.tgtd.portal.split(':') as [string, string];
      const env = {
        ...process.env,
        RAW_SSH: '',
        CONTROL_PORT: String(this.tgtd.controlPort),
        IQN_PREFIX: 'iqn.2024-01.dev.virt-iscsi',
        INITIATOR: `iqn.2024-01.dev.virt-iscsi:${this.id}.raw`,
        PORTAL_HOST: host,
        PORTAL_PORT: port,
        WORK_DIR: join(this.dir, 'raw'),
      };
      const script = (verb: string): Promise<RunOut> => timed('bash', [join(root, 'bench', 'raw-scale.sh'), verb, list], { env, timeoutMs: CMD_TIMEOUT_MS });
      record('apply', await script('export'));
      await this.checkDisks(`raw export of ${n}`, exports);
      record('status', await script('status'));
      record('destroy', await script('unexport'));
      await this.checkDisks(`raw unexport of ${n}`, exports, true);
      this.checkNoTargets(`raw unexport of ${n}`);
      return;
    }
    const where = v === 'virt-iscsi, ssh' ? 'ssh' : 'local';
    const file = this.stackFile(exports, where);
    const ssh = where === 'ssh' ? ['--identity', this.sshd!.identity, '--known-hosts', this.sshd!.knownHosts] : [];
    const env = { ...process.env, XDG_STATE_HOME: join(this.dir, `state-${where}`) };
    const cli = (args: string[], rss = false): Promise<RunOut> =>
      timed(process.execPath, [join(root, 'bin', 'virt-iscsi.js'), ...args, ...ssh], { env, rss, timeoutMs: CMD_TIMEOUT_MS });

    record('apply', await cli(['apply', '-f', file], true));
    await this.checkDisks(`apply of ${n}`, exports);
    const status = await cli(['status', '--json']);
    record('status', status);
    type Listed = { name: string; healthy: boolean; mode: string; problems: string[] };
    // statusVersion 2 prints {statusVersion, exports, unreadable}; the first version, the list itself.
    const doc = JSON.parse(status.stdout) as Listed[] | { exports: Listed[] };
    const list = Array.isArray(doc) ? doc : doc.exports;
    const ours = list.filter((s) => exports.some((e) => e.name === s.name));
    if (ours.length !== n) throw new Error(`status after apply of ${n}: lists ${ours.length} of the stack's exports`);
    const sick = ours.filter((s) => !s.healthy);
    if (sick.length) throw new Error(`status after apply of ${n}: ${sick.length} not healthy, e.g. ${sick[0]!.name}: ${sick[0]!.problems.join('; ')}`);
    onMode?.(ours[0]!.mode);
    const again = await cli(['apply', '-f', file]);
    record('reapply', again);
    const created = /(\d+) created, (\d+) re-done, (\d+) removed/.exec(again.stdout);
    if (created && (created[1] !== '0' || created[2] !== '0' || created[3] !== '0')) throw new Error(`apply of ${n} again changed something: ${created[0]}`);
    await this.checkDisks(`apply of ${n} again`, exports);
    record('destroy', await cli(['destroy', '-f', file]));
    await this.checkDisks(`destroy of ${n}`, exports, true);
    this.checkNoTargets(`destroy of ${n}`);
  }
}

/** Medians per N, variant and command, marginal costs and the goals, from every timed run. */
export function summarize(samples: readonly Sample[], mode: string | undefined): ScaleResults {
  const rows: ScaleRow[] = [];
  const ns = [...new Set(samples.map((s) => s.n))].sort((a, b) => a - b);
  const variants = [...new Set(samples.map((s) => s.variant))];
  for (const variant of variants) {
    for (const op of OPS) {
      for (const n of ns) {
        const mine = samples.filter((s) => s.n === n && s.variant === variant && s.op === op);
        if (!mine.length) continue;
        const rss = mine.flatMap((s) => (s.rssKb !== undefined ? [s.rssKb] : []));
        rows.push({
          n,
          variant,
          op,
          ms: Math.round(median(mine.map((s) => s.ms))),
          runsMs: mine.map((s) => Math.round(s.ms)),
          ...(rss.length ? { rssMiB: Math.round((median(rss) / 1024) * 10) / 10 } : {}),
        });
      }
      const series = rows.filter((r) => r.variant === variant && r.op === op);
      series.forEach((r, i) => {
        const prev = series[i - 1];
        r.marginalMs = Math.round(prev ? (r.ms - prev.ms) / (r.n - prev.n) : r.ms / r.n);
      });
    }
  }
  return { date: new Date().toISOString(), machine: machine(), vms: VMS, imageMiB: IMAGE_MIB, ...(mode ? { mode } : {}), rows, goals: goals(rows) };
}

function goals(rows: readonly ScaleRow[]): ScaleGoal[] {
  const get = (n: number, variant: Variant, op: Op): ScaleRow | undefined => rows.find((r) => r.n === n && r.variant === variant && r.op === op);
  const out: ScaleGoal[] = [];
  for (const n of [50, 200]) {
    for (const op of ['apply', 'destroy'] as const) {
      const ours = get(n, 'virt-iscsi, local', op);
      const raw = get(n, 'raw script, local', op);
      const what = `${op} of ${n}: marginal cost per export`;
      if (!ours || !raw) out.push({ what, goal: '<= 1.2x the raw script', value: '-', met: 'not measured' });
      else {
        const ratio = ours.marginalMs! / Math.max(1, raw.marginalMs!);
        out.push({ what, goal: '<= 1.2x the raw script', value: `${ours.marginalMs} vs ${raw.marginalMs} ms: ${ratio.toFixed(2)}x`, met: ratio <= 1.2 });
      }
    }
  }
  const limit = (what: string, row: ScaleRow | undefined, goal: number, value: (r: ScaleRow) => number, unit: string): void => {
    if (!row) out.push({ what, goal: `<= ${goal} ${unit}`, value: '-', met: 'not measured' });
    else out.push({ what, goal: `<= ${goal} ${unit}`, value: `${value(row)} ${unit}`, met: value(row) <= goal });
  };
  const s = (r: ScaleRow): number => Math.round(r.ms / 10) / 100;
  limit('status of 200, local', get(200, 'virt-iscsi, local', 'status'), 2, s, 's');
  limit('status of 200, over SSH', get(200, 'virt-iscsi, ssh', 'status'), 3, s, 's');
  limit('no-op apply of 200', get(200, 'virt-iscsi, local', 'reapply'), 3, s, 's');
  limit('peak RSS of apply of 200', get(200, 'virt-iscsi, local', 'apply'), 150, (r) => Math.round((r.rssMiB ?? 0) * 1.048576), 'MB');
  return out;
}

export function table(r: ScaleResults): string {
  const ns = [...new Set(r.rows.map((x) => x.n))].sort((a, b) => a - b);
  const variants = [...new Set(r.rows.map((x) => x.variant))];
  const cell = (row: ScaleRow | undefined): string => (row ? `${(row.ms / 1000).toFixed(2)} s` : '-');
  const lines = [
    `scale: N exports of ${r.imageMiB} MiB images over ${r.vms} running domains${r.mode ? `, mode ${r.mode}` : ''} (medians; marginal = ms per export beyond the next smaller N)`,
    `${'variant'.padEnd(19)}${pad('N', 5)}${pad('apply', 10)}${pad('status', 9)}${pad('re-apply', 10)}${pad('destroy', 10)}${pad('apply/exp', 11)}${pad('destroy/exp', 13)}${pad('RSS', 10)}`,
  ];
  for (const v of variants) {
    for (const n of ns) {
      const get = (op: Op): ScaleRow | undefined => r.rows.find((x) => x.n === n && x.variant === v && x.op === op);
      const apply = get('apply');
      if (!apply) continue;
      const destroy = get('destroy');
      lines.push(
        `${v.padEnd(19)}${pad(n, 5)}${pad(cell(apply), 10)}${pad(cell(get('status')), 9)}${pad(cell(get('reapply')), 10)}${pad(cell(destroy), 10)}` +
          `${pad(`${apply.marginalMs} ms`, 11)}${pad(destroy ? `${destroy.marginalMs} ms` : '-', 13)}${pad(apply.rssMiB ? `${apply.rssMiB} MiB` : '-', 10)}`,
      );
    }
  }
  lines.push('', 'goals:');
  for (const g of r.goals) lines.push(`  ${g.what.padEnd(42)} ${g.goal.padEnd(24)} ${g.value.padEnd(26)} ${g.met === 'not measured' ? 'not measured' : g.met ? 'met' : 'MISSED'}`);
  return lines.join('\n');
}

// Run as a program (not imported by a test).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
