// The hypervisor commands of the seed's manual path, for real, through the CLI as users
// run it on their machine (--hypervisor ssh://root@127.0.0.1:PORT, SshRunner): libvirt
// `iscsi` pools that log in with the guest's open-iscsi, `login`/`logout`, and block
// disks given to a running TCG domain. Targets: tgt in the guest on 127.0.0.1:3260, made
// by our TgtBackend. Checked with the guest's own tools: virsh, iscsiadm, readlink, blockdev.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Iscsiadm } from '../../src/hypervisor/iscsiadm.js';
import { TgtBackend } from '../../src/storage/tgt/backend.js';
import { labCli, labCliOk, labDomain, removeDomain, unique, useLab, type Lab } from './lab.js';

const id = unique();
const OPEN = `iqn.2024-01.test.lab:pool-${id}`;
const CHAP_IQN = `iqn.2024-01.test.lab:poolchap-${id}`;
const IMG = (n: string): string => `/var/lib/lab-pool-${id}-${n}.img`;
const POOL = `lab-pool-${id}`;
const CHAP_POOL = `lab-poolchap-${id}`;
const OWN_POOL = `lab-poolown-${id}`;
/** The initiator name a pool of its own logs in with (the target's ACL has it too). */
const OWN_INITIATOR = `iqn.2024-01.test.lab:own-${id}`;
const VM = `lab-vm-${id}`;
const CHAP_USER = `pl${id}`;
const CHAP_SECRET = `poolsec${id}`; // 14 characters: what initiators take (12 to 16)
const MiB = 2 ** 20;
const byPath = (iqn: string, lun: number): string => `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${iqn}-lun-${lun}`;

interface VolumeJson {
  name: string;
  path: string;
  capacity: number;
}

describe('pools, login and block disks in the lab guest, through the CLI over SSH', () => {
  let lab: Lab;
  let hv: string[];
  let iscsi: Iscsiadm;
  let tgt: TgtBackend;
  let initiator: string;
  let dir: string;
  let secretFile: string;
  let wrongFile: string;

  /** What open-iscsi has for a target: sessions and node records (iscsiadm's own listing). */
  const iscsiState = async (iqn: string): Promise<{ sessions: boolean; nodes: boolean }> => {
    const s = await lab.runner.run(['iscsiadm', '-m', 'session']);
    const n = await lab.runner.run(['iscsiadm', '-m', 'node']);
    return { sessions: s.stdout.includes(iqn), nodes: n.stdout.includes(iqn) };
  };
  const virsh = (...args: string[]): Promise<string> => lab.sh(['virsh', ...args]);
  /** `virsh domblklist --details` rows: [type, device, target, source]. */
  const blk = async (inactive = false): Promise<string[][]> =>
    (await virsh('domblklist', '--details', ...(inactive ? ['--inactive'] : []), VM))
      .split('\n')
      .slice(2)
      .map((l) => l.trim().split(/\s+/))
      .filter((c) => c.length >= 4);

  before(async () => {
    lab = await useLab();
    hv = ['--hypervisor', lab.uri];
    iscsi = new Iscsiadm(lab.runner);
    tgt = new TgtBackend(lab.runner);
    initiator = await iscsi.initiatorName();
    await lab.sh(['truncate', '-s', '32M', IMG('a')]);
    await lab.sh(['truncate', '-s', '16M', IMG('b')]);
    await lab.sh(['truncate', '-s', '8M', IMG('c')]);
    await tgt.create({ iqn: OPEN, luns: [{ lun: 1, path: IMG('a') }, { lun: 2, path: IMG('b') }], allow: [initiator, OWN_INITIATOR], persist: false });
    await tgt.create({ iqn: CHAP_IQN, luns: [{ lun: 1, path: IMG('c') }], allow: [initiator], chap: { user: CHAP_USER, secret: CHAP_SECRET }, persist: false });
    await labDomain(lab, VM);
    dir = mkdtempSync(join(tmpdir(), 'lab-pool-'));
    secretFile = join(dir, 'chap');
    wrongFile = join(dir, 'wrong');
    writeFileSync(secretFile, `${CHAP_SECRET}\n`);
    writeFileSync(wrongFile, `not-${CHAP_SECRET}\n`);
    chmodSync(secretFile, 0o600);
    chmodSync(wrongFile, 0o600);
  });

  after(async () => {
    if (!lab) return;
    try {
      await removeDomain(lab, VM);
      for (const p of [POOL, CHAP_POOL, OWN_POOL]) {
        await lab.runner.run(['virsh', 'pool-destroy', p]);
        await lab.runner.run(['virsh', 'pool-undefine', p]);
      }
      for (const iqn of [OPEN, CHAP_IQN]) {
        await lab.runner.run(['iscsiadm', '-m', 'node', '-T', iqn, '--logout']);
        await lab.runner.run(['iscsiadm', '-m', 'node', '-T', iqn, '-o', 'delete']);
        await tgt.delete(iqn, { force: true });
      }
      const secrets = await lab.runner.run(['virsh', 'secret-list']);
      for (const line of secrets.stdout.split('\n').filter((l) => l.includes(CHAP_POOL))) await lab.runner.run(['virsh', 'secret-undefine', line.trim().split(/\s+/)[0]!]);
      const ifaces = await lab.runner.run(['iscsiadm', '-m', 'iface']);
      for (const line of ifaces.stdout.split('\n').filter((l) => l.endsWith(`,${OWN_INITIATOR}`))) await lab.runner.run(['iscsiadm', '-m', 'iface', '-I', line.split(' ')[0]!, '-o', 'delete']);
      await lab.sh(['rm', '-f', IMG('a'), IMG('b'), IMG('c')]);
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await lab.release();
    }
  });

  test('discover, then login through a host name with CHAP: by-path devices; again: nothing to do', async () => {
    const found = JSON.parse(await labCliOk(lab, ['discover', 'localhost:3260', ...hv, '--json'])) as Array<{ portal: string; target: string }>;
    assert.ok(found.some((e) => e.target === CHAP_IQN && e.portal === '127.0.0.1:3260'), JSON.stringify(found));
    assert.deepEqual(await iscsiState(CHAP_IQN), { sessions: false, nodes: false }, 'discovery wrote no node record');

    const login = ['login', '--portal', 'localhost', '--target', CHAP_IQN, '--chap', CHAP_USER, '--chap-secret-file', secretFile, ...hv];
    const dry = await labCli(lab, [...login, '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /--op new/);
    assert.ok(!dry.stdout.includes(CHAP_SECRET), 'the dry run shows no secret');
    assert.deepEqual(await iscsiState(CHAP_IQN), { sessions: false, nodes: false }, 'the dry run changed nothing');

    const r = JSON.parse(await labCliOk(lab, [...login, '--json'])) as { portal: string; devices: string[] };
    assert.deepEqual([r.portal, r.devices], ['127.0.0.1:3260', [byPath(CHAP_IQN, 1)]], 'the host name resolved in the guest: by-path names carry the IP');
    assert.match((await lab.sh(['readlink', '-f', byPath(CHAP_IQN, 1)])).trim(), /^\/dev\/sd[a-z]+$/);
    assert.equal((await lab.sh(['blockdev', '--getsize64', byPath(CHAP_IQN, 1)])).trim(), String(8 * MiB));
    const again = await labCliOk(lab, [...login]);
    assert.match(again, /^already done: create the open-iscsi node record/m);
    assert.match(again, /^already done: log in to /m);
    assert.equal((await lab.sh(['iscsiadm', '-m', 'session'])).split('\n').filter((l) => l.includes(CHAP_IQN)).length, 1, 'one session');
  });

  test('login to a target the portal does not offer: one line naming what it offers', async () => {
    const r = await labCli(lab, ['login', '--portal', '127.0.0.1', '--target', `${OPEN}-nope`, ...hv]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`does not offer target ${OPEN.replace(/\./g, '\\.')}-nope; discovery found .*${OPEN.replace(/\./g, '\\.')} at 127\\.0\\.0\\.1:3260`));
  });

  test('attach --mode block --by-path to the running TCG domain: virsh sees the disk and its size; detach', async () => {
    const before = await virsh('dumpxml', '--inactive', VM);
    const dev = byPath(CHAP_IQN, 1);
    const a = JSON.parse(await labCliOk(lab, ['attach', VM, '--mode', 'block', '--by-path', dev, ...hv, '--json'])) as { dev: string; bus: string; live: boolean; config: boolean };
    assert.deepEqual([a.bus, a.live, a.config], ['scsi', true, true]);
    assert.deepEqual((await blk()).find((b) => b[2] === a.dev), ['block', 'disk', a.dev, dev]);
    assert.deepEqual((await blk(true)).find((b) => b[2] === a.dev), ['block', 'disk', a.dev, dev], 'and in the definition');
    assert.match(await virsh('domblkinfo', VM, a.dev), new RegExp(`Capacity:\\s+${8 * MiB}\\n`));
    await labCliOk(lab, ['detach', VM, '--dev', a.dev, ...hv]);
    assert.equal((await blk()).some((b) => b[2] === a.dev), false);
    assert.equal(await virsh('dumpxml', '--inactive', VM), before);
  });

  test('logout, twice: no session, no node record, no device', async () => {
    const out = ['logout', '--portal', '127.0.0.1:3260', '--target', CHAP_IQN, ...hv];
    await labCliOk(lab, out);
    await labCliOk(lab, out);
    assert.deepEqual(await iscsiState(CHAP_IQN), { sessions: false, nodes: false });
    assert.notEqual((await lab.runner.run(['test', '-e', byPath(CHAP_IQN, 1)])).exitCode, 0);
  });

  test('pool create --type iscsi: the guest logs in, pool volumes lists each LUN as its by-path device', async () => {
    const created = JSON.parse(await labCliOk(lab, ['pool', 'create', POOL, '--type', 'iscsi', '--portal', '127.0.0.1:3260', '--target', OPEN, ...hv, '--json'])) as { type: string; volumes: VolumeJson[] };
    const want = [
      ['unit:0:0:1', byPath(OPEN, 1), 32 * MiB],
      ['unit:0:0:2', byPath(OPEN, 2), 16 * MiB],
    ];
    assert.equal(created.type, 'iscsi');
    assert.deepEqual(created.volumes.map((v) => [v.name, v.path, v.capacity]), want);
    const vols = JSON.parse(await labCliOk(lab, ['pool', 'volumes', POOL, ...hv, '--json'])) as VolumeJson[];
    assert.deepEqual(vols.map((v) => [v.name, v.path, v.capacity]), want);
    const list = JSON.parse(await labCliOk(lab, ['pool', 'list', ...hv, '--json'])) as Array<{ name: string; state: string; autostart: boolean }>;
    assert.deepEqual(list.filter((p) => p.name === POOL).map((p) => [p.state, p.autostart]), [['running', true]]);
    // with the guest's tools: libvirt's pool, open-iscsi's session, the kernel's disks
    assert.match(await virsh('pool-info', POOL), /State:\s+running[\s\S]*Autostart:\s+yes/);
    assert.match(await virsh('vol-list', POOL), new RegExp(`unit:0:0:2 +${byPath(OPEN, 2).replace(/\./g, '\\.')}`));
    assert.deepEqual(await iscsiState(OPEN), { sessions: true, nodes: true });
    for (const [, path, size] of want) assert.equal((await lab.sh(['blockdev', '--getsize64', String(path)])).trim(), String(size));
  });

  test('a pool volume and a by-path LUN as disks of the running domain; detached again', async () => {
    const before = await virsh('dumpxml', '--inactive', VM);
    const vol = JSON.parse(await labCliOk(lab, ['attach', VM, '--pool', POOL, '--volume', 'unit:0:0:1', ...hv, '--json'])) as { dev: string };
    const ro = JSON.parse(await labCliOk(lab, ['attach', VM, '--mode', 'block', '--by-path', byPath(OPEN, 2), '--readonly', ...hv, '--json'])) as { dev: string };
    const rows = await blk();
    assert.deepEqual(rows.find((b) => b[2] === vol.dev), ['volume', 'disk', vol.dev, 'unit:0:0:1']);
    assert.deepEqual(rows.find((b) => b[2] === ro.dev), ['block', 'disk', ro.dev, byPath(OPEN, 2)]);
    assert.match(await virsh('domblkinfo', VM, vol.dev), new RegExp(`Capacity:\\s+${32 * MiB}\\n`));
    assert.match(await virsh('domblkinfo', VM, ro.dev), new RegExp(`Capacity:\\s+${16 * MiB}\\n`));
    const disk = (await virsh('dumpxml', VM)).split('<disk ').find((d) => d.includes(`<target dev='${ro.dev}'`)) ?? '';
    assert.match(disk, /<readonly\/>/);
    for (const dev of [vol.dev, ro.dev]) await labCliOk(lab, ['detach', VM, '--dev', dev, ...hv]);
    assert.deepEqual(await blk(), []);
    assert.equal(await virsh('dumpxml', '--inactive', VM), before);
  });

  test('pool delete: no pool, no session, no node record, no device; a second delete is fine', async () => {
    assert.match(await labCliOk(lab, ['pool', 'delete', POOL, ...hv]), new RegExp(`deleted pool ${POOL}`));
    assert.notEqual((await lab.runner.run(['virsh', 'pool-info', POOL])).exitCode, 0);
    assert.deepEqual(await iscsiState(OPEN), { sessions: false, nodes: false }, 'libvirt left a node record behind');
    assert.notEqual((await lab.runner.run(['test', '-e', byPath(OPEN, 1)])).exitCode, 0);
    assert.match(await labCliOk(lab, ['pool', 'delete', POOL, ...hv]), /is not there \(nothing to do\)/);
  });

  test('a pool with an initiator name of its own: libvirt logs in through an iface it makes; delete takes records and iface', async () => {
    const made = JSON.parse(
      await labCliOk(lab, ['pool', 'create', OWN_POOL, '--type', 'iscsi', '--portal', '127.0.0.1', '--target', OPEN, '--initiator', OWN_INITIATOR, ...hv, '--json']),
    ) as { volumes: VolumeJson[] };
    assert.deepEqual(made.volumes.map((v) => v.name), ['unit:0:0:1', 'unit:0:0:2']);
    assert.deepEqual((await tgt.show(OPEN))?.sessions.map((x) => x.initiator), [OWN_INITIATOR], 'the target sees the pool\'s own name');
    const iface = (await lab.sh(['iscsiadm', '-m', 'iface'])).split('\n').find((l) => l.endsWith(`,${OWN_INITIATOR}`));
    assert.match(iface ?? '', /^libvirt-iface-[0-9a-f]{8} tcp,/, 'pitfall 12: libvirt made an iface');
    await labCliOk(lab, ['pool', 'delete', OWN_POOL, ...hv]);
    assert.deepEqual(await iscsiState(OPEN), { sessions: false, nodes: false });
    assert.doesNotMatch(await lab.sh(['iscsiadm', '-m', 'iface']), new RegExp(OWN_INITIATOR.replace(/\./g, '\\.')), 'the iface went with the pool');
  });

  test('CHAP pool: a wrong secret is refused and rolled back; the right one lists the LUN; delete takes the secret', async () => {
    const secretLines = async (): Promise<string[]> => (await virsh('secret-list')).split('\n').filter((l) => l.includes(CHAP_POOL));
    const create = (file: string): string[] => ['pool', 'create', CHAP_POOL, '--type', 'iscsi', '--portal', '127.0.0.1', '--target', CHAP_IQN, '--chap', CHAP_USER, '--chap-secret-file', file, '--timeout', '20', ...hv];
    const bad = await labCli(lab, create(wrongFile));
    assert.equal(bad.status, 1, bad.stdout);
    const line = bad.stderr.trim();
    assert.equal(line.split('\n').length, 1, bad.stderr);
    assert.match(line, new RegExp(`pool-start --pool ${CHAP_POOL}`));
    assert.ok(!line.includes(CHAP_SECRET), 'no secret in the error');
    assert.notEqual((await lab.runner.run(['virsh', 'pool-info', CHAP_POOL])).exitCode, 0, 'the pool was rolled back');
    assert.deepEqual(await secretLines(), [], 'the secret was rolled back');
    assert.deepEqual(await iscsiState(CHAP_IQN), { sessions: false, nodes: false }, 'the failed login left a node record');

    const made = JSON.parse(await labCliOk(lab, [...create(secretFile), '--json'])) as { volumes: VolumeJson[] };
    assert.deepEqual(made.volumes.map((v) => [v.name, v.path, v.capacity]), [['unit:0:0:1', byPath(CHAP_IQN, 1), 8 * MiB]]);
    const [secret] = await secretLines();
    assert.ok(secret, 'a libvirt secret holds the password');
    assert.match(await virsh('pool-dumpxml', CHAP_POOL), new RegExp(`<auth type='chap' username='${CHAP_USER}'>`));
    const record = await lab.sh(['iscsiadm', '-m', 'node', '-T', CHAP_IQN, '-p', '127.0.0.1:3260']);
    assert.match(record, new RegExp(`node.session.auth.username = ${CHAP_USER}\\n`), 'libvirt put the user into the node record');
    assert.ok(!record.includes(CHAP_SECRET), 'iscsiadm masks the password');

    await labCliOk(lab, ['pool', 'delete', CHAP_POOL, ...hv]);
    assert.deepEqual(await secretLines(), []);
    assert.deepEqual(await iscsiState(CHAP_IQN), { sessions: false, nodes: false });
  });
});
