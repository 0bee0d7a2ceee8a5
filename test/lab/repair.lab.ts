// repair and sweep where open-iscsi really logs in (the main suite's host cannot): block
// mode in the lab guest, the guest both storage host and hypervisor, reached over SSH as
// users reach hosts; the CLI runs on this machine (local records in a temp XDG_STATE_HOME).
// repair: a session logged out by hand, and then its node record deleted too, are made
// again (status names them first, is healthy after; a second repair changes nothing).
// sweep: a block export whose target is deleted by hand and whose records are lost leaves
// open-iscsi retrying against nothing (the iscsid-retries-forever case): sweep logs the
// session out, deletes the node record, takes the disk away and drops the target's tgt
// record. The guest is read with its own tools: iscsiadm, tgtadm, virsh, lsblk.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IscsiExportRecord } from '../../src/workflows/records.js';
import { labCli, labCliOk, labDomain, removeDomain, unique, useLab, type Lab } from './lab.js';

const id = unique();
// Each test has its own domain. A session logged out under a running domain (what the
// first test does on purpose) leaves libvirt's remembered owner on the gone device's node
// in that domain's private /dev, and libvirt then refuses any later LUN that gets the same
// device number for that domain ("Setting different DAC user or group ... already in use")
// until it is started anew; virt-iscsi names that in its error (see virsh-errors.ts).
const VMS = ['a', 'b', 'c'].map((n) => `lab-rvm-${id}-${n}`);
const DIR = `/var/lib/lab-repair-${id}`;
const RECORDS = `${DIR}/records`;
const PORTAL = '127.0.0.1:3260';

interface StatusDoc {
  exports: Array<{ name: string; healthy: boolean; health: Record<string, string>; problems: string[] }>;
}
interface RepairDoc {
  exports: Array<{ name: string; outcome: string; changes: Array<{ step: string; what: string }>; problems: string[]; error?: string }>;
}
interface SweepDoc {
  orphans: Array<{ kind: string; name: string; export: string; detail: string; removed?: boolean; error?: string }>;
  notes: string[];
}

describe('repair and sweep with a real open-iscsi session (block mode) in the lab guest', () => {
  let lab: Lab;
  let hosts: string[];
  let state: string;
  let env: Record<string, string>;
  let startedTgt = false;

  async function snapshot(vm: string): Promise<Record<string, string>> {
    const out = async (argv: string[]): Promise<string> => {
      const r = await lab.runner.run(argv);
      return `${r.exitCode} ${r.stdout}${r.stderr}`;
    };
    const texts = await Promise.all([
      out(['iscsiadm', '-m', 'session']),
      out(['iscsiadm', '-m', 'node']),
      out(['virsh', 'dumpxml', '--inactive', vm]),
      out(['virsh', 'domblklist', vm]),
      out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']),
      out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'account']),
      out(['ls', '-A', '/etc/tgt/conf.d']),
      out(['ls', '/dev/disk/by-path']),
      out(['ls', '-A', RECORDS]),
    ]);
    const names = ['sessions', 'nodes', 'vm', 'blk', 'tgtTargets', 'tgtAccounts', 'tgtConf', 'byPath', 'records'];
    return Object.fromEntries(names.map((n, i) => [n, texts[i]!]));
  }

  const exportIt = async (args: string[]): Promise<IscsiExportRecord> => JSON.parse(await labCliOk(lab, ['export', ...args, ...hosts, '--host-records', RECORDS, '--json'], env)) as IscsiExportRecord;
  const status = async (name: string): Promise<StatusDoc['exports'][number]> => (JSON.parse(await labCliOk(lab, ['status', name, '--json'], env)) as StatusDoc).exports[0]!;
  const repair = async (name: string): Promise<RepairDoc['exports'][number]> => (JSON.parse(await labCliOk(lab, ['repair', name, '--host-records', RECORDS, '--json'], env)) as RepairDoc).exports[0]!;
  const iscsiadm = (...args: string[]): Promise<string> => lab.sh(['iscsiadm', ...args]);
  const sessionsOf = async (iqn: string): Promise<string[]> => {
    const r = await lab.runner.run(['iscsiadm', '-m', 'session']);
    return r.stdout.split('\n').filter((l) => l.includes(iqn));
  };
  /** The device numbers (major:minor) of the block devices the domain's QEMU has open. */
  const qemuHolds = async (vm: string): Promise<string[]> => {
    const out = await lab.sh(['sh', '-c', `p=$(cat /run/libvirt/qemu/${vm}.pid) && for f in /proc/$p/fd/*; do stat -L -c '%F %t:%T' "$f"; done 2>/dev/null | sed -n 's/^block special file //p' | sort -u`]);
    return out.split('\n').filter(Boolean);
  };
  const numberOf = async (dev: string): Promise<string> => (await lab.sh(['stat', '-L', '-c', '%t:%T', dev])).trim();
  const tidOf = async (iqn: string): Promise<string> =>
    new RegExp(`^Target (\\d+): ${iqn.replace(/\./g, '\\.')}$`, 'm').exec(await lab.sh(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']))![1]!;

  before(async () => {
    lab = await useLab();
    hosts = ['--storage', lab.uri, '--hypervisor', lab.uri];
    state = mkdtempSync(join(tmpdir(), 'lab-repair-'));
    env = { XDG_STATE_HOME: state };
    await lab.sh(['mkdir', '-p', DIR, RECORDS]);
    startedTgt = (await lab.runner.run(['systemctl', 'is-active', '--quiet', 'tgt'])).exitCode !== 0;
    if (startedTgt) await lab.sh(['systemctl', 'start', 'tgt']);
  });

  after(async () => {
    if (!lab) return;
    try {
      for (const f of (await lab.runner.run(['ls', RECORDS])).stdout.split('\n').filter((x) => x.endsWith('.json'))) {
        await labCli(lab, ['unexport', f.replace(/\.json$/, ''), '--storage', lab.uri, '--host-records', RECORDS, '--force'], env);
      }
      for (const vm of VMS) await removeDomain(lab, vm);
      await lab.sh(['rm', '-rf', DIR]);
      if (startedTgt) await lab.sh(['systemctl', 'stop', 'tgt']);
      rmSync(state, { recursive: true, force: true });
    } finally {
      await lab.release();
    }
  });

  test('repair: a lost session, then a lost session and node record, logged in again; the device has its serial', async () => {
    const VM = VMS[0]!;
    await labDomain(lab, VM);
    const before = await snapshot(VM);
    const image = `${DIR}/data-${id}.img`;
    await lab.sh(['truncate', '-s', '16M', image]);
    const x = await exportIt([image, '--vm', VM, '--mode', 'block']);
    const dev = `/dev/disk/by-path/ip-${PORTAL}-iscsi-${x.target}-lun-1`;
    assert.equal((await sessionsOf(x.target)).length, 1);

    // The session logged out by hand: the node record stays.
    await iscsiadm('-m', 'node', '-T', x.target, '-p', PORTAL, '--logout');
    let st = await status(x.name);
    assert.equal(st.healthy, false);
    assert.equal(st.health.session, 'missing', st.problems.join('; '));
    assert.ok(st.problems.some((p) => p.includes(`${dev} is not there`)), st.problems.join('; '));
    let r = await repair(x.name);
    assert.equal(r.outcome, 'repaired', `${r.error ?? ''} ${r.problems.join('; ')}`);
    assert.deepEqual(r.changes.map((c) => c.step), ['login', 'replug']);
    assert.equal((await sessionsOf(x.target)).length, 1, 'logged in again, once');
    // QEMU opened the new session's device (the old one stays gone, held only until the replug).
    assert.deepEqual(await qemuHolds(VM), [await numberOf(dev)], 'QEMU holds the device the new session made');
    assert.equal((await lab.sh(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev])).trim(), x.serial);
    st = await status(x.name);
    assert.equal(st.healthy, true, st.problems.join('; '));

    // A new QEMU, so a new private /dev, for the second loss: libvirt refuses this QEMU a
    // device number that went away under it (see VMS), and the next login may get that one.
    await lab.sh(['virsh', 'destroy', VM]);
    await lab.sh(['virsh', 'start', VM]);
    assert.deepEqual(await qemuHolds(VM), [await numberOf(dev)], 'the started domain opened the device from its definition');

    // The session and the node record gone: discovery makes the record again, then the login.
    await iscsiadm('-m', 'node', '-T', x.target, '-p', PORTAL, '--logout');
    await iscsiadm('-m', 'node', '-T', x.target, '-p', PORTAL, '-o', 'delete');
    r = await repair(x.name);
    assert.equal(r.outcome, 'repaired', `${r.error ?? ''} ${r.problems.join('; ')}`);
    assert.deepEqual(r.changes.map((c) => c.step), ['node', 'login', 'replug']);
    assert.deepEqual(await qemuHolds(VM), [await numberOf(dev)], 'QEMU holds the device the new session made');
    assert.match(await iscsiadm('-m', 'node'), new RegExp(`${PORTAL.replace(/\./g, '\\.')},\\d+ ${x.target.replace(/\./g, '\\.')}`));
    assert.equal((await status(x.name)).healthy, true);
    const again = await repair(x.name);
    assert.deepEqual([again.outcome, again.changes], ['healthy', []], 'a second repair changes nothing');

    await labCliOk(lab, ['unexport', x.name, '--host-records', RECORDS], env);
    assert.deepEqual(await snapshot(VM), before);
    await removeDomain(lab, VM);
  });

  test('repair: an iscsi pool left running without its session logs in again on its node record', async () => {
    const VM = VMS[1]!;
    await labDomain(lab, VM);
    const before = await snapshot(VM);
    const image = `${DIR}/pooled-${id}.img`;
    await lab.sh(['truncate', '-s', '16M', image]);
    const x = await exportIt([image, '--vm', VM, '--mode', 'pool']);
    const dev = `/dev/disk/by-path/ip-${PORTAL}-iscsi-${x.target}-lun-1`;
    await iscsiadm('-m', 'node', '-T', x.target, '-p', PORTAL, '--logout');
    assert.match(await lab.sh(['virsh', 'pool-info', `virt-iscsi-${x.name}`]), /State:\s+running/, 'libvirt still says running');
    const st = await status(x.name);
    assert.equal(st.health.session, 'missing', st.problems.join('; '));
    const r = await repair(x.name);
    assert.equal(r.outcome, 'repaired', `${r.error ?? ''} ${r.problems.join('; ')}`);
    assert.deepEqual(r.changes.map((c) => c.step), ['pool-session', 'replug']);
    assert.equal((await sessionsOf(x.target)).length, 1);
    assert.deepEqual(await qemuHolds(VM), [await numberOf(dev)], 'QEMU holds the device the new session made');
    assert.equal((await lab.sh(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev])).trim(), x.serial);
    assert.equal((await status(x.name)).healthy, true);
    await labCliOk(lab, ['unexport', x.name, '--host-records', RECORDS], env);
    assert.deepEqual(await snapshot(VM), before);
    await removeDomain(lab, VM);
  });

  test('sweep: the session and node record of a deleted target are logged out and deleted (no retrying for ever), the disk and tgt record go', async () => {
    const VM = VMS[2]!;
    await labDomain(lab, VM);
    const before = await snapshot(VM);
    const image = `${DIR}/gone-${id}.img`;
    await lab.sh(['truncate', '-s', '8M', image]);
    const x = await exportIt([image, '--vm', VM, '--mode', 'block']);
    // The target deleted by hand under the logged-in initiator, and every record of the export lost.
    await lab.sh(['tgtadm', '--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', await tidOf(x.target), '--force']);
    rmSync(join(state, 'virt-iscsi', 'exports', `${x.name}.json`));
    await lab.sh(['rm', `${RECORDS}/${x.name}.json`]);
    assert.equal((await sessionsOf(x.target)).length, 1, 'open-iscsi keeps the session, retrying');

    const args = ['sweep', x.name, '--storage', lab.uri, '--hypervisor', lab.uri, '--host-records', RECORDS, '--json'];
    const listed = JSON.parse(await labCliOk(lab, args, env)) as SweepDoc;
    assert.deepEqual(listed.orphans.map((o) => o.kind).sort(), ['disk', 'session', 'target'], JSON.stringify(listed, null, 1));
    assert.match(listed.orphans.find((o) => o.kind === 'session')!.detail, /session and node record of .* a target this sweep removes/);
    const swept = JSON.parse(await labCliOk(lab, [...args, '--yes'], env)) as SweepDoc;
    assert.deepEqual(swept.orphans.filter((o) => !o.removed), [], JSON.stringify(swept, null, 1));
    assert.deepEqual(await sessionsOf(x.target), [], 'no session left retrying');
    assert.doesNotMatch((await lab.runner.run(['iscsiadm', '-m', 'node'])).stdout, new RegExp(x.target.replace(/\./g, '\\.')));
    assert.deepEqual(await snapshot(VM), before);
    const again = JSON.parse(await labCliOk(lab, args, env)) as SweepDoc;
    assert.deepEqual(again.orphans, []);
    await removeDomain(lab, VM);
  });
});
