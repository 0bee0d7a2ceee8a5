// Test files: sparse images, ISOs, unique names (other engineers' tests run at the same time).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function sparseImage(dir: string, name: string, bytes: number): string {
  const path = join(dir, name);
  closeSync(openSync(path, 'wx'));
  truncateSync(path, bytes);
  return path;
}

/** A real ISO 9660 image made by xorriso. */
export function isoImage(dir: string, name: string): string {
  const src = join(dir, `${name}.src`);
  mkdirSync(src);
  writeFileSync(join(src, 'hello.txt'), 'hello from virt-iscsi\n');
  const path = join(dir, name);
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-V', 'VIRTISCSI', '-o', path, src], { stdio: 'ignore' });
  return path;
}

export function qcow2Image(dir: string, name: string, size = '16M'): string {
  const path = join(dir, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, size]);
  return path;
}

/** iqn.2024-06.test.virt-iscsi:TAG-RANDOM */
export function uniqueIqn(tag: string): string {
  return `iqn.2024-06.test.virt-iscsi:${tag}-${randomBytes(4).toString('hex')}`;
}

export const isRoot = process.getuid?.() === 0;
