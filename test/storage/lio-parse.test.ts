// LIO cannot run on this machine (no target_core_mod / iscsi_target_mod): the parsers are
// tested on targetcli-fb 2.1.53 output and configfs files captured in the lab guest
// (test/fixtures/lio/README.md says how each was made).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { parseSaveconfig } from '../../src/storage/lio/saveconfig.js';
import { parseAclInfo, parseDynamicSessions } from '../../src/storage/lio/sessions.js';
import { humanToBytes, parseLioTree, parseTree } from '../../src/storage/lio/targetcli-ls.js';
import { fixture } from './lio-replay-runner.js';

const INIT = 'iqn.1993-08.org.debian:01:de888379e257';

test('plan-only: [no LIO modules here] targetcli ls of two targets reads backstores, LUNs, ACLs, mapped LUNs and portals', () => {
  const tree = parseLioTree(fixture('lio/ls-two-targets.txt'));
  assert.deepEqual(tree.backstores, [
    { plugin: 'fileio', name: 'vi_d1_lun1', path: '/var/lib/d1.img', sizeBytes: 64 * 2 ** 20, readonly: false },
    { plugin: 'fileio', name: 'vi_d1_lun2', path: '/var/lib/d2.iso', sizeBytes: 32 * 2 ** 20, readonly: false },
    { plugin: 'fileio', name: 'vi_o2_lun1', path: '/var/lib/o1.img', sizeBytes: 16 * 2 ** 20, readonly: false },
  ]);
  assert.deepEqual(
    tree.targets.map((t) => t.iqn),
    ['iqn.2024-01.test.lab:disk1', 'iqn.2024-01.test.lab:open2'],
  );
  const disk1 = tree.targets[0]!.tpgs[0]!;
  assert.equal(disk1.tag, 1);
  assert.equal(disk1.enabled, true);
  assert.equal(disk1.generateNodeAcls, false);
  assert.equal(disk1.authentication, true);
  assert.deepEqual(disk1.luns, [
    { lun: 1, plugin: 'fileio', storageObject: 'vi_d1_lun1', path: '/var/lib/d1.img' },
    { lun: 2, plugin: 'fileio', storageObject: 'vi_d1_lun2', path: '/var/lib/d2.iso' },
  ]);
  assert.deepEqual(disk1.acls, [
    {
      initiator: INIT,
      auth: 'mutual',
      mappedLuns: [
        { mappedLun: 1, tpgLun: 1, plugin: 'fileio', storageObject: 'vi_d1_lun1', writeProtect: false },
        { mappedLun: 2, tpgLun: 2, plugin: 'fileio', storageObject: 'vi_d1_lun2', writeProtect: true },
      ],
    },
    { initiator: 'iqn.2024-01.test.lab:other-host', auth: '1-way', mappedLuns: [] },
  ]);
  assert.deepEqual(disk1.portals, [
    { host: '127.0.0.1', port: 3260 },
    { host: '::1', port: 3260 },
  ]);
  const open2 = tree.targets[1]!.tpgs[0]!;
  assert.equal(open2.generateNodeAcls, true);
  assert.equal(open2.authentication, false);
  assert.deepEqual(open2.portals, [{ host: '0.0.0.0', port: 3260 }]);
});

test('plan-only: [no LIO modules here] ls of one path reads the same target as the whole tree; an empty config has none', () => {
  const whole = parseLioTree(fixture('lio/ls-two-targets.txt'));
  const one = parseLioTree(fixture('lio/ls-one-target.txt'));
  assert.deepEqual(one.targets, [whole.targets[0]]);
  assert.deepEqual(one.backstores, []);
  assert.deepEqual(parseLioTree(fixture('lio/ls-empty.txt')), { backstores: [], targets: [] });
  const three = parseLioTree(fixture('lio/ls-iscsi-three-targets.txt'));
  assert.deepEqual(
    three.targets.map((t) => [t.iqn, t.tpgs[0]!.generateNodeAcls, t.tpgs[0]!.acls.length, t.tpgs[0]!.portals.map((p) => p.host).join()]),
    [
      ['iqn.2024-01.test.lab:disk1', false, 2, '127.0.0.1,::1'],
      ['iqn.2024-01.test.lab:noacl3', false, 0, '127.0.0.1'],
      ['iqn.2024-01.test.lab:open2', true, 0, '127.0.0.1'],
    ],
  );
});

test('plan-only: [no LIO modules here] tree lines without padding, with colours or with "+" nodes still parse; junk does not', () => {
  const text = '\x1b[1mo- iscsi\x1b[0m [Targets: 1]\n  +- iqn.2024-01.test.lab:x [TPGs: 1]\n    o- tpg1 [disabled]\n';
  const [root] = parseTree(text);
  assert.equal(root!.name, 'iscsi');
  assert.equal(root!.children[0]!.children[0]!.summary, 'disabled');
  assert.equal(parseLioTree(text).targets[0]!.tpgs[0]!.enabled, false);
  assert.throws(() => parseTree('Traceback (most recent call last):\n'), ValidationError);
  assert.throws(() => parseTree('o- a [x]\n      o- b [y]\n'), /deeper than its parent/);
  assert.equal(humanToBytes('8.0MiB'), 8 * 2 ** 20);
  assert.equal(humanToBytes('512 bytes'), 512);
  assert.equal(humanToBytes('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(humanToBytes('lots'), undefined);
});

test('plan-only: [no LIO modules here] saveconfig.json gives serials, CHAP users and write protection, and never a password', () => {
  const text = fixture('lio/saveconfig.json');
  const saved = parseSaveconfig(text);
  assert.ok(text.includes('labsecret1234'), 'the fixture holds the secret the parser must drop');
  const dump = JSON.stringify(saved);
  for (const secret of ['labsecret1234', 'tgtsecret5678']) assert.ok(!dump.includes(secret));
  assert.deepEqual(
    saved.storageObjects.map((s) => [s.name, s.path, s.sizeBytes, s.wwn]),
    [
      ['vi_o2_lun1', '/var/lib/o1.img', 16777216, 'e306ee20-a68b-454f-bcf7-0d7217d94616'],
      ['vi_d1_lun2', '/var/lib/d2.iso', 33554432, '30010ebd-fb59-4ca0-82ed-76d33fc774c4'],
      ['vi_d1_lun1', '/var/lib/d1.img', 67108864, 'SER0001'],
    ],
  );
  const disk1 = saved.targets.find((t) => t.iqn === 'iqn.2024-01.test.lab:disk1')!.tpgs[0]!;
  assert.equal(disk1.attributes['authentication'], 1);
  assert.equal(disk1.attributes['generate_node_acls'], 0);
  assert.deepEqual(
    [...disk1.luns].sort((a, b) => a.lun - b.lun),
    [
      { lun: 1, storageObject: '/backstores/fileio/vi_d1_lun1' },
      { lun: 2, storageObject: '/backstores/fileio/vi_d1_lun2' },
    ],
  );
  const acl = disk1.acls.find((a) => a.initiator === INIT)!;
  assert.equal(acl.chapUser, 'labuser');
  assert.equal(acl.chapMutualUser, 'tgtuser');
  assert.deepEqual(
    [...acl.mappedLuns].sort((a, b) => a.mappedLun - b.mappedLun),
    [
      { mappedLun: 1, tpgLun: 1, writeProtect: false },
      { mappedLun: 2, tpgLun: 2, writeProtect: true },
    ],
  );
  assert.deepEqual(disk1.portals, [
    { host: '::1', port: 3260 },
    { host: '127.0.0.1', port: 3260 },
  ]);
  const open2 = saved.targets.find((t) => t.iqn === 'iqn.2024-01.test.lab:open2')!.tpgs[0]!;
  assert.equal(open2.attributes['demo_mode_write_protect'], 1);
  assert.throws(() => parseSaveconfig('{"targets": 5}'), /targets is not a list/);
  assert.throws(() => parseSaveconfig('not json'), ValidationError);
});

test('plan-only: [no LIO modules here] sessions from configfs ACL info and demo-mode dynamic_sessions', () => {
  assert.deepEqual(parseAclInfo(fixture('lio/acl-info-session.txt')), [{ initiator: INIT, address: '127.0.0.1' }]);
  assert.deepEqual(parseAclInfo(fixture('lio/acl-info-none.txt')), []);
  assert.deepEqual(parseDynamicSessions(fixture('lio/dynamic-sessions.txt')), [{ initiator: INIT }]);
  assert.deepEqual(parseDynamicSessions(''), []);
});
