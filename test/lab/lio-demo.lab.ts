// The LIO backend's other shape, for real: a target any initiator may log in to
// (`allow: ALL`, LIO's demo mode) with read-only LUNs, mutual CHAP on the TPG, a serial
// the initiator reads back, on an IPv6 portal ([::1]:3261) that iscsiadm and udev name
// without brackets in node records and by-path links.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IscsiadmError } from '../../src/hypervisor/iscsiadm-errors.js';
import { Iscsiadm, type ChapCredentials } from '../../src/hypervisor/iscsiadm.js';
import type { Portal } from '../../src/names/portal.js';
import { LioBackend } from '../../src/storage/lio/backend.js';
import { unique, useLab, type Lab } from './lab.js';

const PORTAL: Portal = { host: '::1', port: 3261 };
const id = unique();
const IQN = `iqn.2024-01.test.lab:demo-${id}`;
const IMAGE = `/var/lib/lab-demo-${id}.img`;
const SERIAL = `VILAB${id.toUpperCase()}`;
const CHAP: ChapCredentials = { user: `dm${id}`, secret: `demo-secret-${id}`, mutualUser: `tg${id}`, mutualSecret: `targsecret-${id}` };
const IFACE = `lab-any-${id}`;
const ANY_INITIATOR = `iqn.2024-01.test.lab:any-${id}`;

describe('LIO demo mode in the lab guest (ALL, read-only, mutual CHAP, [::1]:3261)', () => {
  let lab: Lab;
  let lio: LioBackend;
  let mine: Iscsiadm;
  let any: Iscsiadm;

  before(async () => {
    lab = await useLab();
    lio = new LioBackend(lab.runner, { portals: [PORTAL] });
    mine = new Iscsiadm(lab.runner, { timeoutMs: 60_000 });
    any = new Iscsiadm(lab.runner, { timeoutMs: 60_000, iface: IFACE });
    await lab.sh(['truncate', '-s', '8M', IMAGE]);
    await lab.sh(['iscsiadm', '-m', 'iface', '-I', IFACE, '-o', 'new']);
    await lab.sh(['iscsiadm', '-m', 'iface', '-I', IFACE, '-o', 'update', '-n', 'iface.initiatorname', '-v', ANY_INITIATOR]);
  });

  after(async () => {
    if (!lab) return;
    try {
      for (const i of [mine, any]) {
        await i.logout(IQN, PORTAL);
        await i.deleteNode(IQN, PORTAL);
      }
      await lab.runner.run(['iscsiadm', '-m', 'iface', '-I', IFACE, '-o', 'delete']);
      await lio.delete(IQN, { force: true });
      await lab.sh(['rm', '-f', IMAGE]);
    } finally {
      await lab.release();
    }
  });

  test('create: demo mode, write-protected, TPG CHAP, not saved', async () => {
    const state = await lio.create({
      iqn: IQN,
      luns: [{ lun: 1, path: IMAGE, cdrom: true, serial: SERIAL }],
      allow: ['ALL'],
      chap: { user: CHAP.user, secret: CHAP.secret, mutualUser: CHAP.mutualUser!, mutualSecret: CHAP.mutualSecret! },
      persist: false,
    });
    assert.deepEqual(state.acls, ['ALL']);
    assert.deepEqual(state.accounts, [CHAP.user]);
    assert.deepEqual(
      state.luns.map((l) => [l.lun, l.path, l.readonly, l.sizeBytes]),
      [[1, IMAGE, true, 8 * 2 ** 20]],
    );
    assert.equal(state.persisted, false);
    const cfg = `/sys/kernel/config/target/iscsi/${IQN}/tpgt_1`;
    assert.equal((await lab.sh(['cat', `${cfg}/attrib/generate_node_acls`, `${cfg}/attrib/demo_mode_write_protect`, `${cfg}/attrib/authentication`])).split('\n').join(' ').trim(), '1 1 1');
    assert.match(await lab.sh(['ss', '-Htln', 'sport = :3261']), /\[::1\]:3261/);
  });

  test('any initiator name gets in with the CHAP account and sees a read-only LUN with our serial', async () => {
    await any.addNode(IQN, PORTAL, 1);
    await any.setChap(IQN, PORTAL, 1, CHAP);
    await any.login(IQN, PORTAL);
    const dev = await any.waitForDevice(IQN, PORTAL, 1);
    assert.equal(dev, `/dev/disk/by-path/ip-::1:3261-iscsi-${IQN}-lun-1`);
    const session = (await any.sessions()).find((s) => s.iqn === IQN && s.iface === IFACE);
    assert.deepEqual(session?.portal, PORTAL);
    assert.equal(session?.initiatorName, ANY_INITIATOR);

    assert.equal((await lab.sh(['blockdev', '--getro', dev])).trim(), '1');
    const write = await lab.runner.run(['dd', 'if=/dev/zero', `of=${dev}`, 'bs=4096', 'count=1', 'oflag=direct', 'status=none']);
    assert.notEqual(write.exitCode, 0, 'a write to the write-protected LUN succeeded');
    // VPD page 0x80 as the kernel initiator reads it (sg3-utils): the serial we set
    assert.match(await lab.sh(['sg_inq', '--page=0x80', dev]), new RegExp(`Unit serial number: ${SERIAL}\\b`));

    const state = await lio.show(IQN);
    assert.deepEqual(state?.sessions, [{ initiator: ANY_INITIATOR }]); // demo mode: dynamic_sessions names no address
  });

  test('a wrong mutual secret: the initiator refuses the target, with our clear error', async () => {
    await mine.addNode(IQN, PORTAL, 1);
    await mine.setChap(IQN, PORTAL, 1, { ...CHAP, mutualSecret: `not-the-one-${id}` });
    const err = await mine.login(IQN, PORTAL).then(
      () => assert.fail('login succeeded with a wrong mutual secret'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IscsiadmError, String(err));
    assert.equal(err.failure, 'login-refused');
    assert.equal(err.exitCode, 19);
    assert.match(err.message, /refused for good: check the target's ACL and CHAP \(users and secrets on both sides, the mutual secret included\)/);
    assert.ok(!err.message.includes(`not-the-one-${id}`));
  });

  test('delete refuses while a session is live; after logout it removes target and backstore', async () => {
    await assert.rejects(lio.delete(IQN), /logged-in session/);
    await any.logout(IQN, PORTAL);
    await lio.delete(IQN);
    assert.equal(await lio.show(IQN), undefined);
    const ls = await lab.sh(['targetcli', 'ls', '/backstores/fileio']);
    assert.ok(!ls.includes(IMAGE), ls);
  });
});
