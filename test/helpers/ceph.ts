// A real one-node Ceph cluster for a test file: started with scripts/ceph-dev.sh in a
// directory of its own and stopped (its daemons by PID, the directory removed) at the end,
// or one already running, named by CEPH_DEV_DIR (a ceph-dev.sh directory), left running.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { CephClient } from '../../src/storage/rbd/client.js';

const exec = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/ceph-dev.sh', import.meta.url));

export interface CephCluster {
  readonly dir: string;
  /** ceph.conf of the cluster (names the monitor, keyrings under `dir`). */
  readonly conf: string;
  /** The client for users: `client.<id>`, rbd caps on `pool` only. */
  readonly id: string;
  readonly keyring: string;
  /** That client's cephx key (base64). */
  readonly key: string;
  readonly adminKeyring: string;
  /** An rbd pool, initialised. */
  readonly pool: string;
  /** The monitor's msgr2 and legacy (v1) ports on 127.0.0.1. */
  readonly monV2Port: number;
  readonly monV1Port: number;
  /** The driver options for the user client, and for client.admin. */
  client(): CephClient;
  admin(): CephClient;
  /** Runs a ceph tool (rbd, ceph, rados) as client.admin against this cluster; stdout. */
  tool(program: 'rbd' | 'ceph' | 'rados', args: readonly string[]): Promise<string>;
  /** Seconds `start` took (0 when reused). */
  readonly startSeconds: number;
  /** Stops the cluster this helper started; a reused one is left running. */
  stop(): Promise<void>;
}

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').flatMap((l) => (/^[A-Z_]+=/.test(l) ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]] : [])));
}

export async function startCeph(): Promise<CephCluster> {
  const reuse = process.env.CEPH_DEV_DIR;
  const dir = reuse ?? (await mkdtemp(join(tmpdir(), 'vit-ceph-')));
  const t0 = performance.now();
  let out: string;
  try {
    // A fresh directory from mkdtemp exists and is empty: the script refuses to take over a
    // directory it did not make, so it gets a name inside.
    out = (await exec(SCRIPT, ['start', reuse ? dir : join(dir, 'c')], { encoding: 'utf8', timeout: 180_000 })).stdout;
  } catch (e) {
    if (!reuse) {
      await exec(SCRIPT, ['stop', join(dir, 'c')]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
    const err = e as { stderr?: string; message: string };
    throw new Error(`ceph-dev.sh start failed: ${err.stderr ?? err.message}`);
  }
  const startSeconds = reuse ? 0 : (performance.now() - t0) / 1000;
  const env = parseEnv(out);
  const ports = /\[v2:127\.0\.0\.1:(\d+),v1:127\.0\.0\.1:(\d+)\]/.exec(env.CEPH_MON ?? '');
  if (!env.CEPH_CONF || !env.CEPH_ID || !env.CEPH_KEYRING || !env.CEPH_ADMIN_KEYRING || !env.CEPH_POOL || !ports) {
    throw new Error(`ceph-dev.sh start printed no cluster settings:\n${out}`);
  }
  const key = /^\s*key = (\S+)$/m.exec(readFileSync(env.CEPH_KEYRING, 'utf8'))?.[1];
  if (!key) throw new Error(`no key in ${env.CEPH_KEYRING}`);
  const conf = env.CEPH_CONF;
  const adminKeyring = env.CEPH_ADMIN_KEYRING;
  return {
    dir: reuse ? dir : join(dir, 'c'),
    conf,
    id: env.CEPH_ID,
    keyring: env.CEPH_KEYRING,
    key,
    adminKeyring,
    pool: env.CEPH_POOL,
    monV2Port: Number(ports[1]),
    monV1Port: Number(ports[2]),
    startSeconds,
    client: () => ({ conf, id: env.CEPH_ID!, keyring: env.CEPH_KEYRING! }),
    admin: () => ({ conf, id: 'admin', keyring: adminKeyring }),
    async tool(program, args) {
      const r = await exec(program, ['--conf', conf, '--id', 'admin', '--keyring', adminKeyring, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
      return r.stdout;
    },
    async stop() {
      if (reuse) return;
      await exec(SCRIPT, ['stop', join(dir, 'c')], { timeout: 60_000 });
      await rm(dir, { recursive: true, force: true });
    },
  };
}
