// Initiators we did not write, for checking what a target really serves: libiscsi's tools
// (iscsi-ls, iscsi-inq, iscsi-readcapacity16) and QEMU's qemu-io (reads, writes, and
// holding a session open).
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface Chap {
  user: string;
  secret: string;
  /** Mutual CHAP: what the target must answer with. */
  targetUser?: string;
  targetSecret?: string;
}

export interface Login {
  portal: string;
  iqn: string;
  lun: number;
  initiator?: string;
  chap?: Chap;
}

function env(chap?: Chap): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['LIBISCSI_CHAP_USERNAME', 'LIBISCSI_CHAP_PASSWORD', 'LIBISCSI_CHAP_TARGET_USERNAME', 'LIBISCSI_CHAP_TARGET_PASSWORD']) delete e[k];
  if (chap) {
    e.LIBISCSI_CHAP_USERNAME = chap.user;
    e.LIBISCSI_CHAP_PASSWORD = chap.secret;
    if (chap.targetUser) e.LIBISCSI_CHAP_TARGET_USERNAME = chap.targetUser;
    if (chap.targetSecret) e.LIBISCSI_CHAP_TARGET_PASSWORD = chap.targetSecret;
  }
  return e;
}

function libiscsi(tool: string, l: Login, extra: string[] = []): SpawnSyncReturns<string> {
  const args = [...(l.initiator ? ['-i', l.initiator] : []), ...extra, `iscsi://${l.portal}/${l.iqn}/${l.lun}`];
  return spawnSync(tool, args, { encoding: 'utf8', env: env(l.chap), timeout: 30_000 });
}

/** `iscsi-inq`: standard INQUIRY; exit status and text ("Peripheral Device Type:MMC", "Vendor:..."). */
export function inquiry(l: Login): SpawnSyncReturns<string> {
  return libiscsi('iscsi-inq', l);
}

/** `iscsi-readcapacity16 -s`: the LUN's size in bytes, as the initiator sees it. */
export function capacity(l: Login): number {
  const r = libiscsi('iscsi-readcapacity16', l, ['-s']);
  if (r.status !== 0) throw new Error(`iscsi-readcapacity16 failed (${r.status}): ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** `iscsi-ls -s iscsi://PORTAL`: the targets (and LUNs) discovery shows. */
export function listTargets(portal: string, initiator?: string): string {
  const r = spawnSync('iscsi-ls', [...(initiator ? ['-i', initiator] : []), '-s', `iscsi://${portal}`], { encoding: 'utf8', env: env(), timeout: 30_000 });
  if (r.status !== 0) throw new Error(`iscsi-ls failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function imageOpts(l: Login): string {
  const opts = [`driver=iscsi`, `transport=tcp`, `portal=${l.portal}`, `target=${l.iqn}`, `lun=${l.lun}`];
  if (l.initiator) opts.push(`initiator-name=${l.initiator}`);
  if (l.chap) opts.push(`user=${l.chap.user}`, `password=${l.chap.secret}`);
  return opts.join(',');
}

/** qemu-io running one command against the LUN ("write -P 0xab 0 4096", "read 0 512"). */
export function qemuIo(l: Login, command: string, readOnly = false): SpawnSyncReturns<string> {
  return spawnSync('qemu-io', [...(readOnly ? ['-r'] : []), '-c', command, '--image-opts', imageOpts(l)], { encoding: 'utf8', timeout: 30_000 });
}

/** A session held open by qemu-io (it logs in, then waits for commands on stdin). */
export interface HeldSession {
  readonly pid: number;
  close(): Promise<void>;
}

export async function holdSession(l: Login, waitLoggedIn: () => boolean): Promise<HeldSession> {
  const child = spawn('qemu-io', ['-r', '--image-opts', imageOpts(l)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid!;
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.end('quit\n');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 15_000;
  while (!waitLoggedIn()) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await close();
      throw new Error(`qemu-io did not log in to ${l.iqn}: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid, close };
}

/** Size and SHA-256 of a file: proof that nothing wrote to or truncated it. */
export function fingerprint(path: string): { size: number; sha256: string } {
  const hash = createHash('sha256');
  const buf = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { size: statSync(path).size, sha256: hash.digest('hex') };
}
