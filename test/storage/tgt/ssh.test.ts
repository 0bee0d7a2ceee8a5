// The storage host over SSH: the same backend and image code through a real sshd on
// 127.0.0.1 (SshRunner), driving a private tgtd, checked with libiscsi.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSshd, type Sshd } from '../../helpers/sshd.js';
import { startTgtd, type Tgtd } from '../../helpers/tgtd.js';
import { openRunner } from '../../../src/runner/open.js';
import { RecordingRunner } from '../../../src/runner/recording.js';
import type { Runner } from '../../../src/runner/types.js';
import { TgtBackend } from '../../../src/storage/tgt/backend.js';
import { convertImage, createImage } from '../../../src/storage/image.js';
import { ValidationError } from '../../../src/errors.js';
import { cli } from '../../cli/target-cli.js';
import { fingerprint, holdSession, inquiry } from './initiator.js';
import { isRoot, qcow2Image, sparseImage, uniqueIqn } from './files.js';

const skip = isRoot ? false : 'sshd as root and tgtd need root';
let sshd: Sshd;
let tgtd: Tgtd;
let runner: Runner;
let dir = '';
let confDir = '';
let backend: TgtBackend;
const show = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-ssh-'));
  confDir = join(dir, 'conf.d');
  [sshd, tgtd] = await Promise.all([startSshd(), startTgtd()]);
  runner = await openRunner(sshd.uri, { identity: sshd.identity, knownHosts: sshd.knownHosts, sshConfig: 'none' });
  backend = new TgtBackend(runner, { controlPort: tgtd.controlPort, confDir });
});

after(async () => {
  await runner?.close();
  await Promise.all([sshd?.stop(), tgtd?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('over SSH: create with CHAP (record written 0600 over SSH), libiscsi logs in, show lists the session, delete refuses then forces', { skip }, async () => {
  const disk = sparseImage(dir, 'ssh.img', 16 * 1024 * 1024);
  const iqn = uniqueIqn('ssh');
  const chap = { user: `s${iqn.slice(-8)}`, secret: 'Over-SSH-secret1' };
  const state = await backend.create({ iqn, luns: [{ lun: 1, path: disk, serial: 'SSHDISK1' }], allow: ['127.0.0.1'], chap, persist: true });
  assert.equal(state.luns[0]?.sizeBytes, 16 * 1024 * 1024);
  const record = join(confDir, `virt-iscsi-${iqn.replace(/:/g, '_')}.conf`);
  assert.equal(statSync(record).mode & 0o777, 0o600);
  const login = { portal: tgtd.portal, iqn, lun: 1, initiator: 'iqn.2024-06.test.virt-iscsi:ssh-holder', chap };
  assert.equal(inquiry(login).status, 0);
  assert.notEqual(inquiry({ ...login, chap: undefined }).status, 0);
  const print = fingerprint(disk);
  const session = await holdSession(login, () => show().includes(`Initiator: ${login.initiator}`));
  try {
    assert.deepEqual((await backend.show(iqn))?.sessions, [{ initiator: login.initiator, address: '127.0.0.1' }]);
    await assert.rejects(backend.delete(iqn), (e: unknown) => e instanceof ValidationError && /logged-in session/.test(e.message));
    await backend.delete(iqn, { force: true });
  } finally {
    await session.close();
  }
  assert.ok(!show().includes(iqn));
  assert.ok(!existsSync(record));
  assert.deepEqual(fingerprint(disk), print);
});

test('over SSH: sync restores a lost target; a dry run through SSH records the plan under the host and changes nothing', { skip }, async () => {
  const disk = sparseImage(dir, 'ssh-sync.img', 2 * 1024 * 1024);
  const iqn = uniqueIqn('sshsync');
  const created = await backend.create({ iqn, luns: [{ lun: 1, path: disk }], allow: ['127.0.0.1'], persist: true });
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', String(created.tid)]);
  const before = show();
  const plan = new RecordingRunner(runner);
  const planned = await new TgtBackend(plan, { controlPort: tgtd.controlPort, confDir }).sync();
  assert.equal(planned.find((i) => i.iqn === iqn)?.status, 'restored');
  assert.equal(show(), before);
  assert.match(plan.render(), new RegExp(`^# on ${sshd.uri.replace(/\./g, '\\.')}\\ntgtadm -C ${tgtd.controlPort} --lld iscsi --mode target --op new --tid \\d+ --targetname ${iqn.replace(/\./g, '\\.')}$`, 'm'));
  assert.equal((await backend.sync()).find((i) => i.iqn === iqn)?.status, 'restored');
  assert.equal(inquiry({ portal: tgtd.portal, iqn, lun: 1 }).status, 0);
  await backend.delete(iqn);
});

test('over SSH: image create refuses to overwrite; convert streams its progress back', { skip }, async () => {
  const path = join(dir, 'ssh-made.img');
  await createImage(runner, path, 64 * 1024 * 1024);
  assert.equal(statSync(path).size, 64 * 1024 * 1024);
  await assert.rejects(createImage(runner, path, 512), /already exists on ssh:\/\/root@127\.0\.0\.1:\d+; refusing to overwrite it/);
  const src = qcow2Image(dir, 'ssh-in.qcow2', '64M');
  execFileSync('qemu-io', ['-c', 'write -P 0x77 0 16M', src], { stdio: 'ignore' });
  const out = join(dir, 'ssh-out.img');
  const seen: number[] = [];
  await convertImage(runner, src, out, { onProgress: (p) => seen.push(p) });
  assert.equal(seen[seen.length - 1], 100);
  assert.equal(spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', src, out]).status, 0);
});

test('the CLI with --host ssh://: create and list through the real sshd', { skip }, async () => {
  const disk = sparseImage(dir, 'ssh-cli.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('sshcli');
  const host = ['--host', sshd.uri, '--identity', sshd.identity, '--known-hosts', sshd.knownHosts, '--control-port', String(tgtd.controlPort), '--conf-dir', confDir];
  const created = await cli(['target', 'create', iqn, '--lun', `1=${disk}`, '--allow', '127.0.0.1', ...host]);
  assert.equal(created.status, 0, created.stderr);
  assert.match(created.stdout, new RegExp(`^created target ${iqn.replace(/\./g, '\\.')} on ${sshd.uri.replace(/\./g, '\\.')}\\n`));
  const list = await cli(['target', 'list', '--json', ...host]);
  assert.equal(list.status, 0, list.stderr);
  assert.ok(JSON.parse(list.stdout).some((t: { iqn: string }) => t.iqn === iqn));
  assert.equal(inquiry({ portal: tgtd.portal, iqn, lun: 1 }).status, 0);
  assert.equal((await cli(['target', 'delete', iqn, ...host])).status, 0);
  assert.ok(!show().includes(iqn));
});
