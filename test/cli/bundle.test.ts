// The CLI users run (bin/virt-iscsi.js: esbuild's bundle in dist/bundle, made by npm run
// build) against the source entry the other tests run (src/cli/run.ts): same output, same
// exit codes, for a command that loads nothing lazily, one that loads its group's chunk,
// a usage error, a failure, and status (which loads the workflow and state code).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliWith, type CliResult } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(join(root, 'dist', 'bundle', 'main.js'));

function bundled(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin', 'virt-iscsi.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ status: code, stdout, stderr });
    });
  });
}

test('the bundled CLI answers as the source does', { skip: built ? false : 'dist/bundle is missing: npm run build (make test builds first)' }, async () => {
  const state = mkdtempSync(join(tmpdir(), 'vit-bundle-'));
  try {
    const env = { XDG_STATE_HOME: state };
    const cases: string[][] = [
      ['--version'],
      ['xml', 'disk', '--portal', '192.0.2.1', '--target', 'iqn.2001-04.com.example:storage.disk1', '--lun', '1', '--dev', 'sdb', '--bus', 'scsi'],
      ['iqn', 'check', 'iqn.2001-04.com.example:storage.disk1'],
      ['iqn', 'check', 'not-an-iqn'],
      ['xml', 'disk', '--portal', '192.0.2.1'],
      ['no-such-command'],
      ['status', '--json'],
    ];
    for (const args of cases) {
      const [a, b] = await Promise.all([bundled(args, env), cliWith(args, env)]);
      assert.deepEqual(a, b, `virt-iscsi ${args.join(' ')}: bundle and source differ`);
    }
    // The cases cover success, a failure (1) and a usage error (2).
    const codes = new Set((await Promise.all(cases.map((c) => bundled(c, env)))).map((r) => r.status));
    assert.deepEqual([...codes].sort(), [0, 1, 2]);
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
});
