// The iscsiadm driver for real: open-iscsi in the lab guest's kernel logging in to a tgt
// target (made by our TgtBackend, over the same SshRunner) that demands mutual CHAP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TimeoutError } from '../../src/errors.js';
import { IscsiadmError } from '../../src/hypervisor/iscsiadm-errors.js';
import { Iscsiadm, type ChapCredentials } from '../../src/hypervisor/iscsiadm.js';
import type { Portal } from '../../src/names/portal.js';
import { TgtBackend } from '../../src/storage/tgt/backend.js';
import { unique, useLab, type Lab } from './lab.js';

const PORTAL: Portal = { host: '127.0.0.1', port: 3260 };
const id = unique();
const IQN = `iqn.2024-01.test.lab:iscsiadm-${id}`;
const IMAGE = `/var/lib/lab-iscsiadm-${id}.img`;
const CHAP: ChapCredentials = { user: `in${id}`, secret: `in-secret-${id}`, mutualUser: `out${id}`, mutualSecret: `outsecret-${id}` };

describe('iscsiadm in the lab guest (tgt target with mutual CHAP on 127.0.0.1:3260)', () => {
  let lab: Lab;
  let tgt: TgtBackend;
  let iscsi: Iscsiadm;

  before(async () => {
    lab = await useLab();
    tgt = new TgtBackend(lab.runner);
    iscsi = new Iscsiadm(lab.runner, { timeoutMs: 60_000 });
    await lab.sh(['truncate', '-s', '32M', IMAGE]);
    await tgt.create({
      iqn: IQN,
      luns: [{ lun: 1, path: IMAGE }],
      allow: ['ALL'],
      chap: { user: CHAP.user, secret: CHAP.secret, mutualUser: CHAP.mutualUser!, mutualSecret: CHAP.mutualSecret! },
      persist: false,
    });
  });

  after(async () => {
    if (!lab) return;
    try {
      await iscsi.logout(IQN, PORTAL);
      await iscsi.deleteNode(IQN, PORTAL);
      await tgt.delete(IQN, { force: true });
      await lab.sh(['rm', '-f', IMAGE]);
    } finally {
      await lab.release();
    }
  });

  test('discovery lists the target on its portal and writes no node record', async () => {
    const found = await iscsi.discover(PORTAL);
    assert.deepEqual(
      found.filter((n) => n.iqn === IQN),
      [{ portal: PORTAL, tpgt: 1, iqn: IQN }],
    );
    assert.equal((await iscsi.nodes()).some((n) => n.iqn === IQN), false, 'discovery --op nonpersistent made a node record');
  });

  test('discovery through a host name resolves it in the guest first', async () => {
    const found = await iscsi.discover({ host: 'localhost', port: 3260 });
    assert.ok(found.some((n) => n.iqn === IQN && n.portal.host === '127.0.0.1'), JSON.stringify(found));
  });

  test('a login without CHAP is refused with an authorization error', async () => {
    await iscsi.addNode(IQN, PORTAL, 1);
    const err = await iscsi.login(IQN, PORTAL).then(
      () => assert.fail('login without CHAP succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IscsiadmError, String(err));
    assert.equal(err.failure, 'auth');
    assert.match(err.message, /failed on ssh:\/\/root@127\.0\.0\.1:\d+ \(exit 24\).*check the target's ACL lists this initiator and the CHAP user and secret/);
  });

  test('a wrong CHAP secret is refused, and the secret shows nowhere', async () => {
    const wrong = `wrong-secret${id}`;
    await iscsi.setChap(IQN, PORTAL, 1, { ...CHAP, secret: wrong });
    const err = await iscsi.login(IQN, PORTAL).then(
      () => assert.fail('login with a wrong secret succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IscsiadmError, String(err));
    assert.equal(err.failure, 'auth');
    assert.equal(err.exitCode, 24);
    assert.ok(!JSON.stringify({ m: err.message, a: err.argv, s: err.stderr }).includes(wrong));
  });

  test('CHAP node settings: iscsiadm reads back method and users; the record is root-only', async () => {
    await iscsi.setChap(IQN, PORTAL, 1, CHAP);
    const rec = await iscsi.nodeRecord(IQN, PORTAL);
    assert.equal(rec.get('node.session.auth.authmethod'), 'CHAP');
    assert.equal(rec.get('node.session.auth.username'), CHAP.user);
    assert.equal(rec.get('node.session.auth.username_in'), CHAP.mutualUser);
    assert.equal(rec.get('node.session.auth.password'), '********');
    const mode = await lab.sh(['stat', '-c', '%a', `/etc/iscsi/nodes/${IQN}/127.0.0.1,3260,1/default`]);
    assert.equal(mode.trim(), '600');
  });

  test('login with the right CHAP, twice: one session, LUN 1 as a disk, by-path link', async () => {
    await iscsi.login(IQN, PORTAL);
    await iscsi.login(IQN, PORTAL); // exit 15, "already present": success
    const mine = (await iscsi.sessions()).filter((s) => s.iqn === IQN);
    assert.equal(mine.length, 1, JSON.stringify(mine));
    const s = mine[0]!;
    assert.deepEqual(s.portal, PORTAL);
    assert.equal(s.tpgt, 1);
    assert.equal(s.sessionState, 'LOGGED_IN');
    assert.equal(s.connectionState, 'LOGGED IN');
    const initiator = await iscsi.initiatorName();
    assert.equal(s.initiatorName, initiator);
    const lun1 = s.devices.find((d) => d.lun === 1);
    assert.ok(lun1?.disk, `no disk for LUN 1: ${JSON.stringify(s.devices)}`);

    const path = await iscsi.waitForDevice(IQN, PORTAL, 1, { timeoutMs: 30_000 });
    assert.equal(path, `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-1`);
    assert.equal((await lab.sh(['readlink', '-f', path])).trim(), `/dev/${lun1.disk}`);
    assert.equal((await lab.sh(['blockdev', '--getsize64', path])).trim(), String(32 * 2 ** 20));

    // tgt sees our initiator logged in, through the same runner
    const state = await tgt.show(IQN);
    assert.deepEqual(state?.sessions.map((x) => x.initiator), [initiator]);
  });

  test('waiting for a LUN the target does not have times out and says what it waited for', async () => {
    await assert.rejects(iscsi.waitForDevice(IQN, PORTAL, 7, { timeoutMs: 2_000 }), (e: unknown) => {
      assert.ok(e instanceof TimeoutError);
      assert.match(e.message, new RegExp(`for /dev/disk/by-path/ip-127\\.0\\.0\\.1:3260-iscsi-${IQN.replace(/\./g, '\\.')}-lun-7 \\(LUN 7 of `));
      return true;
    });
  });

  test('logout and node delete, twice each: gone, and no error the second time', async () => {
    await iscsi.logout(IQN, PORTAL);
    await iscsi.logout(IQN, PORTAL); // exit 21
    assert.deepEqual((await iscsi.sessions()).filter((s) => s.iqn === IQN), []);
    const gone = await lab.runner.run(['test', '-e', `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-1`]);
    assert.notEqual(gone.exitCode, 0, 'the by-path link outlived the session');
    await iscsi.deleteNode(IQN, PORTAL);
    await iscsi.deleteNode(IQN, PORTAL); // exit 21
    assert.equal((await iscsi.nodes()).some((n) => n.iqn === IQN), false);
  });
});
