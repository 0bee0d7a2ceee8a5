// `virt-iscsi image create|convert` run as a user would.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { progressBar } from '../../src/cli/commands/image.js';
import { fingerprint } from '../storage/tgt/initiator.js';
import { qcow2Image } from '../storage/tgt/files.js';
import { cli, oneLineFailure, root } from './target-cli.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-cli-image-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('image create: a sparse raw file of the size asked; refuses an existing file, a bad size, a relative path', async () => {
  const path = join(dir, 'made.img');
  const r = await cli(['image', 'create', path, '--size', '10G']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `created ${path} (10 GiB, sparse raw) on local\n`);
  assert.equal(statSync(path).size, 10 * 2 ** 30);
  assert.ok(statSync(path).blocks < 2048, 'sparse');
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' }));
  assert.equal(info.format, 'raw');

  writeFileSync(path, 'keep me', { flag: 'r+' });
  const print = fingerprint(path);
  const [again, badSize, relative] = await Promise.all([
    cli(['image', 'create', path, '--size', '1G']),
    cli(['image', 'create', join(dir, 'x.img'), '--size', '10Q']),
    cli(['image', 'create', 'relative.img', '--size', '1G']),
  ]);
  assert.equal(oneLineFailure(again), `virt-iscsi: image ${JSON.stringify(path)} already exists on local; refusing to overwrite it`);
  assert.match(oneLineFailure(badSize), /^virt-iscsi: size "10Q" is not a size/);
  assert.equal(oneLineFailure(relative), 'virt-iscsi: image path "relative.img" is not an absolute path');
  assert.deepEqual(fingerprint(path), print);
});

test('image convert: qcow2 to raw with progress lines on stderr (not a terminal), the same data, never over an existing file', async () => {
  const src = qcow2Image(dir, 'in.qcow2', '128M');
  execFileSync('qemu-io', ['-c', 'write -P 0x42 0 8M', '-c', 'write -P 0x24 100M 8M', src], { stdio: 'ignore' });
  const out = join(dir, 'out.img');
  const r = await cli(['image', 'convert', src, out]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `converted ${src} (qcow2) to ${out} (raw) on local\n`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.ok(lines.length >= 2 && lines.every((l) => /^converting: \d+%$/.test(l)), r.stderr);
  assert.equal(lines[lines.length - 1], 'converting: 100%');
  const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', src, out], { encoding: 'utf8' });
  assert.equal(cmp.status, 0, cmp.stdout);
  const print = fingerprint(out);
  assert.match(oneLineFailure(await cli(['image', 'convert', src, out])), /out\.img" already exists on local; refusing to overwrite it$/);
  assert.deepEqual(fingerprint(out), print);
});

test('image convert on a terminal: a bar redrawn in place', async () => {
  const src = qcow2Image(dir, 'tty.qcow2', '32M');
  const out = join(dir, 'tty.img');
  // script(1) gives the command a pseudo-terminal; its output holds what the terminal got.
  const r = spawnSync('script', ['-qfec', `${process.execPath} --import tsx src/cli/run.ts image convert ${src} ${out}`, '/dev/null'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\r\[#{30}\] 100%\r?\n/);
  assert.match(r.stdout, /\r\[-{30}\]   0%/);
});

test('the bar', () => {
  assert.equal(progressBar(0, 10), '[----------]   0%');
  assert.equal(progressBar(42.4, 10), '[####------]  42%');
  assert.equal(progressBar(100, 10), '[##########] 100%');
});
