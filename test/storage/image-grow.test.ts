// Growing an image file as it was made, for real on this machine's filesystem: the
// commands growImageArgv builds, run through the LocalRunner, checked with stat (length
// and blocks allocated).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChecked } from '../../src/runner/check.js';
import { LocalRunner } from '../../src/runner/local.js';
import { growImageArgv, growKind, imageAllocation, parseAllocation } from '../../src/storage/image.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'vit-grow-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const runner = new LocalRunner();

test('stat says how an image was made: sparse (holes) or allocated', async () => {
  assert.deepEqual(parseAllocation('67108864 8 512\n'), { sizeBytes: 67108864, allocatedBytes: 4096 });
  assert.throws(() => parseAllocation('67108864 8\n'), /not "SIZE BLOCKS BLOCKSIZE"/);
  const sparse = join(dir, 'sparse.img');
  writeFileSync(sparse, '');
  truncateSync(sparse, 8 * MiB);
  const full = join(dir, 'full.img');
  execFileSync('fallocate', ['-l', String(8 * MiB), full]);
  assert.equal(growKind(await imageAllocation(runner, sparse)), 'sparse');
  assert.equal(growKind(await imageAllocation(runner, full)), 'allocated');
});

test('grown as made: sparse stays sparse (truncate), allocated gets its new part allocated (fallocate); never shrinks, never creates', async () => {
  const sparse = join(dir, 'g-sparse.img');
  writeFileSync(sparse, 'data');
  truncateSync(sparse, 8 * MiB);
  await runChecked(runner, growImageArgv(sparse, 8 * MiB, 24 * MiB, 'sparse'));
  assert.equal(statSync(sparse).size, 24 * MiB);
  assert.ok(statSync(sparse).blocks * 512 < MiB, 'still sparse');
  const full = join(dir, 'g-full.img');
  execFileSync('fallocate', ['-l', String(8 * MiB), full]);
  await runChecked(runner, growImageArgv(full, 8 * MiB, 24 * MiB, 'allocated'));
  assert.equal(statSync(full).size, 24 * MiB);
  assert.ok(statSync(full).blocks * 512 >= 24 * MiB, 'every byte allocated');
  // A file grown meanwhile past the target is left as it is (truncate's ">" is "at least").
  await runChecked(runner, ['truncate', '--size', String(32 * MiB), sparse]);
  await runChecked(runner, growImageArgv(sparse, 8 * MiB, 24 * MiB, 'sparse'));
  assert.equal(statSync(sparse).size, 32 * MiB);
  // Never creates a file.
  await runChecked(runner, growImageArgv(join(dir, 'none.img'), 0 + 512, 1024, 'sparse'));
  assert.throws(() => statSync(join(dir, 'none.img')));
  assert.throws(() => growImageArgv(sparse, 8 * MiB, 4 * MiB, 'sparse'), /cannot grow .* from 8388608 to 4194304 bytes/);
  assert.throws(() => growImageArgv('rel.img', 0, 512, 'sparse'), /is not an absolute path/);
  assert.deepEqual(growImageArgv('/srv/a b.img', 1024, 4096, 'allocated'), ['fallocate', '--offset', '1024', '--length', '3072', '--', '/srv/a b.img']);
});
