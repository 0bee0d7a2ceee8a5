// The iSCSI session parameters our tgt targets get (src/storage/tgt/session-params.ts):
// live on the target (tgtadm --op show --mode target --tid N lists a target's parameters),
// in its record, applied again by the real tgt-admin from that record and by `sync` when
// tgtd lost the target, and used by an initiator we did not write: QEMU's iscsi driver
// writes 256 KiB at once (data with the command, no R2T) and the bytes land in the image.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTgtd, type Tgtd } from '../../helpers/tgtd.js';
import { LocalRunner } from '../../../src/runner/local.js';
import { TgtBackend } from '../../../src/storage/tgt/backend.js';
import { recordFile } from '../../../src/storage/tgt/records.js';
import { qemuIo } from './initiator.js';
import { isRoot, sparseImage, uniqueIqn } from './files.js';

const skip = isRoot ? false : 'tgtd and tgt-admin need root';
let tgtd: Tgtd;
let dir = '';
let confDir = '';
let backend: TgtBackend;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-tgt-params-'));
  confDir = join(dir, 'conf.d');
  tgtd = await startTgtd();
  backend = new TgtBackend(new LocalRunner(), { controlPort: tgtd.controlPort, confDir });
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The target's session parameters as tgtd shows them ("InitialR2T=No" lines). */
function liveParams(tid: number): Map<string, string> {
  const text = tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target', '--tid', String(tid)]);
  return new Map([...text.matchAll(/^\s*(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()] as [string, string]));
}

const tidOf = (iqn: string): number => {
  const m = new RegExp(`^Target (\\d+): ${iqn.replace(/\./g, '\\.')}$`, 'm').exec(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']));
  assert.ok(m, `${iqn} is not live`);
  return Number(m[1]);
};

test('a target gets InitialR2T=No and a 256 KiB first burst, live, in its record, from tgt-admin and from sync', { skip }, async () => {
  const image = sparseImage(dir, 'params.img', 16 * 1024 * 1024);
  const iqn = uniqueIqn('params');
  const state = await backend.create({ iqn, luns: [{ lun: 1, path: image }], allow: ['127.0.0.1'], persist: true });
  const live = liveParams(state.tid!);
  assert.equal(live.get('InitialR2T'), 'No');
  assert.equal(live.get('FirstBurstLength'), '262144');
  // Parameters we leave alone keep tgt's defaults.
  assert.equal(live.get('MaxRecvDataSegmentLength'), '8192');

  const record = readFileSync(recordFile(confDir, iqn, 'persistent'), 'utf8');
  assert.match(record, /^\s+InitialR2T No$/m);
  assert.match(record, /^\s+FirstBurstLength 262144$/m);

  // 256 KiB of 0x5a at 1 MiB through QEMU's iscsi driver, then the bytes in the file.
  const w = qemuIo({ portal: tgtd.portal, iqn, lun: 1 }, 'write -P 0x5a 1M 256k');
  assert.equal(w.status, 0, w.stderr);
  assert.match(w.stdout, /wrote 262144\/262144 bytes/);
  const buf = Buffer.alloc(256 * 1024);
  const fd = openSync(image, 'r');
  try {
    assert.equal(readSync(fd, buf, 0, buf.length, 1024 * 1024), buf.length);
  } finally {
    closeSync(fd);
  }
  assert.ok(buf.every((b) => b === 0x5a), 'the written bytes are not all in the image');

  // tgtd loses the target; sync brings it back from the record, parameters included.
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'delete', '--force', '--mode', 'target', '--tid', String(state.tid)]);
  const items = await backend.sync();
  assert.equal(items.find((i) => i.iqn === iqn)?.status, 'restored');
  const restored = liveParams(tidOf(iqn));
  assert.equal(restored.get('InitialR2T'), 'No');
  assert.equal(restored.get('FirstBurstLength'), '262144');

  // And tgt-admin, reading the same record into a tgtd that has nothing.
  const other = await startTgtd();
  try {
    execFileSync('tgt-admin', ['-C', String(other.controlPort), '-c', recordFile(confDir, iqn, 'persistent'), '-e'], { encoding: 'utf8' });
    const text = other.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target', '--tid', '1']);
    assert.match(text, /^\s*InitialR2T=No$/m);
    assert.match(text, /^\s*FirstBurstLength=262144$/m);
  } finally {
    await other.stop();
  }
  await backend.delete(iqn);
});
