// `npm run bench` (`make bench`): the wall time of export + unexport of one data image to a
// running VM, by virt-iscsi (the built CLI, dist/, as users run it) and by the same raw
// commands in a shell script (bench/raw-export.sh: tgtadm, virsh), each run locally and
// with storage and hypervisor reached over SSH (a real sshd on 127.0.0.1; the script makes
// one `ssh` call per command, the way it is scripted today). Every round runs the four side
// by side, in an order that turns each round, after one warm-up round not counted; each run
// is checked (the disk is in the VM after export, gone after unexport) outside the timing.
// Goals: over SSH ours <= 0.5x the script; locally ours <= the script + 400 ms (medians of
// export + unexport). Prints a table and the two ratios, writes bench/results.json, and
// exits 1 when a goal is missed (other benchmarks' keys in results.json are kept).
//   BENCH_ROUNDS=N (default 7)
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../test/helpers/libvirt.js';
import { startSshd } from '../test/helpers/sshd.js';
import { startTgtd } from '../test/helpers/tgtd.js';
import { cleanupStack } from '../test/helpers/cleanups.js';
import { mergeResults } from './common.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const SSH_GOAL = 0.5;
const LOCAL_GOAL_MS = 400;

interface Timed {
  exportMs: number;
  unexportMs: number;
}

/** Runs a program, resolving with its wall time; a failure throws with its output. */
function timed(file: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: root, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const ms = performance.now() - start;
      if (err) reject(new Error(`${[file, ...args].join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(ms);
    });
  });
}

function run(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

const virsh = (args: readonly string[]): Promise<string> => run('virsh', ['-c', LIBVIRT_URI, ...args]);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Variant {
  name: string;
  where: 'local' | 'ssh';
  who: 'virt-iscsi' | 'raw script';
  cycle(): Promise<Timed>;
}

async function main(): Promise<void> {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: run make build (make bench does)');
  const { cleanup, close: done } = cleanupStack();
  try {
    cleanup(await ensureLibvirtd());
    const tgtd = await startTgtd();
    cleanup(() => tgtd.stop());
    const sshd = await startSshd();
    cleanup(() => sshd.stop());
    const id = `bn${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), 'vit-bench-'));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const vm = `vit-${id}`;
    writeFileSync(join(dir, 'domain.xml'), minimalDomainXml(vm));
    await virsh(['define', join(dir, 'domain.xml')]);
    cleanup(() => virsh(['undefine', vm]));
    await virsh(['start', vm]);
    cleanup(() => virsh(['destroy', vm]));
    for (const sub of ['tgt-conf', 'records', 'state', 'raw']) mkdirSync(join(dir, sub));
    const image = (name: string): string => {
      const p = join(dir, `${name}.img`);
      writeFileSync(p, '');
      truncateSync(p, 64 << 20);
      return p;
    };
    const [portalHost, portalPort] = tgtd.portal.split(':') as [string, string];

    const disks = async (): Promise<string[]> =>
      (await virsh(['domblklist', vm]))
        .split('\n')
        .slice(2)
        .map((l) => l.trim())
        .filter(Boolean);
    const check = async (what: string, want: number): Promise<void> => {
      const have = (await disks()).length;
      if (have !== want) throw new Error(`${what}: the VM has ${have} disk(s), expected ${want}`);
    };

    const ours = (where: 'local' | 'ssh'): Variant => {
      const name = `${id}-ours-${where}`;
      const img = image(name);
      const hosts = where === 'ssh' ? ['--storage', sshd.uri, '--hypervisor', sshd.uri, '--identity', sshd.identity, '--known-hosts', sshd.knownHosts] : [];
      const records = ['--host-records', join(dir, 'records')];
      const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state') };
      const cli = (args: string[]): Promise<number> => timed(process.execPath, [join(root, 'bin', 'virt-iscsi.js'), ...args], env);
      return {
        name: `virt-iscsi, ${where}`,
        where,
        who: 'virt-iscsi',
        async cycle() {
          const exportMs = await cli(['export', img, '--vm', vm, '--name', name, '--portal', tgtd.portal, '--control-port', String(tgtd.controlPort), '--conf-dir', join(dir, 'tgt-conf'), ...records, ...hosts]);
          await check(`${name} export`, 1);
          const unexportMs = await cli(['unexport', name, ...records, ...hosts]);
          await check(`${name} unexport`, 0);
          return { exportMs, unexportMs };
        },
      };
    };

    const raw = (where: 'local' | 'ssh'): Variant => {
      const name = `${id}-raw-${where}`;
      const env = {
        ...process.env,
        RAW_SSH:
          where === 'ssh'
            ? `ssh -F /dev/null -i ${sshd.identity} -o UserKnownHostsFile=${sshd.knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -p ${sshd.port} root@127.0.0.1`
            : '',
        CONTROL_PORT: String(tgtd.controlPort),
        TID: where === 'ssh' ? '101' : '100',
        IQN: `iqn.2024-01.dev.virt-iscsi:${name}`,
        IMAGE: image(name),
        INITIATOR: `iqn.2024-01.dev.virt-iscsi:${id}.raw`,
        PORTAL_HOST: portalHost,
        PORTAL_PORT: portalPort,
        VM: vm,
        NAME: name,
        DEV: 'sdz',
        WORK_DIR: join(dir, 'raw'),
      };
      const script = (verb: string): Promise<number> => timed('bash', [join(root, 'bench', 'raw-export.sh'), verb], env);
      return {
        name: `raw script, ${where}`,
        where,
        who: 'raw script',
        async cycle() {
          const exportMs = await script('export');
          await check(`${name} export`, 1);
          const unexportMs = await script('unexport');
          await check(`${name} unexport`, 0);
          return { exportMs, unexportMs };
        },
      };
    };

    const variants = [ours('local'), raw('local'), ours('ssh'), raw('ssh')];
    const results = new Map<Variant, Timed[]>(variants.map((v) => [v, []]));
    for (let round = 0; round <= ROUNDS; round++) {
      process.stderr.write(round === 0 ? 'warm-up round\n' : `round ${round}/${ROUNDS}\n`);
      for (let i = 0; i < variants.length; i++) {
        const v = variants[(i + round) % variants.length]!;
        const t = await v.cycle();
        if (round > 0) results.get(v)!.push(t);
      }
    }

    const summary = variants.map((v) => {
      const runs = results.get(v)!;
      const totals = runs.map((r) => r.exportMs + r.unexportMs);
      return {
        variant: v.name,
        where: v.where,
        who: v.who,
        exportMs: Math.round(median(runs.map((r) => r.exportMs))),
        unexportMs: Math.round(median(runs.map((r) => r.unexportMs))),
        totalMs: Math.round(median(totals)),
        minMs: Math.round(Math.min(...totals)),
        maxMs: Math.round(Math.max(...totals)),
        runsMs: totals.map(Math.round),
      };
    });
    const get = (who: string, where: string) => summary.find((s) => s.who === who && s.where === where)!;
    const sshRatio = get('virt-iscsi', 'ssh').totalMs / get('raw script', 'ssh').totalMs;
    const localOver = get('virt-iscsi', 'local').totalMs - get('raw script', 'local').totalMs;
    const goals = {
      ssh: { ratio: Number(sshRatio.toFixed(2)), goal: `<= ${SSH_GOAL}x the script`, met: sshRatio <= SSH_GOAL },
      local: { overMs: localOver, ratio: Number((get('virt-iscsi', 'local').totalMs / get('raw script', 'local').totalMs).toFixed(2)), goal: `<= the script + ${LOCAL_GOAL_MS} ms`, met: localOver <= LOCAL_GOAL_MS },
    };

    const pad = (s: string | number, n: number): string => String(s).padStart(n);
    const lines = [
      `export + unexport of a 64 MiB image to a running VM, ${ROUNDS} rounds (median; min..max of the totals)`,
      `${'variant'.padEnd(22)}${pad('export', 9)}${pad('unexport', 10)}${pad('total', 9)}${pad('spread', 16)}`,
      ...summary.map((s) => `${s.variant.padEnd(22)}${pad(`${s.exportMs} ms`, 9)}${pad(`${s.unexportMs} ms`, 10)}${pad(`${s.totalMs} ms`, 9)}${pad(`${s.minMs}..${s.maxMs} ms`, 16)}`),
      '',
      `over SSH: virt-iscsi takes ${goals.ssh.ratio}x the script's time (goal ${goals.ssh.goal}): ${goals.ssh.met ? 'met' : 'MISSED'}`,
      `locally:  virt-iscsi takes ${localOver >= 0 ? '+' : ''}${localOver} ms over the raw commands, ${goals.local.ratio}x (goal ${goals.local.goal}): ${goals.local.met ? 'met' : 'MISSED'}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    const out = { date: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? '', node: process.version }, rounds: ROUNDS, results: summary, goals };
    mergeResults(out);
    process.stdout.write('written to bench/results.json\n');
    if (!goals.ssh.met || !goals.local.met) process.exitCode = 1;
  } finally {
    await done();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
