// `virt-iscsi target ...` run as a user would, against a private tgtd on 127.0.0.1,
// with what it serves checked by libiscsi.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/daemon.js';
import { fingerprint, holdSession, inquiry } from '../storage/tgt/initiator.js';
import { isRoot, isoImage, sparseImage, uniqueIqn } from '../storage/tgt/files.js';
import { cli, oneLineFailure } from './target-cli.js';

const skip = isRoot ? false : 'tgtd needs root';
let tgtd: Tgtd;
let dir = '';
let confDir = '';
let common: string[] = [];
const show = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-cli-target-'));
  confDir = join(dir, 'conf.d');
  tgtd = await startTgtd();
  common = ['--control-port', String(tgtd.controlPort), '--conf-dir', confDir];
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('create with per-LUN flags, CHAP from a file and a generated mutual secret (--json); the printed secret is the one that works', { skip }, async () => {
  const disk = sparseImage(dir, 'cli-disk.img', 32 * 1024 * 1024);
  const iso = isoImage(dir, 'cli.iso');
  const iqn = uniqueIqn('cli');
  const secretFile = join(dir, 'chap.secret');
  writeFileSync(secretFile, 'Cli-Secret-0001\n', { mode: 0o600 });
  const user = `c${iqn.slice(-8)}`;
  const r = await cli([
    'target', 'create', iqn,
    '--lun', `1=${disk}`, '--serial', 'CLIDISK1', '--vendor-id', 'VIRTISCS',
    '--lun', `2=${iso}`, '--cdrom',
    '--allow', '127.0.0.1',
    '--chap', user, '--chap-secret-file', secretFile,
    '--mutual-chap', `m${user}`, '--generate-secret',
    '--json', ...common,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const state = JSON.parse(r.stdout);
  assert.equal(state.iqn, iqn);
  assert.deepEqual(
    state.luns.map((l: { lun: number; type: string; readonly: boolean; serial?: string }) => [l.lun, l.type, l.readonly]),
    [
      [1, 'disk', false],
      [2, 'cd/dvd', true],
    ],
  );
  assert.equal(state.luns[0].serial, 'CLIDISK1');
  assert.deepEqual(Object.keys(state.generatedSecrets), [`m${user}`]);
  const mutualSecret: string = state.generatedSecrets[`m${user}`];
  assert.match(mutualSecret, /^[A-Za-z0-9]{16}$/);
  const chap = { user, secret: 'Cli-Secret-0001', targetUser: `m${user}`, targetSecret: mutualSecret };
  const inq = inquiry({ portal: tgtd.portal, iqn, lun: 2, chap });
  assert.equal(inq.status, 0, inq.stderr);
  assert.match(inq.stdout, /Peripheral Device Type:MMC/);
  assert.notEqual(inquiry({ portal: tgtd.portal, iqn, lun: 1 }).status, 0, 'CHAP is required');
  // The secrets are in the 0600 record, where tgt-admin needs them, and nowhere else.
  const record = readdirSync(confDir).find((f) => f.includes(iqn.split(':')[1]!))!;
  assert.ok(readFileSync(join(confDir, record), 'utf8').includes(mutualSecret));

  const list = await cli(['target', 'list', '--json', ...common]);
  assert.equal(list.status, 0, list.stderr);
  assert.ok(JSON.parse(list.stdout).some((t: { iqn: string; managed: boolean }) => t.iqn === iqn && t.managed));
  const text = await cli(['target', 'show', iqn, ...common]);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`LUN 2: ${iso.replace(/\./g, '\\.')} \\(cd/dvd, .*read-only`));
  assert.match(text.stdout, new RegExp(`CHAP users: ${user}\\n  mutual CHAP \\(target\\) user: m${user}`));
  assert.ok(!text.stdout.includes(mutualSecret) && !text.stdout.includes('Cli-Secret-0001'));

  const del = await cli(['target', 'delete', iqn, ...common]);
  assert.equal(del.status, 0, del.stderr);
  assert.ok(!show().includes(iqn));
  assert.equal(readdirSync(confDir).find((f) => f.includes(iqn.split(':')[1]!)), undefined);
});

test('--dry-run prints the exact commands with secrets masked and changes nothing; with --json it is one document', { skip }, async () => {
  const disk = sparseImage(dir, 'dry.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('dry');
  const secretFile = join(dir, 'dry.secret');
  writeFileSync(secretFile, 'Dry-Run-Secret1');
  const before = show();
  const confBefore = existsSync(confDir) ? readdirSync(confDir) : [];
  const args = ['target', 'create', iqn, '--lun', `1=${disk}`, '--allow', '127.0.0.1', '--chap', 'dryuser', '--chap-secret-file', secretFile, '--dry-run', ...common];
  const r = await cli(args);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^would create target /);
  assert.match(r.stdout, new RegExp(`^tgtadm -C ${tgtd.controlPort} --lld iscsi --mode target --op new --tid \\d+ --targetname ${iqn.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(r.stdout, /^tgtadm .* --mode account --op new --user dryuser --password \*{8}$/m);
  assert.match(r.stdout, /^install -m 0600 \/dev\/stdin .*virt-iscsi-.*\.conf <<'EOF'\n\*{8}\nEOF$/m);
  assert.ok(!r.stdout.includes('Dry-Run-Secret1'));
  const j = await cli([...args, '--json']);
  assert.equal(j.status, 0, j.stderr);
  const doc = JSON.parse(j.stdout);
  assert.equal(doc.dryRun, true);
  assert.equal(doc.result.iqn, iqn);
  assert.ok(doc.plan.some((s: { shell: string }) => s.shell.includes('--op bind --tid') && s.shell.includes('127.0.0.1')));
  assert.ok(!j.stdout.includes('Dry-Run-Secret1'));
  assert.equal(show(), before);
  assert.deepEqual(existsSync(confDir) ? readdirSync(confDir) : [], confBefore);
});

test('delete refuses while an initiator is logged in (exit 1, one line), --force goes ahead; the image is untouched', { skip }, async () => {
  const disk = sparseImage(dir, 'cli-busy.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('clibusy');
  const created = await cli(['target', 'create', iqn, '--lun', `1=${disk}`, '--allow', '127.0.0.1', ...common]);
  assert.equal(created.status, 0, created.stderr);
  const print = fingerprint(disk);
  const initiator = 'iqn.2024-06.test.virt-iscsi:cli-holder';
  const session = await holdSession({ portal: tgtd.portal, iqn, lun: 1, initiator }, () => show().includes(`Initiator: ${initiator}`));
  try {
    const refused = oneLineFailure(await cli(['target', 'delete', iqn, ...common]));
    assert.match(refused, /has 1 logged-in session\(s\) \(iqn\.2024-06\.test\.virt-iscsi:cli-holder from 127\.0\.0\.1\): log them out first, or pass --force/);
    assert.ok(show().includes(iqn));
    const forced = await cli(['target', 'delete', iqn, '--force', ...common]);
    assert.equal(forced.status, 0, forced.stderr);
    assert.ok(!show().includes(iqn));
  } finally {
    await session.close();
  }
  assert.deepEqual(fingerprint(disk), print);
});

test('sync restores a target lost from tgtd, and exits 1 while a record cannot be read', { skip }, async () => {
  const disk = sparseImage(dir, 'cli-sync.img', 4 * 1024 * 1024);
  const iqn = uniqueIqn('clisync');
  const created = JSON.parse((await cli(['target', 'create', iqn, '--lun', `1=${disk}`, '--allow', '127.0.0.1', '--json', ...common])).stdout);
  tgtd.tgtadm(['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', String(created.tid)]);
  const dry = await cli(['target', 'sync', '--dry-run', ...common]);
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`would restore: ${iqn.replace(/\./g, '\\.')}`));
  assert.ok(!show().includes(iqn), 'a dry run restores nothing');
  const r = await cli(['target', 'sync', ...common]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`restored: ${iqn.replace(/\./g, '\\.')}\\n  created live as tid \\d+`));
  assert.equal(inquiry({ portal: tgtd.portal, iqn, lun: 1 }).status, 0);

  const broken = join(confDir, 'virt-iscsi-iqn.2024-06.test.virt-iscsi_broken.conf');
  writeFileSync(broken, '# virt-iscsi: target iqn.2024-06.test.virt-iscsi:broken (persistent: tgt-admin loads this file when tgtd starts)\n<target iqn.2024-06.test.virt-iscsi:broken>\n');
  try {
    const bad = await cli(['target', 'sync', '--json', ...common]);
    assert.equal(bad.status, 1);
    assert.equal(JSON.parse(bad.stdout).find((i: { iqn: string }) => i.iqn.endsWith(':broken')).status, 'unreadable');
    assert.equal(bad.stderr, 'virt-iscsi: 1 target(s) still differ from their records: iqn.2024-06.test.virt-iscsi:broken (unreadable)\n');
  } finally {
    rmSync(broken);
  }
  assert.equal((await cli(['target', 'delete', iqn, ...common])).status, 0);
});

test('create starts a stopped private tgtd on --control-port and --portal, which then serves the target', { skip }, async () => {
  let controlPort = 0;
  do controlPort = 30000 + Math.floor(Math.random() * 2767);
  while (existsSync(`/run/tgtd/socket.${controlPort}`));
  const port = await freePort();
  const pidFile = `/run/tgtd-${controlPort}.pid`;
  const own = join(dir, 'own-conf.d');
  const iqn = uniqueIqn('autostart');
  const disk = sparseImage(dir, 'autostart.img', 2 * 1024 * 1024);
  try {
    const r = await cli(['target', 'create', iqn, '--lun', `1=${disk}`, '--allow', '127.0.0.1', '--no-persist', '--control-port', String(controlPort), '--portal', `127.0.0.1:${port}`, '--conf-dir', own]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(inquiry({ portal: `127.0.0.1:${port}`, iqn, lun: 1 }).status, 0);
    assert.equal((await cli(['target', 'delete', iqn, '--control-port', String(controlPort), '--conf-dir', own])).status, 0);
  } finally {
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      spawnSync('tgtadm', ['-C', String(controlPort), '--op', 'delete', '--mode', 'system']);
      await waitFor(`tgtd ${pid} to exit`, () => spawnSync('kill', ['-0', String(pid)]).status !== 0, 5000).catch(() => process.kill(pid, 'SIGKILL'));
      rmSync(pidFile, { force: true });
    }
  }
});
