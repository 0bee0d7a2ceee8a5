// `npm run build`, after tsc: the CLI that bin/virt-iscsi.js runs, bundled by esbuild into
// dist/bundle: main.js and one chunk per part that is loaded only when used (each command
// group, execa, ssh.js), with commander, execa and fast-xml-parser inside. ssh2 stays in
// node_modules (its optional native parts are found at run time). Loading one file instead
// of a file per module and package is what it is for: bench/startup.ts measures it.
// tsc's dist/ (a file per module, with .d.ts) stays the library (dist/index.js).
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/bundle`;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [`${root}src/cli/main.ts`],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['ssh2'],
  // commander is CommonJS: its require() calls of node: modules need a require in ESM.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
