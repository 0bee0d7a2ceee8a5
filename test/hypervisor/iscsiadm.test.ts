// The iscsiadm driver's command plans and its reading of iscsiadm's answers. open-iscsi
// cannot log in on this machine (no iscsi_tcp module): plans are recorded with the
// RecordingRunner, and answers are replayed from output captured in the lab guest, where
// this same driver ran for real over SSH (discover, CHAP through the record file, login,
// by-path wait, sessions, logout: see test/fixtures/iscsiadm/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrerequisiteError, TimeoutError, ValidationError } from '../../src/errors.js';
import { IscsiadmError } from '../../src/hypervisor/iscsiadm-errors.js';
import { Iscsiadm } from '../../src/hypervisor/iscsiadm.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import { fixture, ReplayRunner } from '../storage/lio-replay-runner.js';

const T = 'iqn.2024-01.test.lab:disk1';
const P = { host: '127.0.0.1', port: 3260 };
const CHAP = { user: 'labuser', secret: 'labsecret1234', mutualUser: 'tgtuser', mutualSecret: 'tgtsecret5678' };
const RECORD = `/etc/iscsi/nodes/${T}/127.0.0.1,3260,1/default`;

test('plan-only: [no iscsi_tcp here] a CHAP login plan: nonpersistent discovery, record with group tag, secrets only in a 0600 file', async () => {
  const rec = new RecordingRunner();
  const ia = new Iscsiadm(rec);
  await ia.discover(P);
  await ia.addNode(T, P, 1);
  await ia.setChap(T, P, 1, CHAP);
  await ia.setStartup(T, P, 'automatic');
  await ia.login(T, P);
  const dev = await ia.waitForDevice(T, P, 1);
  assert.equal(dev, `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${T}-lun-1`);
  const plan = rec.render();
  const lines = plan.split('\n');
  assert.ok(lines.includes('iscsiadm --mode discovery --type sendtargets --portal 127.0.0.1:3260 --op nonpersistent'));
  assert.ok(lines.includes(`iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260,1 --interface default --op new`));
  assert.ok(lines.includes(`install -m 0600 /dev/stdin ${RECORD} <<'EOF'`), plan);
  assert.ok(lines.includes(`iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default --op update --name node.startup --value automatic`));
  assert.ok(lines.includes(`iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default --login`));
  assert.ok(lines.includes(`test -e ${dev}`));
  for (const s of [CHAP.secret, CHAP.mutualSecret, CHAP.user]) assert.ok(!plan.includes(s), `${s} must not appear in the plan`);
  // no iscsiadm call carries any CHAP value on its command line
  assert.ok(!lines.some((l) => l.startsWith('iscsiadm') && l.includes('auth')));
});

test('plan-only: [no iscsi_tcp here] setChap edits the real record file, writes it 0600 and checks iscsiadm reads it back', async () => {
  const files = new Map([[RECORD, fixture('iscsiadm/node-record-new.txt')]]);
  const run = new ReplayRunner(
    [
      { match: `test -d /etc/iscsi/nodes/${T}`, replies: [{ exitCode: 0 }] },
      { match: `iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default`, replies: [{ stdout: fixture('iscsiadm/node-record-show-chap.txt') }] },
    ],
    files,
  );
  await new Iscsiadm(run).setChap(T, P, 1, CHAP);
  const w = run.writes[0]!;
  assert.equal(w.path, RECORD);
  assert.deepEqual(w.options, { mode: 0o600, secret: true });
  assert.match(w.data, /^node\.session\.auth\.password = labsecret1234$/m);
  assert.match(w.data, /^node\.session\.auth\.password_in = tgtsecret5678$/m);
  assert.match(w.data, /^node\.session\.auth\.authmethod = CHAP$/m);
  // the secrets went into the file only: never on a command line
  assert.ok(run.calls.every((c) => !c.argv.join(' ').includes(CHAP.secret)));

  // iscsiadm reading back something else (another record directory, a concurrent edit) is an error
  const stale = new ReplayRunner(
    [{ match: `iscsiadm --mode node --targetname ${T}`, replies: [{ stdout: fixture('iscsiadm/node-record-new.txt') }] }],
    new Map([[RECORD, fixture('iscsiadm/node-record-new.txt')]]),
  );
  await assert.rejects(new Iscsiadm(stale, { nodesDir: '/etc/iscsi/nodes' }).setChap(T, P, 1, CHAP), (e: unknown) => {
    assert.ok(e instanceof ValidationError);
    assert.match(e.message, /does not read back node\.session\.auth\.authmethod/);
    assert.ok(!e.message.includes(CHAP.secret));
    return true;
  });
  // no record at all: nothing is written
  const none = new ReplayRunner();
  await assert.rejects(new Iscsiadm(none, { nodesDir: '/var/lib/iscsi/nodes' }).setChap(T, P, 1, CHAP), /no node record/);
  assert.equal(none.writes.length, 0);
});

test('plan-only: [no iscsi_tcp here] CHAP values that would break the record file are refused without showing the secret', async () => {
  const ia = new Iscsiadm(new RecordingRunner());
  await assert.rejects(ia.setChap(T, P, 1, { user: 'u', secret: 'bad\nnode.startup = automatic' }), (e: unknown) => {
    assert.ok(e instanceof ValidationError);
    assert.ok(!e.message.includes('bad'));
    return true;
  });
  await assert.rejects(ia.setChap(T, P, 1, { user: ' spaced', secret: 'goodsecret123' }), /CHAP user " spaced"/);
  await assert.rejects(ia.setChap(T, P, 1, { user: 'u', secret: 'goodsecret123', mutualUser: 'm' }), /mutual CHAP needs both/);
});

test('plan-only: [no iscsi_tcp here] exit codes: 15 and 21 are success where they mean done; 24 and 19 name ACL and CHAP', async () => {
  const login15 = new ReplayRunner([{ match: 'iscsiadm', replies: [{ exitCode: 15, stderr: 'iscsiadm: default: 1 session requested, but 1 already present.\n' }] }]);
  await new Iscsiadm(login15).login(T, P);
  const gone21 = new ReplayRunner([{ match: 'iscsiadm', replies: [{ exitCode: 21, stderr: 'iscsiadm: No matching sessions found\n' }] }]);
  const ia21 = new Iscsiadm(gone21);
  await ia21.logout(T, P);
  await ia21.deleteNode(T, P);
  assert.deepEqual(await ia21.sessions(), []);
  assert.deepEqual(await ia21.nodes(), []);

  // the stderr iscsiadm printed when LIO refused a wrong CHAP secret (and an initiator missing from its ACL)
  const auth = new ReplayRunner([
    {
      match: 'iscsiadm',
      replies: [
        {
          exitCode: 24,
          stderr:
            'iscsiadm: Could not login to [iface: default, target: iqn.2024-01.test.lab:disk1, portal: 127.0.0.1,3260].\n' +
            'iscsiadm: initiator reported error (24 - iSCSI login failed due to authorization failure)\niscsiadm: Could not log into all portals\n',
        },
      ],
    },
  ]);
  await assert.rejects(new Iscsiadm(auth).login(T, P), (e: unknown) => {
    assert.ok(e instanceof IscsiadmError);
    assert.equal(e.failure, 'auth');
    assert.equal(e.exitCode, 24);
    assert.match(e.message, /--login failed on ssh:\/\/root@storage\.test \(exit 24\)/);
    assert.match(e.message, /ACL lists this initiator and the CHAP user and secret/);
    return true;
  });
  const fatal = new ReplayRunner([{ match: 'iscsiadm', replies: [{ exitCode: 19, stderr: 'iscsiadm: initiator reported error (19 - encountered non-retryable iSCSI login failure)\n' }] }]);
  await assert.rejects(new Iscsiadm(fatal).login(T, P), (e: unknown) => e instanceof IscsiadmError && e.failure === 'login-refused' && /ACL and CHAP/.test(e.message));
  const timeout = new ReplayRunner([{ match: 'iscsiadm', replies: [{ exitCode: 8 }] }]);
  await assert.rejects(new Iscsiadm(timeout).login(T, P), (e: unknown) => e instanceof IscsiadmError && e.failure === 'timeout');
  const refused = new ReplayRunner([{ match: 'iscsiadm', replies: [{ exitCode: 11, stderr: 'iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out\n' }] }]);
  await assert.rejects(new Iscsiadm(refused).discover({ host: '127.0.0.1', port: 3999 }), /is the target listening/);
  const missing = new ReplayRunner([{ match: 'iscsiadm', replies: [{ exitCode: 127 }] }]);
  await assert.rejects(new Iscsiadm(missing).sessions(), (e: unknown) => e instanceof PrerequisiteError && /install open-iscsi/.test(e.message));
});

test('plan-only: [no iscsi_tcp here] a host-name portal is resolved on the hypervisor before discovery (by-path names carry the IP)', async () => {
  const run = new ReplayRunner([
    { match: 'getent ahosts localhost', replies: [{ stdout: fixture('iscsiadm/getent-ahosts-localhost.txt') }] },
    { match: 'iscsiadm --mode discovery', replies: [{ stdout: fixture('iscsiadm/discovery-lio.txt') }] },
  ]);
  const ia = new Iscsiadm(run);
  const found = await ia.discover({ host: 'localhost', port: 3260 });
  assert.equal(found.length, 4);
  assert.deepEqual(run.lines('iscsiadm'), ['iscsiadm --mode discovery --type sendtargets --portal 127.0.0.1:3260 --op nonpersistent']);
  assert.equal(run.calls[0]!.options.query, true);
  const nowhere = new ReplayRunner([{ match: 'getent', replies: [{ exitCode: 2 }] }]);
  await assert.rejects(new Iscsiadm(nowhere).discover({ host: 'storage.invalid', port: 3260 }), /"storage.invalid" does not resolve/);
});

test('plan-only: [no iscsi_tcp here] sessions come from session -P 3 and the initiator name from its file', async () => {
  const run = new ReplayRunner(
    [{ match: 'iscsiadm --mode session -P 3', replies: [{ stdout: fixture('iscsiadm/session-p3-two.txt') }] }],
    new Map([['/etc/iscsi/initiatorname.iscsi', fixture('iscsiadm/initiatorname.iscsi')]]),
  );
  const ia = new Iscsiadm(run);
  const s = await ia.sessions();
  assert.deepEqual(
    s.map((x) => x.devices.map((d) => d.disk)),
    [['sdb', 'sda'], ['sdc']],
  );
  assert.equal(await ia.initiatorName(), 'iqn.1993-08.org.debian:01:de888379e257');
  await assert.rejects(new Iscsiadm(new ReplayRunner()).initiatorName(), PrerequisiteError);
});

test('plan-only: [no iscsi_tcp here] waiting for a by-path device settles udev and times out saying what it waited for', async () => {
  const run = new ReplayRunner([{ match: (argv) => argv[0] === 'test', replies: [{ exitCode: 1 }] }]);
  await assert.rejects(new Iscsiadm(run).waitForDevice(T, P, 3, { timeoutMs: 300, intervalMs: 50 }), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.match(e.message, new RegExp(`waited 0s on ssh://root@storage.test for /dev/disk/by-path/ip-127\\.0\\.0\\.1:3260-iscsi-${T.replace(/\./g, '\\.')}-lun-3`));
    assert.match(e.message, /LUN 3 of .* through 127\.0\.0\.1:3260/);
    return true;
  });
  assert.ok(run.lines('test -e').length >= 2, 'looked more than once');
  assert.ok(run.lines('udevadm settle').length >= 2);
  // a host name cannot make a by-path name: resolve first
  await assert.rejects(new Iscsiadm(new RecordingRunner()).waitForDevice(T, { host: 'storage.example', port: 3260 }, 1), /resolve it first/);
});
