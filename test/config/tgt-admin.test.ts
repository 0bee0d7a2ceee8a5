// The targets.conf we write must be what the real tgt-admin reads: a private tgtd on its
// own control port and portal, tgt-admin -e on a temporary config, then tgtadm --op show.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, truncateSync, writeFileSync, closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTgtd, type Tgtd } from '../helpers/tgtd.js';
import { buildTgtTarget, formatTgtConf, parseTgtConf, targetSpecToTgtConf, upsertTgtTarget } from '../../src/config/tgt-conf.js';

/** The lines of `tgtadm --op show` under one target (up to the next "Target N:" line). */
function section(show: string, iqn: string): string {
  const start = show.indexOf(`: ${iqn}\n`);
  assert.ok(start >= 0, `target ${iqn} not in:\n${show}`);
  const next = show.indexOf('\nTarget ', start);
  return show.slice(start, next < 0 ? undefined : next);
}

/** The block of one LUN inside a target section. */
function lunBlock(target: string, lun: number): string {
  const m = new RegExp(`\\n\\s+LUN: ${lun}\\n([\\s\\S]*?)(?=\\n\\s+LUN: |\\n\\s+Account information:|$)`).exec(target);
  assert.ok(m, `LUN ${lun} not in:\n${target}`);
  return m[1]!;
}

const skip = process.getuid?.() !== 0 ? 'tgtd and tgt-admin need root' : false;
let tgtd: Tgtd | undefined;
let dir = '';

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-tgtconf-'));
  tgtd = await startTgtd();
});

after(async () => {
  await tgtd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let confs = 0;
function tgtAdminExecute(text: string): void {
  const conf = join(dir, `targets-${++confs}.conf`);
  writeFileSync(conf, text, { mode: 0o600 });
  execFileSync('tgt-admin', ['-C', String(tgtd!.controlPort), '-c', conf, '-e'], { encoding: 'utf8' });
}

test('tgt-admin -e accepts our targets.conf: LUNs, read-only, CD-ROM, serial, ACLs and CHAP accounts appear in tgtd', { skip }, () => {
  const disk = join(dir, 'disk.img');
  const ro = join(dir, 'ro.img');
  const other = join(dir, 'other.img');
  for (const f of [disk, ro, other]) {
    closeSync(openSync(f, 'w'));
    truncateSync(f, 8 * 1024 * 1024); // sparse
  }
  const isoDir = join(dir, 'iso-src');
  mkdirSync(isoDir);
  writeFileSync(join(isoDir, 'hello.txt'), 'hello\n');
  const iso = join(dir, 'install.iso');
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', iso, isoDir], { stdio: 'ignore' });

  const iqn = 'iqn.2024-01.com.example:vm1';
  const otherIqn = 'iqn.2024-01.com.example:other';
  const existing = `# hand-written config with a comment\ndefault-driver iscsi\n\n<target ${otherIqn}>\n    backing-store ${other}\n    initiator-address 127.0.0.1\n</target>\n`;
  const spec = {
    iqn,
    luns: [
      { lun: 1, path: disk, serial: 'VM1DISK01' },
      { lun: 2, path: iso, cdrom: true },
      { lun: 3, path: ro, readonly: true },
    ],
    allow: ['127.0.0.1', '10.1.2.0/24', 'iqn.1993-08.org.debian:01:client1'],
    chap: { user: 'vm1user', secret: 'vm1secret1234', mutualUser: 'vm1target', mutualSecret: 'tgtsecret5678' },
    persist: true,
  };
  const text = formatTgtConf(upsertTgtTarget(parseTgtConf(existing), targetSpecToTgtConf(spec)));
  assert.ok(text.startsWith(existing));
  tgtAdminExecute(text);

  const show = tgtd!.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
  const mine = section(show, iqn);
  const l1 = lunBlock(mine, 1);
  assert.match(l1, /Type: disk/);
  assert.match(l1, /SCSI SN: VM1DISK01/);
  assert.match(l1, /Readonly: No/);
  assert.ok(l1.includes(`Backing store path: ${disk}`), l1);
  const l2 = lunBlock(mine, 2);
  assert.match(l2, /Type: cd\/dvd/);
  assert.match(l2, /Readonly: Yes/);
  assert.ok(l2.includes(`Backing store path: ${iso}`), l2);
  const l3 = lunBlock(mine, 3);
  assert.match(l3, /Type: disk/);
  assert.match(l3, /Readonly: Yes/);
  assert.match(mine, /Account information:\n\s+vm1user\n\s+vm1target \(outgoing\)/);
  const acl = mine.slice(mine.indexOf('ACL information:'));
  assert.match(acl, /\n\s+127\.0\.0\.1\n/);
  assert.match(acl, /\n\s+10\.1\.2\.0\/24\n/);
  assert.match(acl, /\n\s+iqn\.1993-08\.org\.debian:01:client1/);
  assert.doesNotMatch(acl, /\bALL\b/);
  // the hand-written target in the same file came up too
  assert.ok(section(show, otherIqn).includes(`Backing store path: ${other}`));
});

test('the characters we allow survive Config::General, tgt-admin\'s shell and tgtadm: odd path, user and secret; CHAP login works', { skip }, () => {
  // Every character the path, user and secret checks let through, in one target.
  const sub = join(dir, 'ä_ß_日本');
  mkdirSync(sub);
  const path = join(sub, 'x=1%2@h+o~s:t-v.1.img');
  closeSync(openSync(path, 'w'));
  truncateSync(path, 4 * 1024 * 1024);
  const iqn = 'iqn.2024-01.com.example:odd-chars.1';
  const user = 'u.s-e_r@h:1=x';
  const secret = 'S3c=r%e/t+:@.-_';
  const target = targetSpecToTgtConf({
    iqn,
    luns: [{ lun: 7, path, serial: 'SN-1.2_3', vendorId: 'V-1.x', productId: 'Product 2 name' }],
    allow: ['fe80::1', '127.0.0.0/8'],
    chap: { user, secret },
    persist: true,
  });
  tgtAdminExecute(buildTgtTarget(target));
  const mine = section(tgtd!.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']), iqn);
  const l7 = lunBlock(mine, 7);
  assert.ok(l7.includes(`Backing store path: ${path}\n`), l7);
  assert.match(l7, /SCSI SN: SN-1\.2_3\n/);
  assert.ok(mine.includes(`Account information:\n        ${user}\n`), mine);
  assert.match(mine, /ACL information:\n\s+fe80::1\n\s+127\.0\.0\.0\/8/);
  // The secret arrived intact: libiscsi (not our code) logs in with it, and not without it.
  const inq = (env: Record<string, string>) =>
    spawnSync('iscsi-inq', [`iscsi://${tgtd!.portal}/${iqn}/7`], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20000 });
  const good = inq({ LIBISCSI_CHAP_USERNAME: user, LIBISCSI_CHAP_PASSWORD: secret });
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, /^Vendor:V-1\.x *$/m);
  assert.match(good.stdout, /^Product:Product 2 name *$/m);
  const wrong = inq({ LIBISCSI_CHAP_USERNAME: user, LIBISCSI_CHAP_PASSWORD: `${secret}x` });
  assert.notEqual(wrong.status, 0);
});
