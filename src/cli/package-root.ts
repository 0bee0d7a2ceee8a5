// Where the package's own files (templates/, schema/) are, from wherever this module was
// loaded: src/cli (tsx), dist/cli (tsc) or dist/bundle (esbuild puts every module of the
// CLI there, one level less deep). The first directory up that holds our package.json.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'virt-iscsi') return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`the virt-iscsi package root is not above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** A file or directory of the package, e.g. packagePath('templates'). */
export const packagePath = (...parts: string[]): string => join(packageRoot(), ...parts);
