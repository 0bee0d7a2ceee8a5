// The iscsiadm parsers and error mapping on real output from the lab guest
// (test/lab/capture-fixtures.sh: open-iscsi 2.1.8, kernel 6.1, logged in to a tgt target
// with mutual CHAP on 127.0.0.1:3260 and a LIO demo-mode target on [::1]:3261).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { iscsiadmError } from '../../src/hypervisor/iscsiadm-errors.js';
import { parseNodeList, parseSessionTree } from '../../src/hypervisor/iscsiadm-parse.js';
import { byPathFor, parseByPath } from '../../src/names/by-path.js';
import { RecordingRunner } from '../../src/runner/recording.js';

const dir = new URL('../fixtures/lab/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, dir), 'utf8');
const exitCode = (name: string): number => {
  const line = fixture('exit-codes.txt')
    .split('\n')
    .find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no exit code recorded for ${name}`);
  return Number(line.split(' ')[1]);
};

const TGT = 'iqn.2024-01.test.lab:fixture-tgt';
const LIO = 'iqn.2024-01.test.lab:fixture-lio';

describe('iscsiadm output captured in the lab guest', () => {
  test('session -P 3: two sessions, the IPv6 current portal in its short form', () => {
    const [tgt, lio, ...rest] = parseSessionTree(fixture('session-p3-tgt-and-lio-ipv6.txt'));
    assert.deepEqual(rest, []);
    assert.deepEqual(tgt, {
      iqn: TGT,
      sid: 11,
      portal: { host: '127.0.0.1', port: 3260 },
      tpgt: 1,
      persistentPortal: { host: '127.0.0.1', port: 3260 },
      iface: 'default',
      initiatorName: 'iqn.1993-08.org.debian:01:782ac68c52b',
      connectionState: 'LOGGED IN',
      sessionState: 'LOGGED_IN',
      hostNumber: 6,
      // tgt's LUN 0 is its controller: a SCSI device without a disk
      devices: [
        { host: 6, channel: 0, id: 0, lun: 0 },
        { host: 6, channel: 0, id: 0, lun: 1, disk: 'sda', state: 'running' },
      ],
    });
    // printed as [0000:0000:0000:0000:0000:0000:0000:0001]:3261,1
    assert.deepEqual(lio?.portal, { host: '::1', port: 3261 });
    assert.deepEqual(lio?.persistentPortal, { host: '::1', port: 3261 });
    assert.equal(lio?.iface, 'fxother');
    assert.equal(lio?.initiatorName, 'iqn.2024-01.test.lab:fixture-other');
    assert.deepEqual(lio?.devices, [{ host: 7, channel: 0, id: 0, lun: 1, disk: 'sdb', state: 'running' }]);
  });

  test("a session's portal names the by-path link udev made for its LUN", () => {
    const links = fixture('by-path.txt').trim().split('\n');
    for (const s of parseSessionTree(fixture('session-p3-tgt-and-lio-ipv6.txt'))) {
      const name = byPathFor(s.portal, s.iqn, 1).replace('/dev/disk/by-path/', '');
      assert.ok(links.includes(name), `${name} is not among ${JSON.stringify(links)}`);
      assert.deepEqual(parseByPath(name), { address: s.portal.host, port: s.portal.port, iqn: s.iqn, lun: 1 });
    }
  });

  test('discovery (nonpersistent) on IPv4 and IPv6 portals', () => {
    assert.deepEqual(parseNodeList(fixture('discovery-tgt.txt')), [{ portal: { host: '127.0.0.1', port: 3260 }, tpgt: 1, iqn: TGT }]);
    assert.deepEqual(parseNodeList(fixture('discovery-lio-ipv6.txt')), [{ portal: { host: '::1', port: 3261 }, tpgt: 1, iqn: LIO }]);
  });

  test('node records made without a portal group list tpgt 4294967295, read as -1', () => {
    assert.deepEqual(parseNodeList(fixture('node-list.txt')), [
      { portal: { host: '::1', port: 3261 }, tpgt: -1, iqn: LIO },
      { portal: { host: '127.0.0.1', port: 3260 }, tpgt: -1, iqn: TGT },
    ]);
  });

  test('login and logout exit codes: what is success, what is an auth failure', () => {
    assert.equal(exitCode('login-tgt.txt'), 0);
    assert.equal(exitCode('login-tgt-again.txt'), 15);
    assert.match(fixture('login-tgt-again.txt'), /1 session requested, but 1 already present/);
    assert.equal(exitCode('logout-tgt-again.txt'), 21);
    assert.match(fixture('logout-tgt-again.txt'), /No matching sessions found/);

    const runner = new RecordingRunner();
    const argv = ['iscsiadm', '--mode', 'node', '--targetname', TGT, '--login'];
    for (const name of ['login-tgt-no-chap.txt', 'login-tgt-wrong-secret.txt']) {
      const e = iscsiadmError(runner, argv, { stdout: '', stderr: fixture(name), exitCode: exitCode(name) });
      assert.equal(e.exitCode, 24);
      assert.equal(e.failure, 'auth');
      assert.match(e.message, /check the target's ACL lists this initiator and the CHAP user and secret on both sides/);
    }
    const mutual = iscsiadmError(runner, argv, { stdout: '', stderr: fixture('login-lio-wrong-mutual.txt'), exitCode: exitCode('login-lio-wrong-mutual.txt') });
    assert.equal(mutual.exitCode, 19);
    assert.equal(mutual.failure, 'login-refused');
    assert.match(mutual.message, /the mutual secret included/);
  });
});
