// What the hypervisor tests share: a private tgtd on 127.0.0.1 serving two targets (one
// plain with two disks and a CD-ROM, one that demands CHAP), libvirtd, unique names, a
// cleanup list run even when a test fails, and virsh/tgtadm for checking results with
// tools we did not write.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../helpers/libvirt.js';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { cleanupStack } from '../helpers/cleanups.js';

export { LIBVIRT_URI };

/** `virsh -c qemu:///system ARGS`; throws with stderr on failure. */
export function virsh(args: readonly string[]): string {
  return execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** virsh's exit code and output, for checks that an object is gone. */
export function virshStatus(args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const MiB = 1024 * 1024;

export interface Env {
  id: string;
  tgtd: Tgtd;
  dir: string;
  /** Plain target: LUN 1 (32 MiB) and LUN 2 (8 MiB) disks, LUN 3 (4 MiB) CD-ROM. */
  iqn: string;
  /** CHAP target: LUN 1 (16 MiB); user `chapUser`, password `chapPassword`. */
  chapIqn: string;
  chapUser: string;
  chapPassword: string;
  sizes: Record<1 | 2 | 3, number>;
  chapSize: number;
  /** A unique initiator IQN, so tgtd's session list says which disk logged in. */
  initiator(tag: string): string;
  /** Defines (and starts, unless `start: false`) a domain; undefined+destroyed at cleanup. */
  domain(tag: string, opts?: Parameters<typeof minimalDomainXml>[1] & { start?: boolean }): string;
  /** Registers cleanup, run last-first. */
  cleanup(fn: () => unknown): void;
  /** Initiator names tgtd has a session from, on the given target. */
  sessions(iqn: string): string[];
  close(): Promise<void>;
}

/** Cleanup of a virsh object: already gone is fine. */
export function quietly(args: readonly string[]): void {
  spawnSync('virsh', ['-c', LIBVIRT_URI, ...args], { stdio: 'ignore' });
}

/** Removes a pool and the CHAP secret virt-iscsi may have made for it, whatever is left. */
export function removePool(name: string): void {
  quietly(['pool-destroy', name]);
  quietly(['pool-undefine', name]);
  for (const line of virsh(['secret-list']).split('\n')) {
    if (line.trim().endsWith(` virt-iscsi-pool-${name}`)) quietly(['secret-undefine', line.trim().split(/\s+/)[0]!]);
  }
}

export async function startEnv(prefix: string): Promise<Env> {
  const { cleanup, close } = cleanupStack();
  try {
    cleanup(await ensureLibvirtd());
    const tgtd = await startTgtd();
    cleanup(() => tgtd.stop());
    const dir = mkdtempSync(join(tmpdir(), `vit-${prefix}-`));
    cleanup(() => rmSync(dir, { recursive: true, force: true }));
    const id = randomBytes(4).toString('hex');
    const iqn = `iqn.2024-01.dev.virt-iscsi:${prefix}-${id}`;
    const chapIqn = `iqn.2024-01.dev.virt-iscsi:${prefix}-chap-${id}`;
    const sizes = { 1: 32 * MiB, 2: 8 * MiB, 3: 4 * MiB } as const;
    const chapSize = 16 * MiB;
    const file = (name: string, bytes: number): string => {
      const path = join(dir, name);
      writeFileSync(path, '');
      truncateSync(path, bytes);
      return path;
    };
    const lld = ['--lld', 'iscsi'];
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'target', '--tid', '1', '--targetname', iqn]);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', file('lun1.img', sizes[1])]);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '2', '-b', file('lun2.img', sizes[2])]);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '3', '-b', file('cd.iso', sizes[3]), '--device-type', 'cd']);
    tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'target', '--tid', '1', '--initiator-address', 'ALL']);
    // tgtadm takes the CHAP password on argv: it has no other way (test-only account).
    const chapUser = `u${id}`;
    const chapPassword = randomBytes(9).toString('base64url');
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'target', '--tid', '2', '--targetname', chapIqn]);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '2', '--lun', '1', '-b', file('chap.img', chapSize)]);
    tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'target', '--tid', '2', '--initiator-address', 'ALL']);
    tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'account', '--user', chapUser, '--password', chapPassword]);
    tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'account', '--tid', '2', '--user', chapUser]);
    return {
      id,
      tgtd,
      dir,
      iqn,
      chapIqn,
      chapUser,
      chapPassword,
      sizes,
      chapSize,
      initiator: (tag) => `iqn.2024-01.dev.virt-iscsi:${prefix}-${tag}-${id}`,
      domain(tag, opts = {}) {
        const name = `vit-${prefix}-${tag}-${id}`;
        cleanup(() => quietly(['undefine', name]));
        const xml = join(dir, `${name}.xml`);
        writeFileSync(xml, minimalDomainXml(name, opts));
        virsh(['define', xml]);
        if (opts.start !== false) {
          cleanup(() => quietly(['destroy', name]));
          virsh(['start', name]);
        }
        return name;
      },
      cleanup,
      sessions(target) {
        const shown = tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']);
        const block = shown.split(/^Target \d+: /m).find((b) => b.startsWith(`${target}\n`)) ?? '';
        return [...block.matchAll(/Initiator: (\S+)/g)].map((m) => m[1]!);
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
