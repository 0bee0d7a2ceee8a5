// The show parsers on real tgtadm output captured here (test/fixtures/tgt/capture.sh):
// four targets, disks, a CD, read-only and aio LUNs, CHAP accounts, every kind of ACL,
// and six sessions held open by QEMU's iSCSI client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../../src/errors.js';
import { parseTgtShowAccounts, parseTgtShowSystem, parseTgtShowTargets } from '../../../src/storage/tgt/show-parser.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/tgt/${name}`, import.meta.url), 'utf8');

test('targets, tids (with a gap) and their order', () => {
  const targets = parseTgtShowTargets(fixture('show-many.txt'));
  assert.deepEqual(
    targets.map((t) => [t.tid, t.iqn, t.driver, t.state]),
    [
      [1, 'iqn.2024-05.com.example:capture.disks', 'iscsi', 'ready'],
      [2, 'iqn.2024-05.com.example:capture.chap', 'iscsi', 'ready'],
      [3, 'iqn.2024-05.com.example:capture.empty', 'iscsi', 'ready'],
      [7, 'iqn.2024-05.com.example:capture.gap', 'iscsi', 'ready'],
    ],
  );
});

test('I_T nexus: every session with its initiator and address, three from one initiator', () => {
  const [disks, chap, empty, gap] = parseTgtShowTargets(fixture('show-many.txt'));
  assert.deepEqual(disks!.nexuses.map((n) => n.initiator).sort(), ['iqn.2024-05.org.test:client-a', 'iqn.2024-05.org.test:client-b']);
  for (const n of disks!.nexuses) {
    assert.ok(Number.isInteger(n.id) && n.id > 0);
    assert.equal(n.alias, undefined, 'alias "none" means no alias');
    assert.deepEqual(n.connections, [{ cid: 0, address: '127.0.0.1' }]);
  }
  assert.deepEqual(chap!.nexuses.map((n) => n.initiator), ['iqn.2024-05.org.test:allowed']);
  assert.equal(empty!.nexuses.length, 0);
  assert.equal(gap!.nexuses.length, 3);
  assert.equal(new Set(gap!.nexuses.map((n) => n.id)).size, 3);
  assert.ok(gap!.nexuses.every((n) => n.initiator === 'iqn.2024-05.org.test:client-c'));
});

test('LUNs: controller, disk with inquiry values, read-only aio, CD, sizes and backing stores', () => {
  const [disks, chap, empty, gap] = parseTgtShowTargets(fixture('show-many.txt'));
  assert.deepEqual(
    disks!.luns.map((l) => l.lun),
    [0, 1, 2, 3],
  );
  const [ctl, disk, ro, cd] = disks!.luns;
  assert.deepEqual(ctl, {
    lun: 0,
    type: 'controller',
    scsiId: 'IET     00010000',
    scsiSn: 'beaf10',
    sizeMB: 0,
    blockSize: 1,
    online: true,
    removable: false,
    readonly: false,
    backingType: 'null',
    backingFlags: '',
  });
  assert.deepEqual(disk, {
    lun: 1,
    type: 'disk',
    scsiId: 'IET     00010001',
    scsiSn: 'VI0001DISK',
    sizeMB: 67, // 64 MiB = 67.1 * 10^6 bytes
    blockSize: 512,
    online: true,
    removable: false,
    readonly: false,
    backingType: 'rdwr',
    backingPath: '/srv/images/disk1.img',
    backingFlags: '',
  });
  assert.equal(ro!.readonly, true);
  assert.equal(ro!.backingType, 'aio');
  assert.equal(ro!.sizeMB, 3221); // 3 GiB
  assert.equal(cd!.type, 'cd/dvd');
  assert.equal(cd!.removable, true);
  assert.equal(cd!.readonly, true);
  assert.equal(cd!.backingType, 'mmc');
  assert.equal(cd!.backingPath, '/srv/images/install.iso');
  assert.equal(chap!.luns[1]!.sizeMB, 1); // 1500000 bytes
  assert.deepEqual(
    empty!.luns.map((l) => l.type),
    ['controller'],
  );
  assert.deepEqual(
    gap!.luns.map((l) => [l.lun, l.backingPath]),
    [
      [0, undefined],
      [4, '/srv/images/disk1.img'],
      [9, '/srv/images/odd-size.img'],
    ],
  );
});

test('accounts (incoming and outgoing) and ACLs (ALL, IPv4, CIDR, IPv6, IPv6 CIDR, initiator name)', () => {
  const [disks, chap, empty, gap] = parseTgtShowTargets(fixture('show-many.txt'));
  assert.deepEqual(disks!.accounts, []);
  assert.deepEqual(disks!.acls, ['ALL']);
  assert.deepEqual(chap!.accounts, [
    { user: 'capuser1', outgoing: false },
    { user: 'capuser2', outgoing: false },
    { user: 'captarget', outgoing: true },
  ]);
  assert.deepEqual(chap!.acls, ['127.0.0.1', '10.0.0.0/8', 'fe80::1', '2001:db8::/32', 'iqn.2024-05.org.test:allowed']);
  assert.deepEqual(empty!.acls, []);
  assert.deepEqual(gap!.acls, ['127.0.0.1']);
});

test('no targets: tgtadm prints nothing', () => {
  assert.equal(fixture('show-empty.txt'), '');
  assert.deepEqual(parseTgtShowTargets(fixture('show-empty.txt')), []);
});

test('account list and system information', () => {
  assert.deepEqual(parseTgtShowAccounts(fixture('show-account.txt')).sort(), ['captarget', 'capuser1', 'capuser2']);
  assert.deepEqual(parseTgtShowAccounts(''), []);
  const sys = parseTgtShowSystem(fixture('show-sys.txt'));
  assert.equal(sys.state, 'ready');
  assert.equal(sys.llds.iscsi, 'ready');
  assert.ok(sys.backingStores.includes('rdwr') && sys.backingStores.includes('aio') && sys.backingStores.includes('sg'));
  assert.ok(!sys.backingStores.some((b) => b.includes('(')), 'the "(bsoflags ...)" note is not part of the name');
  assert.ok(sys.deviceTypes.includes('cd/dvd'));
});

test('output it does not understand is refused with the line number, not guessed at', () => {
  const text = fixture('show-many.txt');
  assert.throws(() => parseTgtShowTargets(`garbage\n${text}`), (e) => e instanceof ValidationError && /line 1: expected "Target N: NAME"/.test(e.message));
  const broken = text.replace('    ACL information:', '    Mystery section:');
  assert.throws(() => parseTgtShowTargets(broken), /unknown section: "    Mystery section:"/);
  const noSize = text.replace('Size: 67 MB, Block size: 512', 'Size: lots');
  assert.throws(() => parseTgtShowTargets(noSize), /LUN 1 has no "Size: N MB, Block size: N"/);
  assert.throws(() => parseTgtShowAccounts('Accounts:\n    x\n'), /expected "Account list:"/);
});
