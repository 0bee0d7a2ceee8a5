// Picking the backend: by name, or by what the host has installed and running.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { PrerequisiteError, ValidationError } from '../../src/errors.js';
import { LocalRunner } from '../../src/runner/local.js';
import { createBackend, detectBackend, parseBackendName, probeBackends } from '../../src/storage/backends.js';
import { isRoot } from './tgt/files.js';
import { PathRunner } from './tgt/path-runner.js';

const skip = isRoot ? false : 'tgtd needs root';
let tgtd: Tgtd | undefined;
before(async () => {
  if (!skip) tgtd = await startTgtd();
});
after(async () => tgtd?.stop());

test('a running private tgtd is found installed and running, and chosen', { skip }, async () => {
  const runner = new LocalRunner();
  const probes = await probeBackends(runner, { controlPort: tgtd!.controlPort });
  assert.deepEqual(probes[0], { name: 'tgt', installed: true, running: true });
  assert.equal(probes[1]!.installed, existsSync('/usr/bin/targetcli'));
  assert.equal(await detectBackend(runner, { controlPort: tgtd!.controlPort }), 'tgt');
  const backend = createBackend('tgt', runner, { controlPort: tgtd!.controlPort });
  // The backend createBackend hands out (each change under the host's lock) talks to that tgtd.
  assert.equal(backend.name, 'tgt');
  assert.equal(await backend.status(), 'running');
  assert.deepEqual(await backend.list(), []);
});

test('the host this runs on: tgt is installed (the project sets it up), so it is detected', { skip }, async () => {
  assert.equal(await detectBackend(new LocalRunner()), 'tgt');
});

test('a host with no target software: one line naming what to install', async () => {
  const runner = new PathRunner(['/usr/bin/test']);
  try {
    assert.deepEqual(
      (await probeBackends(runner)).map((p) => [p.name, p.installed, p.running]),
      [
        ['tgt', false, false],
        ['lio', false, false],
        ['iet', false, false],
      ],
    );
    await assert.rejects(detectBackend(runner), (e: unknown) => e instanceof PrerequisiteError && /^no iSCSI target software on local: install tgt/.test(e.message));
  } finally {
    await runner.close();
  }
});

test('backend names', () => {
  assert.equal(parseBackendName('iet'), 'iet');
  assert.throws(() => parseBackendName('scst'), (e: unknown) => e instanceof ValidationError && e.message === 'backend "scst" is not one of tgt, lio, iet');
});
