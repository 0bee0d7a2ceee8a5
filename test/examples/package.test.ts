// The package as a new user gets it: `npm pack`, then `npm i ./virt-iscsi-*.tgz` in an empty
// project; `import('virt-iscsi')` gives the typed library (its .d.ts shipped), the installed
// `virt-iscsi` command runs, and examples/library.ts plans a real export in dry run against
// this machine's libvirtd and a real domain, changing nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../helpers/libvirt.js';
import { cleanupStack } from '../helpers/cleanups.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsx = join(root, 'node_modules', 'tsx', 'dist', 'esm', 'index.mjs');

test('the packed tarball installs into an empty project: library import, types, the command, examples/library.ts in dry run', async (t) => {
  const { cleanup, close } = cleanupStack();
  t.after(close);
  cleanup(await ensureLibvirtd());
  if (!existsSync(join(root, 'dist', 'index.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  const dir = mkdtempSync(join(tmpdir(), 'vit-pkg-'));
  cleanup(() => rmSync(dir, { recursive: true, force: true }));

  const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop()!;
  const tarball = join(dir, packed);
  const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' });
  for (const f of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/bin/virt-iscsi.js', 'package/README.md', 'package/examples/library.ts']) {
    assert.ok(listing.split('\n').includes(f), `the tarball ships ${f}`);
  }
  assert.doesNotMatch(listing, /package\/(test|src|node_modules)\//, 'no tests, sources or dependencies in the tarball');

  const project = join(dir, 'project');
  execFileSync('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-virt-iscsi', version: '1.0.0', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project, stdio: 'ignore', timeout: 300_000 });

  // The library: the named exports, and the type declarations beside them.
  const probe = execFileSync(
    process.execPath,
    ['--input-type=module', '-e', "const m = await import('virt-iscsi'); console.log(JSON.stringify(['exportImage', 'unexport', 'status', 'apply', 'destroy', 'Session', 'openRunner', 'parseIscsiName', 'buildPool', 'buildDisk', 'ValidationError', 'MODES'].map((k) => [k, typeof m[k]])));"],
    { cwd: project, encoding: 'utf8' },
  );
  for (const [name, type] of JSON.parse(probe) as Array<[string, string]>) assert.notEqual(type, 'undefined', `virt-iscsi exports ${name}`);
  const pkg = JSON.parse(readFileSync(join(project, 'node_modules', 'virt-iscsi', 'package.json'), 'utf8')) as { exports: { '.': { types: string } } };
  assert.ok(existsSync(join(project, 'node_modules', 'virt-iscsi', pkg.exports['.'].types)), 'the types named in exports are there');
  assert.match(readFileSync(join(project, 'node_modules', 'virt-iscsi', 'dist', 'index.d.ts'), 'utf8'), /export \{ exportImage/);

  // The command, installed.
  const version = spawnSync(join(project, 'node_modules', '.bin', 'virt-iscsi'), ['--version'], { encoding: 'utf8' });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);

  // examples/library.ts, from the installed package, planning a real export in dry run.
  const domain = `vit-pkg-${process.pid}`;
  const xml = join(dir, 'domain.xml');
  writeFileSync(xml, minimalDomainXml(domain));
  execFileSync('virsh', ['-c', LIBVIRT_URI, 'define', xml], { stdio: 'ignore' });
  cleanup(() => spawnSync('virsh', ['-c', LIBVIRT_URI, 'undefine', domain], { stdio: 'ignore' }));
  const image = join(dir, 'data.img');
  writeFileSync(image, '');
  truncateSync(image, 4 * 1024 * 1024);
  copyFileSync(join(project, 'node_modules', 'virt-iscsi', 'examples', 'library.ts'), join(project, 'library.ts'));
  const before = execFileSync('virsh', ['-c', LIBVIRT_URI, 'dumpxml', '--inactive', domain], { encoding: 'utf8' });
  const run = spawnSync(process.execPath, ['--import', tsx, 'library.ts', image, domain], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, XDG_STATE_HOME: join(dir, 'state') },
    timeout: 120_000,
  });
  assert.equal(run.status, 0, run.stderr + run.stdout);
  assert.match(run.stdout, /^step \d+: create target iqn\.\S+:data on local/m);
  assert.match(run.stdout, /the plan \(nothing was changed\):/);
  assert.match(run.stdout, /attach-device --domain vit-pkg-\d+ --file \/dev\/stdin/);
  assert.equal(execFileSync('virsh', ['-c', LIBVIRT_URI, 'dumpxml', '--inactive', domain], { encoding: 'utf8' }), before, 'the dry run changed nothing');
  assert.equal(existsSync(join(dir, 'state')) && readdirSync(join(dir, 'state')).length > 0, false, 'and wrote no record');
});
