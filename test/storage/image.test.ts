// Images on a host through a Runner: sparse raw creation that never overwrites, format
// detection (qemu-img, or magic numbers where it is missing), conversion with progress.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../../src/errors.js';
import { LocalRunner } from '../../src/runner/local.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import { checkServableImage, convertImage, createImage, imageFormat, rawNameFor } from '../../src/storage/image.js';
import { qemuProgressParser } from '../../src/storage/qemu-progress.js';
import { formatSize, parseSize } from '../../src/storage/size.js';
import { fingerprint } from './tgt/initiator.js';
import { isoImage, qcow2Image, sparseImage } from './tgt/files.js';
import { PathRunner } from './tgt/path-runner.js';

const runner = new LocalRunner();
let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-image-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('parseSize: suffixes in powers of 1024, whole sectors only', () => {
  assert.equal(parseSize('10G'), 10 * 2 ** 30);
  assert.equal(parseSize('512M'), 512 * 2 ** 20);
  assert.equal(parseSize('1.5T'), 1.5 * 2 ** 40);
  assert.equal(parseSize('4k'), 4096);
  assert.equal(parseSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseSize('1048576'), 2 ** 20);
  for (const bad of ['', 'ten', '10X', '-1G', '0', '1000', '0.3K']) {
    assert.throws(() => parseSize(bad), (e: unknown) => e instanceof ValidationError && e.message.startsWith(`size ${JSON.stringify(bad)}`), bad);
  }
  assert.equal(formatSize(10 * 2 ** 30), '10 GiB');
  assert.equal(formatSize(1536 * 2 ** 20), '1.5 GiB');
});

test('createImage makes a sparse raw file of the exact size and refuses to overwrite anything', async () => {
  const path = join(dir, 'new.img');
  await createImage(runner, path, 2 * 2 ** 30);
  const st = statSync(path);
  assert.equal(st.size, 2 * 2 ** 30);
  assert.ok(st.blocks * 512 < 1024 * 1024, `sparse: ${st.blocks} blocks allocated`);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(await imageFormat(runner, path), 'raw');

  writeFileSync(path, 'precious data', { flag: 'r+' });
  const print = fingerprint(path);
  await assert.rejects(createImage(runner, path, 4096), (e: unknown) => e instanceof ValidationError && /already exists on local; refusing to overwrite it/.test(e.message));
  assert.deepEqual(fingerprint(path), print);
  // Not even a device or a directory is opened.
  await assert.rejects(createImage(runner, '/dev/null', 4096), /already exists/);
  await assert.rejects(createImage(runner, dir, 4096), /already exists/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('new.img.')), [], 'no temporary file left behind');
});

test('two racing creates of one path: exactly one wins, the other is refused', async () => {
  const path = join(dir, 'race.img');
  const results = await Promise.allSettled([createImage(runner, path, 1 << 20), createImage(new LocalRunner(), path, 2 << 20), createImage(new LocalRunner(), path, 3 << 20)]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.match(String(r.reason), /already exists/);
  assert.ok([1 << 20, 2 << 20, 3 << 20].includes(statSync(path).size));
});

test('image format: qemu-img when installed, the magic numbers when not', async () => {
  const qcow = qcow2Image(dir, 'fmt.qcow2');
  const vmdk = join(dir, 'fmt.vmdk');
  execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', vmdk, '8M']);
  const raw = sparseImage(dir, 'fmt.img', 1 << 20);
  const iso = isoImage(dir, 'fmt.iso');
  assert.equal(await imageFormat(runner, qcow), 'qcow2');
  assert.equal(await imageFormat(runner, vmdk), 'vmdk');
  assert.equal(await imageFormat(runner, raw), 'raw');
  assert.equal(await imageFormat(runner, iso), 'raw');
  const noQemu = new PathRunner(['/usr/bin/od']);
  try {
    assert.equal(await imageFormat(noQemu, qcow), 'qcow2');
    assert.equal(await imageFormat(noQemu, vmdk), 'vmdk');
    assert.equal(await imageFormat(noQemu, raw), 'raw');
    await assert.rejects(imageFormat(noQemu, join(dir, 'nope')), /cannot be read on local: .*No such file/);
  } finally {
    await noQemu.close();
  }
});

test('checkServableImage: one line for each thing tgt cannot serve', async () => {
  const empty = join(dir, 'empty.img');
  writeFileSync(empty, '');
  const sub = join(dir, 'subdir');
  mkdirSync(sub);
  // A symlink loop: stat's own "Too many levels of symbolic links" became our words.
  symlinkSync('loop-b.img', join(dir, 'loop-a.img'));
  symlinkSync('loop-a.img', join(dir, 'loop-b.img'));
  const cases: Array<[string, RegExp]> = [
    [join(dir, 'loop-a.img'), /^image ".*loop-a\.img" is a loop of symbolic links on local$/],
    [join(dir, 'missing.img'), /missing\.img" does not exist on local$/],
    [sub, /subdir" is a directory, not an image file or block device$/],
    ['/dev/null', /"\/dev\/null" is a character special file, not an image file or block device$/],
    [empty, /empty\.img" is empty \(0 bytes\)$/],
    [join(dir, 'missing.img', 'x'), /does not exist/],
    [qcow2Image(dir, 'serve.qcow2'), /serve\.qcow2" is qcow2, but tgt serves raw images only: convert it first with "virt-iscsi image convert .*serve\.qcow2 .*serve\.img"$/],
  ];
  for (const [path, message] of cases) {
    await assert.rejects(checkServableImage(runner, path), (e: unknown) => e instanceof ValidationError && message.test(e.message), path);
  }
  const ok = await checkServableImage(runner, sparseImage(dir, 'serve.img', 3 << 20));
  assert.deepEqual([ok.kind, ok.sizeBytes, ok.format], ['file', 3 << 20, 'raw']);
  assert.equal(rawNameFor('/srv/vm.disk.qcow2'), '/srv/vm.disk.img');
  assert.equal(rawNameFor('/srv/plain'), '/srv/plain.img');
});

test('convertImage: qcow2 to raw with the same content, progress up to 100%, and never over an existing file', async () => {
  const src = qcow2Image(dir, 'conv.qcow2', '64M');
  execFileSync('qemu-io', ['-c', 'write -P 0x5a 1M 4M', '-c', 'write -P 0x11 60M 1M', src], { stdio: 'ignore' });
  const out = join(dir, 'conv.img');
  const seen: number[] = [];
  const r = await convertImage(runner, src, out, { onProgress: (p) => seen.push(p) });
  assert.equal(r.inputFormat, 'qcow2');
  assert.equal(statSync(out).size, 64 << 20);
  assert.equal(await imageFormat(runner, out), 'raw');
  const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', src, out], { encoding: 'utf8' });
  assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  assert.ok(seen.length >= 2, `progress: ${seen.join(' ')}`);
  assert.equal(seen[seen.length - 1], 100);
  assert.deepEqual([...seen].sort((a, b) => a - b), seen, 'progress only goes up');

  const print = fingerprint(out);
  await assert.rejects(convertImage(runner, src, out), (e: unknown) => e instanceof ValidationError && /conv\.img" already exists on local; refusing to overwrite it/.test(e.message));
  assert.deepEqual(fingerprint(out), print);
  await assert.rejects(convertImage(runner, join(dir, 'none.qcow2'), join(dir, 'x.img')), /none\.qcow2" does not exist/);
  await assert.rejects(convertImage(runner, src, join(dir, 'x.img'), { format: 'ra w' }), /format "ra w" is not a qemu-img format name/);
  // A conversion that fails (qemu-img knows no such format) leaves neither the output nor its temporary file.
  await assert.rejects(convertImage(runner, src, join(dir, 'failed.img'), { format: 'nosuchformat' }), /Unknown file format 'nosuchformat'/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('failed.img')), []);
  await assert.rejects(convertImage(runner, src, join(dir, 'no-such-dir', 'x.img')), /mktemp/);
});

test('a dry run of create and convert records one command each and creates nothing', async () => {
  const plan = new RecordingRunner(runner);
  const target = join(dir, 'planned.img');
  await createImage(plan, target, 1 << 30);
  const src = qcow2Image(dir, 'planned.qcow2');
  await convertImage(plan, src, join(dir, 'planned-out.img'));
  assert.equal(plan.steps.length, 2);
  assert.match(plan.steps[0]!.shell, /^sh -c '.*ln -T .*' sh \S+planned\.img 1073741824$/);
  assert.match(plan.steps[1]!.shell, /^sh -c '.*qemu-img convert -p .*' sh qcow2 raw \S+planned\.qcow2 \S+planned-out\.img$/);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('planned') && f.endsWith('.img')), []);
});

test('the progress parser: updates split across chunks, carriage returns, the final newline', () => {
  const seen: number[] = [];
  const feed = qemuProgressParser((p) => seen.push(p));
  for (const chunk of ['    (0.00/10', '0%)\r    (1.01/100%)\r    (50', '.50/100%)\r', '    (100.00/100%)\r\n']) feed(chunk);
  assert.deepEqual(seen, [0, 1.01, 50.5, 100]);
});
