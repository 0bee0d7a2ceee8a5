// Every bad input of `target create` (issue 3): exit 1, one line on stderr naming the bad
// value, nothing on stdout, and nothing changed in tgtd or in the conf dir.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { freePort } from '../helpers/ports.js';
import { isRoot, qcow2Image, sparseImage, uniqueIqn } from '../storage/tgt/files.js';
import { cli, oneLineFailure } from './target-cli.js';

const skip = isRoot ? false : 'tgtd needs root';
let tgtd: Tgtd;
let dir = '';
let confDir = '';
let common: string[] = [];
let taken = { iqn: '', tid: 0, image: '' };
const show = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
const accounts = (): string => tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'account']);

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-cli-bad-'));
  confDir = join(dir, 'conf.d');
  tgtd = await startTgtd();
  common = ['--control-port', String(tgtd.controlPort), '--conf-dir', confDir];
  const image = sparseImage(dir, 'taken.img', 1024 * 1024);
  const iqn = uniqueIqn('taken');
  const r = await cli(['target', 'create', iqn, '--lun', `1=${image}`, '--allow', '127.0.0.1', '--json', ...common]);
  assert.equal(r.status, 0, r.stderr);
  taken = { iqn, tid: JSON.parse(r.stdout).tid, image };
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const snapshot = (): string[] => [show(), accounts(), readdirSync(confDir).sort().join(',')];

/** Runs `target create` and checks the refusal left tgtd and the conf dir as they were. */
async function refused(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const before = snapshot();
  const line = oneLineFailure(await cli(['target', 'create', ...args], env));
  assert.deepEqual(snapshot(), before, `${line}: something changed`);
  return line;
}

/** Several refusals at once (each CLI start costs seconds): each must match its message. */
async function allRefused(cases: ReadonlyArray<[string[], RegExp]>): Promise<void> {
  const before = snapshot();
  const results = await Promise.all(cases.map(([args]) => cli(['target', 'create', ...args])));
  for (const [i, r] of results.entries()) assert.match(oneLineFailure(r), cases[i]![1]);
  assert.deepEqual(snapshot(), before, 'something changed');
}

test('bad images: missing, unreadable path, a directory, already served, a qcow2', { skip }, async () => {
  const iqn = uniqueIqn('bad');
  const sub = join(dir, 'a-directory');
  mkdirSync(sub);
  const qcow = qcow2Image(dir, 'vm.qcow2');
  const cases: Array<[string, RegExp]> = [
    [join(dir, 'missing.img'), /^virt-iscsi: image ".*missing\.img" does not exist on local$/],
    [join(taken.image, 'below-a-file.img'), /^virt-iscsi: image ".*taken\.img\/below-a-file\.img" does not exist on local$/],
    [sub, /^virt-iscsi: image ".*a-directory" is a directory, not an image file or block device$/],
    [taken.image, new RegExp(`^virt-iscsi: image ".*taken\\.img" is already served by target ${taken.iqn.replace(/\./g, '\\.')} \\(tid ${taken.tid}\\) as LUN 1$`)],
    [qcow, /^virt-iscsi: image ".*vm\.qcow2" is qcow2, but tgt serves raw images only: convert it first with "virt-iscsi image convert .*vm\.qcow2 .*vm\.img"$/],
  ];
  await allRefused(cases.map(([path, message]) => [[iqn, '--lun', `1=${path}`, '--allow', '127.0.0.1', ...common], message]));
});

test('bad names and numbers: IQN, LUN 0, a LUN twice, a tid in use, an --allow that is nothing known', { skip }, async () => {
  const img = sparseImage(dir, 'ok.img', 1024 * 1024);
  const img2 = sparseImage(dir, 'ok2.img', 1024 * 1024);
  const iqn = uniqueIqn('bad');
  const cases: Array<[string[], RegExp]> = [
    [['iqn.2024-6.com.example:x', '--lun', `1=${img}`], /^virt-iscsi: target name "iqn\.2024-6\.com\.example:x" is not a valid iSCSI name: /],
    [[iqn, '--lun', `0=${img}`], /^virt-iscsi: LUN 0 is the target controller: number image LUNs from 1$/],
    [[iqn, '--lun', `1=${img}`, '--lun', `1=${img2}`], /^virt-iscsi: LUN 1 is given twice \(".*ok\.img" and ".*ok2\.img"\)$/],
    [[iqn, '--lun', `1=${img}`, '--tid', String(taken.tid)], new RegExp(`^virt-iscsi: target id ${taken.tid} is already used on local by ${taken.iqn.replace(/\./g, '\\.')}$`)],
    [[taken.iqn, '--lun', `1=${img}`], /already exists on local \(tid \d+\)$/],
    [[iqn, '--lun', `1=${img}`, '--allow', 'storage-host'], /^virt-iscsi: allowed initiator "storage-host" is neither ALL, an IP address, a CIDR \(ADDR\/BITS\) nor an iSCSI name/],
    [[iqn, '--lun', `1=${img}`, '--allow', '10.1.2.3/40'], /allowed initiator "10\.1\.2\.3\/40" is neither/],
    [[iqn, '--lun', 'disk.img'], /^virt-iscsi: --lun "disk\.img" is not N=PATH/],
    [[iqn, '--lun', `99999999999=${img}`], /^virt-iscsi: --lun "99999999999=.*ok\.img": LUN 99999999999 is out of range: expected 1 to 16383$/],
    [[iqn, '--lun', `16384=${img}`], /^virt-iscsi: --lun "16384=.*": LUN 16384 is out of range: expected 1 to 16383$/],
    [[iqn], /^virt-iscsi: give at least one --lun N=PATH/],
  ];
  await allRefused(cases.map(([args, message]) => [[...args, '--allow', '127.0.0.1', ...common], message]));
});

test('CHAP: a secret shorter than 12 or longer than 16 characters unless forced, an unreadable secret file, no secret at all', { skip }, async () => {
  const img = sparseImage(dir, 'chap-ok.img', 1024 * 1024);
  const iqn = uniqueIqn('chapbad');
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const short = file('short.secret', 'elevenchars\n');
  const long = file('long.secret', 'seventeen-chars-x');
  const base = [iqn, '--lun', `1=${img}`, '--allow', '127.0.0.1', '--chap', 'chapuser', ...common];
  await allRefused([
    [[...base, '--chap-secret-file', short], /^virt-iscsi: CHAP secret for user "chapuser" has 11 characters; most initiators need 12 to 16 \(force to accept it\)$/],
    [[...base, '--chap-secret-file', long], /has 17 characters/],
    [[...base, '--chap-secret-file', join(dir, 'nope.secret')], /^virt-iscsi: --chap-secret-file ".*nope\.secret" cannot be read: ENOENT$/],
    // "Invalid string length" before: every secret file is read as a regular file of at most 4 KiB.
    [[...base, '--chap-secret-file', '/dev/zero'], /^virt-iscsi: --chap-secret-file "\/dev\/zero" is a character device, not a regular file$/],
    [[...base, '--chap-secret-file', file('huge.secret', 'x'.repeat(1 << 20))], /^virt-iscsi: --chap-secret-file ".*huge\.secret" is 1048576 bytes; the limit is 4 KiB$/],
    [[...base, '--chap-secret-file', dir], /^virt-iscsi: --chap-secret-file ".*" is a directory, not a regular file$/],
    [base, /^virt-iscsi: CHAP user "chapuser" needs a secret: give --chap-secret-file FILE, or --generate-secret$/],
  ]);
  // Forced, the short secret is accepted (and the secret is never printed).
  const forced = await cli(['target', 'create', ...base, '--chap-secret-file', short, '--any-secret-length']);
  assert.equal(forced.status, 0, forced.stderr);
  assert.ok(!forced.stdout.includes('elevenchars'));
  assert.equal((await cli(['target', 'delete', iqn, ...common])).status, 0);
});

test('the host: tgt not installed, tgtd not running, an unreachable SSH host', { skip }, async () => {
  const img = sparseImage(dir, 'host.img', 1024 * 1024);
  const iqn = uniqueIqn('host');
  const emptyBin = mkdtempSync(join(tmpdir(), 'virt-iscsi-nobin-'));
  try {
    const line = await refused([iqn, '--lun', `1=${img}`, '--allow', '127.0.0.1', ...common], { PATH: emptyBin });
    assert.equal(line, 'virt-iscsi: tgt is not installed on local (no tgtadm): install it with "apt-get install tgt" (Debian/Ubuntu) or "dnf install scsi-target-utils", or pass --install');
  } finally {
    rmSync(emptyBin, { recursive: true });
  }
  let stopped = 0;
  do stopped = 30000 + Math.floor(Math.random() * 2767);
  while (readdirSync('/run/tgtd').includes(`socket.${stopped}`));
  const list = oneLineFailure(await cli(['target', 'list', '--control-port', String(stopped), '--conf-dir', confDir]));
  assert.match(list, new RegExp(`^virt-iscsi: tgtd is not running on local \\(control port ${stopped}\\): start it`));
  // create starts a stopped tgtd, but not for input it would refuse anyway.
  const missing = oneLineFailure(await cli(['target', 'create', iqn, '--lun', `1=${join(dir, 'missing.img')}`, '--control-port', String(stopped), '--portal', `127.0.0.1:${await freePort()}`, '--conf-dir', confDir]));
  assert.match(missing, /missing\.img" does not exist on local$/);
  assert.equal(spawnSync('tgtadm', ['-C', String(stopped), '--op', 'show', '--mode', 'sys']).status, 107, 'no tgtd was started');
  const port = await freePort();
  const known = join(dir, 'known_hosts');
  writeFileSync(known, '');
  await allRefused([
    [[iqn, '--lun', `1=${img}`, '--allow', '127.0.0.1', '--host', `ssh://root@127.0.0.1:${port}`, '--known-hosts', known, ...common], new RegExp(`^virt-iscsi: cannot connect to 127\\.0\\.0\\.1:${port}: connection refused$`)],
    [[iqn, '--lun', `1=${img}`, '--host', 'ftp://x', ...common], /^virt-iscsi: host "ftp:\/\/x" is not a host URI/],
    [[iqn, '--lun', `1=${img}`, '--control-port', '40000', '--conf-dir', confDir], /^virt-iscsi: control port 40000 is not one tgtd takes: expected 0 to 32767$/],
  ]);
});
