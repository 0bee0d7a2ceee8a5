// What the export workflow tests share: a private tgtd on 127.0.0.1, the running libvirtd,
// one running QEMU domain (virtio-scsi controller, ACPI, an empty IDE cdrom drive), temp
// dirs for every file the workflow writes (tgt records, host records, local state), names
// unique to the run, a cleanup list run even when a test fails, and snapshots of the
// hosts' state taken with tools we did not write (tgtadm, virsh).
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session, type SessionOptions } from '../../src/cli/session.js';
import { exportImage } from '../../src/workflows/export.js';
import type { ExportOptions } from '../../src/workflows/types.js';
import { unexportImage, type UnexportOptions } from '../../src/workflows/unexport.js';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../helpers/libvirt.js';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { cleanupStack } from '../helpers/cleanups.js';

export const MiB = 1024 * 1024;

export function virsh(args: readonly string[]): string {
  return execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function quietly(args: readonly string[]): void {
  spawnSync('virsh', ['-c', LIBVIRT_URI, ...args], { stdio: 'ignore' });
}

/** What the hosts hold, as tools we did not write print it: compared before and after. */
export interface Snapshot {
  targets: string;
  accounts: string;
  pools: string;
  secrets: string;
  domain: string;
}

export interface Env {
  /** Unique to this run: in every export name, so other runs' pools and secrets are left out. */
  id: string;
  tgtd: Tgtd;
  dir: string;
  domain: string;
  confDir: string;
  hostRecordDir: string;
  stateDir: string;
  /** A sparse raw image of `bytes` in the temp dir. */
  image(name: string, bytes: number): string;
  /** An ISO 9660 image made with xorriso. */
  iso(name: string): string;
  /** The options every export of this env takes: the private tgtd, its portal, the temp dirs. */
  options(image: string, extra?: Partial<ExportOptions>): ExportOptions;
  /** What each Session is opened with (SSH identity and known_hosts for ssh:// hosts). */
  session: SessionOptions;
  /** A fresh Session per call, closed after: what one CLI invocation has. */
  exportIt(image: string, extra?: Partial<ExportOptions>): ReturnType<typeof exportImage>;
  unexportIt(name: string, extra?: Partial<UnexportOptions>): ReturnType<typeof unexportImage>;
  snapshot(): Snapshot;
  /** `virsh domblklist --details` rows: [type, device, target, source]. */
  blk(inactive?: boolean): string[][];
  capacity(dev: string): number;
  /** Initiator names logged in to `iqn` (tgtadm --op show). */
  sessions(iqn: string): string[];
  cleanup(fn: () => unknown): void;
  close(): Promise<void>;
}

export async function startEnv(prefix: string): Promise<Env> {
  const { cleanup, close } = cleanupStack();
  try {
    cleanup(await ensureLibvirtd());
    const tgtd = await startTgtd();
    cleanup(() => tgtd.stop());
    const id = `${prefix}${randomBytes(3).toString('hex')}`;
    const dir = mkdtempSync(join(tmpdir(), `vit-${prefix}-`));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const confDir = join(dir, 'tgt-conf');
    const hostRecordDir = join(dir, 'host-records');
    const stateDir = join(dir, 'state');
    mkdirSync(confDir);
    // Whatever a failed test left behind on libvirt: our pools and secrets carry the id.
    cleanup(() => {
      for (const line of virsh(['pool-list', '--all', '--name']).split('\n')) {
        const name = line.trim();
        if (name.includes(id)) {
          quietly(['pool-destroy', name]);
          quietly(['pool-undefine', name]);
        }
      }
      for (const line of virsh(['secret-list']).split('\n')) {
        if (line.includes(id)) quietly(['secret-undefine', line.trim().split(/\s+/)[0]!]);
      }
    });
    const domain = `vit-${id}`;
    const xml = join(dir, 'domain.xml');
    writeFileSync(xml, minimalDomainXml(domain, { ideCdrom: true }));
    virsh(['define', xml]);
    cleanup(() => quietly(['undefine', domain]));
    virsh(['start', domain]);
    cleanup(() => quietly(['destroy', domain]));

    const options = (image: string, extra: Partial<ExportOptions> = {}): ExportOptions => ({
      image,
      vm: domain,
      controlPort: tgtd.controlPort,
      portal: tgtd.portal,
      confDir,
      hostRecordDir,
      stateDir,
      ...extra,
    });
    const lld = ['--lld', 'iscsi'];
    const env: Env = {
      id,
      tgtd,
      dir,
      domain,
      confDir,
      hostRecordDir,
      stateDir,
      image(name, bytes) {
        const path = join(dir, name);
        writeFileSync(path, '');
        truncateSync(path, bytes);
        return path;
      },
      iso(name) {
        const src = join(dir, `${name}.d`);
        mkdirSync(src, { recursive: true });
        writeFileSync(join(src, 'hello.txt'), `hello from ${name}\n`);
        const path = join(dir, `${name}.iso`);
        execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', path, '-V', 'VIT', src], { stdio: 'ignore' });
        return path;
      },
      options,
      session: {},
      async exportIt(image, extra = {}) {
        const s = new Session(env.session);
        try {
          return await exportImage(s, options(image, extra));
        } finally {
          await s.close();
        }
      },
      async unexportIt(name, extra = {}) {
        const s = new Session(env.session);
        try {
          return await unexportImage(s, { name, hostRecordDir, stateDir, sessionWaitMs: 15_000, ...extra });
        } finally {
          await s.close();
        }
      },
      snapshot() {
        const mine = (text: string): string =>
          text
            .split('\n')
            .filter((l) => l.includes(id))
            // virsh pads its columns to the longest name, other runs' too.
            .map((l) => l.trim().split(/\s+/).join(' '))
            .join('\n');
        return {
          targets: tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']),
          accounts: tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'account']),
          pools: mine(virsh(['pool-list', '--all'])),
          secrets: mine(virsh(['secret-list'])),
          domain: virsh(['dumpxml', '--inactive', domain]),
        };
      },
      blk(inactive = false) {
        return virsh(['domblklist', '--details', ...(inactive ? ['--inactive'] : []), domain])
          .split('\n')
          .slice(2)
          .map((l) => l.trim().split(/\s+/))
          .filter((cols) => cols.length >= 3);
      },
      capacity(dev) {
        return Number(/Capacity:\s+(\d+)/.exec(virsh(['domblkinfo', domain, dev]))?.[1]);
      },
      sessions(iqn) {
        const shown = tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']);
        const block = shown.split(/^Target \d+: /m).find((b) => b.startsWith(`${iqn}\n`)) ?? '';
        return [...block.matchAll(/Initiator: (\S+)/g)].map((m) => m[1]!);
      },
      cleanup,
      close,
    };
    return env;
  } catch (e) {
    await close();
    throw e;
  }
}
