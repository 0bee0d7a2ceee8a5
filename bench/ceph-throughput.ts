// The same RBD image read and written two ways, side by side in one run, with
// `qemu-img bench` (cache=none, raw):
//   native   QEMU's rbd driver talks to Ceph itself (what `--mode rbd` gives a VM)
//   gateway  QEMU's iSCSI driver against a private tgtd whose LUN is the image, served by
//            tgt's rbd backing store (an iSCSI gateway to Ceph)
// on a one-node cluster from scripts/ceph-dev.sh (its start time is reported too), all on
// 127.0.0.1. Each round runs every case both ways, the order turning each round, after a
// warm-up round that is not counted; the table shows medians. Writes
// bench/ceph-results.json. Nothing here has a goal: it measures what the gateway costs.
// Writes are not like for like: QEMU with cache=none turns librbd's cache off on the native
// path, while tgtd's librbd keeps its default cache, which turns from writethrough to
// writeback at the first flush an initiator sends: after that the gateway acknowledges
// writes from tgtd's memory (a disk with a volatile write cache; SYNCHRONIZE CACHE flushes it).
//   BENCH_ROUNDS=N (default 3), CEPH_DEV_DIR=DIR to reuse a running cluster
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalRunner } from '../src/runner/local.js';
import { qemuRbdFilename } from '../src/storage/rbd/client.js';
import { rbdLun } from '../src/storage/rbd/lun.js';
import { Rbd } from '../src/storage/rbd/rbd.js';
import { TgtBackend } from '../src/storage/tgt/backend.js';
import { startCeph } from '../test/helpers/ceph.js';
import { cleanupStack } from '../test/helpers/cleanups.js';
import { startTgtd } from '../test/helpers/tgtd.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IMAGE_BYTES = 256 * 2 ** 20;

interface Case {
  name: string;
  size: number;
  depth: number;
  count: number;
  write: boolean;
}

const CASES: Case[] = [
  { name: '4 KiB read, QD1', size: 4096, depth: 1, count: 3000, write: false },
  { name: '64 KiB read, QD16', size: 65536, depth: 16, count: 4096, write: false },
  { name: '4 KiB write, QD1', size: 4096, depth: 1, count: 1000, write: true },
  { name: '64 KiB write, QD16', size: 65536, depth: 16, count: 2048, write: true },
];

type Way = 'native' | 'gateway';

function run(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: 600_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

/** `qemu-img bench` prints "Run completed in 0.422 seconds." (qemu-img 7.2). */
async function bench(filename: string, c: Case): Promise<number> {
  const args = ['bench', '-f', 'raw', '-t', 'none', '-s', String(c.size), '-d', String(c.depth), '-c', String(c.count), ...(c.write ? ['-w', '--pattern=165'] : []), filename];
  const out = await run('qemu-img', args);
  const m = /Run completed in ([0-9.]+) seconds/.exec(out);
  if (!m) throw new Error(`qemu-img bench printed no time: ${out}`);
  return Number(m[1]);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const stack = cleanupStack();
  const runner = new LocalRunner();
  try {
    const ceph = await startCeph();
    stack.cleanup(() => ceph.stop());
    const tgtd = await startTgtd();
    stack.cleanup(() => tgtd.stop());
    const dir = mkdtempSync(join(tmpdir(), 'vit-ceph-bench-'));
    stack.cleanup(() => rmSync(dir, { recursive: true, force: true }));

    const ref = { pool: ceph.pool, image: `vit-bench-${randomBytes(3).toString('hex')}` };
    await new Rbd(runner, ceph.client()).create(ref, IMAGE_BYTES);
    const native = qemuRbdFilename(ref, ceph.client());
    // Written whole first, so reads reach the OSD (librbd answers never-written objects with zeros itself).
    await run('qemu-img', ['bench', '-f', 'raw', '-t', 'none', '-w', '--pattern=90', '-s', String(2 ** 20), '-d', '8', '-c', String(IMAGE_BYTES / 2 ** 20), native]);

    // The gateway, made by our tgt backend: the LUN reads the conf's keyring for client.<id>.
    const iqn = `iqn.2024-01.dev.virt-iscsi:bench-${ref.image}`;
    const backend = new TgtBackend(runner, { controlPort: tgtd.controlPort, confDir: join(dir, 'conf.d') });
    await backend.create({ iqn, luns: [rbdLun(1, ref, { conf: ceph.conf, id: ceph.id })], allow: ['127.0.0.1'], persist: false });
    stack.cleanup(() => backend.delete(iqn, { force: true }));
    const gateway = `iscsi://${tgtd.portal}/${iqn}/1`;
    const filenames: Record<Way, string> = { native, gateway };

    const times = new Map<string, number[]>();
    for (let round = 0; round <= ROUNDS; round++) {
      for (const c of CASES) {
        const ways: Way[] = round % 2 === 0 ? ['native', 'gateway'] : ['gateway', 'native'];
        for (const way of ways) {
          const s = await bench(filenames[way], c);
          if (round === 0) continue; // warm-up
          const key = `${c.name}|${way}`;
          times.set(key, [...(times.get(key) ?? []), s]);
        }
      }
      if (round > 0) process.stderr.write(`round ${round}/${ROUNDS} done\n`);
    }

    const rows = CASES.map((c) => {
      const per = (way: Way) => {
        const s = median(times.get(`${c.name}|${way}`)!);
        const iops = c.count / s;
        return { seconds: s, iops: Math.round(iops), mbPerS: Number(((iops * c.size) / 1e6).toFixed(1)), latencyUs: Math.round((s / c.count) * c.depth * 1e6) };
      };
      return { case: c.name, native: per('native'), gateway: per('gateway') };
    });

    const pad = (s: string, n: number) => s.padEnd(n);
    const cell = (r: { iops: number; mbPerS: number; latencyUs: number }) => `${r.iops} IOPS, ${r.mbPerS} MB/s, ${r.latencyUs} us`;
    console.log(`Ceph one-node cluster started in ${ceph.startSeconds.toFixed(1)} s${ceph.startSeconds === 0 ? ' (reused)' : ''}; ${cpus().length} cores; ${ROUNDS} rounds, medians`);
    console.log(`${pad('qemu-img bench, cache=none', 28)}${pad('native rbd (QEMU librbd)', 38)}tgt-rbd gateway (QEMU iSCSI)`);
    for (const r of rows) console.log(`${pad(r.case, 28)}${pad(cell(r.native), 38)}${cell(r.gateway)}  (gateway/native ${(r.gateway.iops / r.native.iops).toFixed(2)}x)`);
    console.log("writes: the gateway's librbd cache is writeback after the first flush (tgtd's memory), the native path has none (cache=none)");
    writeFileSync(join(root, 'bench', 'ceph-results.json'), `${JSON.stringify({ date: new Date().toISOString(), cores: cpus().length, rounds: ROUNDS, cephStartSeconds: ceph.startSeconds, imageBytes: IMAGE_BYTES, rows }, null, 2)}\n`);
  } finally {
    await stack.close();
  }
}

await main();
