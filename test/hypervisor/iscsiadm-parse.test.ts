// open-iscsi cannot log in on this machine (no iscsi_tcp module), so the parsers are
// tested on output captured from open-iscsi 2.1.8 in the lab guest (../shared/lab;
// see test/fixtures/iscsiadm/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import {
  parseGetentHosts,
  parseInitiatorName,
  parseNodeList,
  parseNodeRecord,
  parseSessionTree,
} from '../../src/hypervisor/iscsiadm-parse.js';
import { setRecordValues } from '../../src/hypervisor/iscsiadm.js';
import { fixture } from '../storage/lio-replay-runner.js';

test('plan-only: [no iscsi_tcp here] sendtargets discovery lines give portal, group tag and target, IPv6 unbracketed', () => {
  assert.deepEqual(parseNodeList(fixture('iscsiadm/discovery-lio.txt')), [
    { portal: { host: '127.0.0.1', port: 3260 }, tpgt: 1, iqn: 'iqn.2024-01.test.lab:disk1' },
    { portal: { host: '::1', port: 3260 }, tpgt: 1, iqn: 'iqn.2024-01.test.lab:disk1' },
    { portal: { host: '127.0.0.1', port: 3260 }, tpgt: 1, iqn: 'iqn.2024-01.test.lab:open2' },
    { portal: { host: '127.0.0.1', port: 3260 }, tpgt: 1, iqn: 'iqn.2024-01.test.lab:noacl3' },
  ]);
  const v6 = parseNodeList(fixture('iscsiadm/discovery-ipv6-portal.txt'));
  assert.deepEqual(
    v6.map((e) => `${e.portal.host}|${e.iqn}`),
    ['127.0.0.1|iqn.2024-01.test.lab:disk1', '::1|iqn.2024-01.test.lab:disk1', '::1|iqn.2024-01.test.lab:open2'],
  );
  // warnings and blank lines are not entries; a host name a target sends is kept
  assert.deepEqual(parseNodeList('iscsiadm: some warning\n\nstorage.example:3260,2 iqn.2024-01.com.example:x\n'), [
    { portal: { host: 'storage.example', port: 3260 }, tpgt: 2, iqn: 'iqn.2024-01.com.example:x' },
  ]);
});

test('plan-only: [no iscsi_tcp here] session -P 3 maps each LUN to its disk and state', () => {
  const one = parseSessionTree(fixture('iscsiadm/session-p3-one.txt'));
  assert.equal(one.length, 1);
  const s = one[0]!;
  assert.equal(s.iqn, 'iqn.2024-01.test.lab:disk1');
  assert.equal(s.sid, 7);
  assert.deepEqual(s.portal, { host: '127.0.0.1', port: 3260 });
  assert.equal(s.tpgt, 1);
  assert.equal(s.iface, 'default');
  assert.equal(s.initiatorName, 'iqn.1993-08.org.debian:01:de888379e257');
  assert.equal(s.connectionState, 'LOGGED IN');
  assert.equal(s.sessionState, 'LOGGED_IN');
  assert.equal(s.hostNumber, 6);
  assert.deepEqual(s.devices, [
    { host: 6, channel: 0, id: 0, lun: 1, disk: 'sdb', state: 'running' },
    { host: 6, channel: 0, id: 0, lun: 2, disk: 'sda', state: 'running' },
  ]);

  const two = parseSessionTree(fixture('iscsiadm/session-p3-two.txt'));
  assert.deepEqual(
    two.map((x) => [x.iqn, x.sid, x.devices.map((d) => `${d.lun}:${d.disk}`).join(',')]),
    [
      ['iqn.2024-01.test.lab:disk1', 7, '1:sdb,2:sda'],
      ['iqn.2024-01.test.lab:open2', 8, '1:sdc'],
    ],
  );
});

test('plan-only: [no iscsi_tcp here] a session LUN with no disk attached has no disk; a session without SID is refused', () => {
  const text = 'Target: iqn.2024-01.com.example:t (non-flash)\n\tCurrent Portal: [fd00::5]:3260,1\n\t\tSID: 3\n\t\tscsi4 Channel 00 Id 0 Lun: 0\n';
  const [s] = parseSessionTree(text);
  assert.deepEqual(s!.portal, { host: 'fd00::5', port: 3260 });
  assert.deepEqual(s!.devices, [{ host: 4, channel: 0, id: 0, lun: 0 }]);
  assert.throws(() => parseSessionTree('Target: iqn.2024-01.com.example:t\n\tCurrent Portal: 10.0.0.1:3260,1\n'), ValidationError);
});

test('plan-only: [no iscsi_tcp here] node records read as name/value with <empty> as empty and secrets masked', () => {
  const file = parseNodeRecord(fixture('iscsiadm/node-record-new.txt'));
  assert.equal(file.get('node.name'), 'iqn.2024-01.test.lab:disk1');
  assert.equal(file.get('node.tpgt'), '1');
  assert.equal(file.get('node.session.auth.authmethod'), 'None');
  assert.equal(file.get('node.conn[0].address'), '127.0.0.1');
  assert.equal(file.has('node.session.auth.username'), false, 'iscsiadm leaves empty values out of the file');

  const shown = parseNodeRecord(fixture('iscsiadm/node-record-show-chap.txt'));
  assert.equal(shown.get('node.session.auth.authmethod'), 'CHAP');
  assert.equal(shown.get('node.session.auth.username'), 'labuser');
  assert.equal(shown.get('node.session.auth.password'), '********');
  assert.equal(shown.get('node.session.auth.username_in'), 'tgtuser');
  assert.equal(shown.get('iface.net_ifacename'), '');
});

test('plan-only: [no iscsi_tcp here] CHAP lines go into the real record file before END RECORD; empty values are removed', () => {
  const before = fixture('iscsiadm/node-record-new.txt');
  const after = setRecordValues(before, [
    ['node.session.auth.authmethod', 'CHAP'],
    ['node.session.auth.username', 'u1'],
    ['node.session.auth.password', 'secret-one-1'],
    ['node.session.auth.username_in', ''],
  ]);
  const lines = after.split('\n');
  assert.equal(lines.filter((l) => l.startsWith('node.session.auth.authmethod')).length, 1);
  assert.ok(lines.indexOf('node.session.auth.password = secret-one-1') < lines.indexOf('# END RECORD'));
  assert.equal(lines[0], '# BEGIN RECORD 2.1.8');
  const rec = parseNodeRecord(after);
  assert.equal(rec.get('node.session.auth.authmethod'), 'CHAP');
  assert.equal(rec.get('node.session.auth.username'), 'u1');
  // every other line is untouched
  const untouched = (t: string) => t.split('\n').filter((l) => !l.startsWith('node.session.auth.'));
  assert.deepEqual(untouched(after), untouched(before));
  // clearing a value drops its line again
  const cleared = setRecordValues(after, [['node.session.auth.username', '']]);
  assert.equal(parseNodeRecord(cleared).has('node.session.auth.username'), false);
});

test('plan-only: [no iscsi_tcp here] initiator name and getent answers', () => {
  assert.equal(parseInitiatorName(fixture('iscsiadm/initiatorname.iscsi')), 'iqn.1993-08.org.debian:01:de888379e257');
  assert.equal(parseInitiatorName('## nothing here\n'), undefined);
  assert.equal(parseGetentHosts(fixture('iscsiadm/getent-ahosts-localhost.txt')), '127.0.0.1');
  assert.equal(parseGetentHosts('fd00::7       STREAM storage.example\n'), 'fd00::7');
  assert.equal(parseGetentHosts(''), undefined);
});
