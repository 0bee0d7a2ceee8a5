// What the lifecycle tests (resize, restarts) share: a private tgtd on 127.0.0.1, the
// running libvirtd, a real Linux guest (test/helpers/linux-guest.ts) that exports are
// attached to, temp dirs for every file virt-iscsi writes (the local records under an
// XDG_STATE_HOME the CLI is given too), and the CLI run as a user runs it.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from '../../src/cli/session.js';
import { exportImage } from '../../src/workflows/export.js';
import type { ExportOptions } from '../../src/workflows/types.js';
import { statusReport, type ExportStatus } from '../../src/workflows/status.js';
import { cleanupStack } from '../helpers/cleanups.js';
import { cliWith, type CliResult } from '../helpers/cli.js';
import { ensureLibvirtd, LIBVIRT_URI, type LibvirtdStop } from '../helpers/libvirt.js';
import { startGuest, type Guest } from '../helpers/linux-guest.js';
export { readHostBlocks } from '../helpers/linux-guest.js';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';

export const MiB = 1024 * 1024;

export function virsh(args: readonly string[]): string {
  return execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface GuestEnv {
  id: string;
  tgtd: Tgtd;
  guest: Guest;
  dir: string;
  confDir: string;
  hostRecordDir: string;
  /** XDG_STATE_HOME for the CLI: the local records are in its virt-iscsi/exports. */
  xdg: string;
  stateDir: string;
  /** What ensureLibvirtd returned: `started` says whether this process started libvirtd (as in CI); only then may a test restart it. */
  libvirtd: LibvirtdStop;
  /** A raw image in the temp dir: sparse, or with every byte allocated. */
  image(name: string, bytes: number, allocated?: boolean): string;
  exportIt(image: string, extra?: Partial<ExportOptions>): ReturnType<typeof exportImage>;
  /** The CLI with this env's records and tgtd. */
  cli(args: readonly string[]): Promise<CliResult>;
  status(name: string): Promise<ExportStatus>;
  tgtShow(): string;
  cleanup(fn: () => unknown): void;
  close(): Promise<void>;
}

export async function startGuestEnv(prefix: string): Promise<GuestEnv> {
  const { cleanup, close } = cleanupStack();
  try {
    const stopLibvirtd = await ensureLibvirtd();
    cleanup(stopLibvirtd);
    const tgtd = await startTgtd();
    cleanup(() => tgtd.stop());
    const id = `${prefix}${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), `vit-${prefix}-`));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const confDir = join(dir, 'tgt-conf');
    const hostRecordDir = join(dir, 'host-records');
    const xdg = join(dir, 'xdg');
    const stateDir = join(xdg, 'virt-iscsi', 'exports');
    mkdirSync(confDir);
    // Whatever a failed test left behind on libvirt: our pools and secrets carry the id.
    cleanup(() => {
      for (const line of virsh(['pool-list', '--all', '--name']).split('\n')) {
        const name = line.trim();
        if (name.includes(id)) {
          spawnSync('virsh', ['-c', LIBVIRT_URI, 'pool-destroy', name], { stdio: 'ignore' });
          spawnSync('virsh', ['-c', LIBVIRT_URI, 'pool-undefine', name], { stdio: 'ignore' });
        }
      }
      for (const line of virsh(['secret-list']).split('\n')) {
        if (line.includes(id)) spawnSync('virsh', ['-c', LIBVIRT_URI, 'secret-undefine', line.trim().split(/\s+/)[0]!], { stdio: 'ignore' });
      }
    });
    const guest = await startGuest({ name: prefix });
    cleanup(() => guest.destroy());
    const env: GuestEnv = {
      id,
      tgtd,
      guest,
      dir,
      confDir,
      hostRecordDir,
      xdg,
      stateDir,
      libvirtd: stopLibvirtd,
      image(name, bytes, allocated = false) {
        const path = join(dir, name);
        writeFileSync(path, '');
        if (allocated) execFileSync('fallocate', ['-l', String(bytes), path]);
        else truncateSync(path, bytes);
        return path;
      },
      async exportIt(image, extra = {}) {
        const s = new Session();
        try {
          return await exportImage(s, { image, vm: guest.domain, controlPort: tgtd.controlPort, portal: tgtd.portal, confDir, hostRecordDir, stateDir, ...extra });
        } finally {
          await s.close();
        }
      },
      cli: (args) => cliWith(args, { XDG_STATE_HOME: xdg }),
      async status(name) {
        const s = new Session();
        try {
          const [st] = (await statusReport(s, { stateDir, hostRecordDir, names: [name] })).exports;
          return st!;
        } finally {
          await s.close();
        }
      },
      tgtShow: () => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']),
      cleanup,
      close,
    };
    return env;
  } catch (e) {
    await close();
    throw e;
  }
}


/** Polls until `f` is true (or throws with what it waited for). */
export async function until(what: string, f: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (await f()) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
