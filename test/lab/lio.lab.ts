// The LIO backend for real: targetcli and the kernel target in the lab guest, driven
// through the SshRunner, each effect checked by logging in with open-iscsi in the same
// guest. LIO listens on 127.0.0.1:3261 so it never meets tgt's 127.0.0.1:3260.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ValidationError } from '../../src/errors.js';
import { IscsiadmError } from '../../src/hypervisor/iscsiadm-errors.js';
import { Iscsiadm, type ChapCredentials } from '../../src/hypervisor/iscsiadm.js';
import type { Portal } from '../../src/names/portal.js';
import { LioBackend } from '../../src/storage/lio/backend.js';
import { unique, useLab, type Lab } from './lab.js';

const PORTAL: Portal = { host: '127.0.0.1', port: 3261 };
const id = unique();
const IQN = `iqn.2024-01.test.lab:lio-${id}`;
const RW = `/var/lib/lab-lio-${id}-rw.img`;
const RO = `/var/lib/lab-lio-${id}-ro.img`;
const CHAP: ChapCredentials = { user: `lio${id}`, secret: `lio-secret-${id}` };
const OTHER_IFACE = `lab-other-${id}`;
const OTHER_INITIATOR = `iqn.2024-01.test.lab:other-${id}`;
const SAVECONFIG = '/etc/rtslib-fb-target/saveconfig.json';

/** The saved targets' names, read from targetcli's own file. */
async function savedTargets(lab: Lab): Promise<string[]> {
  const text = await lab.runner.readFile(SAVECONFIG);
  if (text === undefined) return [];
  return (JSON.parse(text) as { targets: Array<{ wwn: string }> }).targets.map((t) => t.wwn);
}

describe('LIO backend in the lab guest (targetcli, kernel target on 127.0.0.1:3261)', () => {
  let lab: Lab;
  let lio: LioBackend;
  let iscsi: Iscsiadm;
  let other: Iscsiadm;
  let initiator: string;

  before(async () => {
    lab = await useLab();
    lio = new LioBackend(lab.runner, { portals: [PORTAL] });
    iscsi = new Iscsiadm(lab.runner, { timeoutMs: 60_000 });
    other = new Iscsiadm(lab.runner, { timeoutMs: 60_000, iface: OTHER_IFACE });
    initiator = await iscsi.initiatorName();
    await lab.sh(['truncate', '-s', '32M', RW]);
    await lab.sh(['truncate', '-s', '16M', RO]);
    // A second initiator name on the same host: an iface of its own.
    await lab.sh(['iscsiadm', '-m', 'iface', '-I', OTHER_IFACE, '-o', 'new']);
    await lab.sh(['iscsiadm', '-m', 'iface', '-I', OTHER_IFACE, '-o', 'update', '-n', 'iface.initiatorname', '-v', OTHER_INITIATOR]);
  });

  after(async () => {
    if (!lab) return;
    try {
      for (const i of [iscsi, other]) {
        await i.logout(IQN, PORTAL);
        await i.deleteNode(IQN, PORTAL);
      }
      await lab.runner.run(['iscsiadm', '-m', 'iface', '-I', OTHER_IFACE, '-o', 'delete']);
      await lio.delete(IQN, { force: true });
      await lab.sh(['rm', '-f', RW, RO]);
    } finally {
      await lab.release();
    }
  });

  test('ensureRunning finds the kernel target and targetcli', async () => {
    await lio.ensureRunning();
  });

  test('create: two LUNs (one read-only), an ACL with CHAP, saved; the state reads back', async () => {
    const state = await lio.create({
      iqn: IQN,
      luns: [
        { lun: 1, path: RW },
        { lun: 2, path: RO, readonly: true },
      ],
      allow: [initiator],
      chap: { user: CHAP.user, secret: CHAP.secret },
      persist: true,
    });
    assert.equal(state.iqn, IQN);
    assert.deepEqual(
      state.luns.map((l) => [l.lun, l.path, l.readonly, l.online, l.sizeBytes]),
      [
        [1, RW, false, true, 32 * 2 ** 20],
        [2, RO, true, true, 16 * 2 ** 20],
      ],
    );
    assert.deepEqual(state.acls, [initiator]);
    assert.deepEqual(state.accounts, [CHAP.user]);
    assert.equal(state.persisted, true);
    assert.deepEqual(state.sessions, []);
    assert.deepEqual(await lio.show(IQN), state);
    assert.ok((await lio.list()).some((t) => t.iqn === IQN));
    // checked with what we did not write: targetcli's saved file, configfs, the socket
    assert.ok((await savedTargets(lab)).includes(IQN), 'target missing from saveconfig.json');
    await lab.sh(['test', '-d', `/sys/kernel/config/target/iscsi/${IQN}/tpgt_1/np/127.0.0.1:3261`]);
    assert.match(await lab.sh(['ss', '-Htln', 'sport = :3261']), /127\.0\.0\.1:3261/);
  });

  test('the target refuses a login without CHAP', async () => {
    assert.ok((await iscsi.discover(PORTAL)).some((n) => n.iqn === IQN));
    await iscsi.addNode(IQN, PORTAL, 1);
    const err = await iscsi.login(IQN, PORTAL).then(
      () => assert.fail('login without CHAP succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IscsiadmError, String(err));
    assert.equal(err.failure, 'auth');
  });

  test('with CHAP the ACL initiator logs in: LUN 1 takes writes, LUN 2 refuses them', async () => {
    await iscsi.setChap(IQN, PORTAL, 1, CHAP);
    await iscsi.login(IQN, PORTAL);
    const rw = await iscsi.waitForDevice(IQN, PORTAL, 1);
    const ro = await iscsi.waitForDevice(IQN, PORTAL, 2);

    // A block written through the initiator lands in the backing file on the target side.
    await lab.sh(['dd', 'if=/dev/urandom', `of=${rw}`, 'bs=4096', 'count=1', 'oflag=direct', 'status=none']);
    await lab.sh(['cmp', '-n', '4096', rw, RW]);

    assert.equal((await lab.sh(['blockdev', '--getro', ro])).trim(), '1');
    const write = await lab.runner.run(['dd', 'if=/dev/zero', `of=${ro}`, 'bs=4096', 'count=1', 'oflag=direct', 'status=none']);
    assert.notEqual(write.exitCode, 0, 'a write to the read-only LUN succeeded');
    assert.match(write.stderr, /Operation not permitted|Read-only file system|Input\/output error|write protected/i);

    const state = await lio.show(IQN);
    assert.deepEqual(state?.sessions, [{ initiator, address: '127.0.0.1' }]);
  });

  test('delete refuses a target with a live session unless forced', async () => {
    await assert.rejects(lio.delete(IQN), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.match(e.message, new RegExp(`has 1 logged-in session\\(s\\) \\(${initiator.replace(/\./g, '\\.')}\\)`));
      return true;
    });
    assert.ok(await lio.show(IQN), 'the refused delete removed the target');
  });

  test('the ACL refuses another initiator name, even with the right CHAP', async () => {
    await other.addNode(IQN, PORTAL, 1);
    await other.setChap(IQN, PORTAL, 1, CHAP);
    const err = await other.login(IQN, PORTAL).then(
      () => assert.fail(`${OTHER_INITIATOR} logged in past the ACL`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IscsiadmError, String(err));
    assert.equal(err.failure, 'auth');
    await other.deleteNode(IQN, PORTAL);
  });

  test('logout, delete: target, backstores and saved entry gone; a second delete is fine', async () => {
    await iscsi.logout(IQN, PORTAL);
    await iscsi.deleteNode(IQN, PORTAL);
    await lio.delete(IQN);
    assert.equal(await lio.show(IQN), undefined);
    assert.equal((await savedTargets(lab)).includes(IQN), false, 'target still in saveconfig.json');
    const ls = await lab.sh(['targetcli', 'ls', '/backstores']);
    assert.ok(!ls.includes(RW) && !ls.includes(RO), ls);
    await lab.sh(['test', '!', '-e', `/sys/kernel/config/target/iscsi/${IQN}`]);
    await lio.delete(IQN);
  });
});
