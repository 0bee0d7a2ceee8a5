// `virt-iscsi export --portal A --portal B` for real: mode multipath in the lab guest, the
// guest both storage host (the distribution's tgtd, listening on every address) and
// hypervisor (open-iscsi, multipath-tools, libvirt), the CLI on this machine over SSH. Two
// portals on the guest's lo (127.0.0.1 and 127.0.0.2); the export to a running domain; the
// guest's own tools say what is there: `multipath -ll`, multipathd's JSON, iscsiadm,
// virsh, tgtadm. One path is cut with an nft rule while a reader reads the map (O_DIRECT):
// reads go on, one path fails, and how long the reads stalled is printed; the rule gone,
// both paths are active again. unexport leaves no map, session, node record, wwids entry,
// drop-in or target. multipathd is off at boot in the lab: the export starts it, the test
// stops it again at the end.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseMultipathLl } from '../../src/hypervisor/multipath.js';
import type { ExportRecord } from '../../src/workflows/records.js';
import { waitFor } from '../helpers/daemon.js';
import { labCli, labCliOk, labDomain, removeDomain, unique, useLab, type Lab } from './lab.js';

const id = unique();
const VM = `lab-mpx-${id}`;
const DIR = `/var/lib/lab-mpx-${id}`;
const RECORDS = `${DIR}/records`;
const NAME = `mpx-${id}`;
const IMAGE = `${DIR}/${NAME}.img`;
const MiB = 2 ** 20;
const SIZE = 32 * MiB;
const PORTALS = ['127.0.0.1:3260', '127.0.0.2:3260'];
const CUT = '127.0.0.2';
const NFT_TABLE = `lab_mpx_${id}`;
const READER = `/tmp/lab-mpx-${id}-reader.sh`;
const READS = `/tmp/lab-mpx-${id}-reads.log`;

type MultipathRecord = Extract<ExportRecord, { mode: 'multipath' }> & { changed: boolean };

describe('export in mode multipath over two portals in the lab guest, through the CLI over SSH', () => {
  let lab: Lab;
  let env: Record<string, string>;
  let state: string;
  let hosts: string[];
  let startedTgt = false;
  let mpathdWasActive = false;
  let before0: Record<string, string>;
  let x: MultipathRecord | undefined;
  let readerPid = '';
  const t0 = Date.now();

  const sh = (argv: string[]): Promise<string> => lab.sh(argv);
  const out = async (argv: string[]): Promise<string> => {
    const r = await lab.runner.run(argv);
    return `${r.exitCode} ${r.stdout}${r.stderr}`;
  };
  /** What the guest holds that an export makes: the same before the export and after its unexport. */
  const snapshot = async (): Promise<Record<string, string>> => {
    const [sessions, nodes, maps, confd, wwids, targets, byId, pools, domain] = await Promise.all([
      out(['iscsiadm', '-m', 'session']),
      out(['iscsiadm', '-m', 'node']),
      out(['dmsetup', 'ls', '--target', 'multipath']),
      out(['sh', '-c', 'ls -A /etc/multipath/conf.d 2>/dev/null || true']),
      // multipathd makes the file (comments only) the first time it runs: no file is the same
      out(['sh', '-c', 'grep -sv "^#" /etc/multipath/wwids || true']),
      out(['sh', '-c', 'tgtadm --lld iscsi --op show --mode target 2>/dev/null | grep "^Target" || true']),
      out(['sh', '-c', 'ls /dev/disk/by-id | grep -v -e ^ata- -e ^virtio- || true']),
      out(['virsh', 'pool-list', '--all']),
      out(['virsh', 'dumpxml', '--inactive', VM]),
    ]);
    return { sessions, nodes, maps, confd, wwids, targets, byId, pools, domain };
  };
  const map = async () => {
    const m = parseMultipathLl(await sh(['multipath', '-ll', x!.wwid]));
    return m.find((y) => y.wwid === x!.wwid);
  };
  const states = async (): Promise<string[]> => ((await map())?.paths ?? []).map((p) => `${p.dmState} ${p.checkerState} ${p.devState}`).sort();

  before(async () => {
    lab = await useLab();
    state = mkdtempSync(join(tmpdir(), 'lab-mpx-'));
    env = { XDG_STATE_HOME: state };
    hosts = ['--storage', lab.uri, '--hypervisor', lab.uri, '--host-records', RECORDS];
    await sh(['mkdir', '-p', DIR, RECORDS]);
    await sh(['truncate', '-s', String(SIZE), IMAGE]);
    await labDomain(lab, VM);
    startedTgt = (await lab.runner.run(['systemctl', 'is-active', '--quiet', 'tgt'])).exitCode !== 0;
    if (startedTgt) await sh(['systemctl', 'start', 'tgt']);
    mpathdWasActive = (await lab.runner.run(['systemctl', 'is-active', '--quiet', 'multipathd'])).exitCode === 0;
    before0 = await snapshot();
  });

  after(async () => {
    if (!lab) return;
    try {
      const run = (argv: string[]): Promise<unknown> => lab.runner.run(argv);
      if (readerPid) await run(['kill', readerPid]);
      await run(['nft', 'delete', 'table', 'inet', NFT_TABLE]);
      await labCli(lab, ['unexport', NAME, ...hosts.slice(0, 2), '--host-records', RECORDS, '--force'], env);
      await removeDomain(lab, VM);
      await run(['rm', '-rf', DIR, READER, READS]);
      if (!mpathdWasActive) await run(['systemctl', 'stop', 'multipathd.service', 'multipathd.socket']);
      if (startedTgt) await run(['systemctl', 'stop', 'tgt']);
      rmSync(state, { recursive: true, force: true });
      console.log(`multipath lab test: ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
    } finally {
      await lab.release();
    }
  });

  test('two --portal: mode multipath; one map named by the WWID with 2 active paths; the VM has it as a block disk', async () => {
    const started = Date.now();
    x = JSON.parse(await labCliOk(lab, ['export', IMAGE, '--vm', VM, '--portal', '127.0.0.1', '--portal', '127.0.0.2', ...hosts, '--json'], env)) as MultipathRecord;
    console.log(`export in mode multipath took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual([x.mode, x.portals, x.minPaths, x.backend], ['multipath', PORTALS, 2, 'tgt']);
    assert.deepEqual(x.session, { replacementTimeout: 5, noopOutInterval: 5, noopOutTimeout: 5 });
    const dev = `/dev/disk/by-id/dm-uuid-mpath-${x.wwid}`;
    // multipath's own view: one map, our WWID, both paths active.
    const ll = await sh(['multipath', '-ll']);
    assert.equal([...ll.matchAll(/^(\S+) dm-\d+ IET,VIRTUAL-DISK$/gm)].filter((m) => m[1] === x!.wwid).length, 1, ll);
    assert.deepEqual(await states(), ['active ready running', 'active ready running'], ll);
    const json = JSON.parse(await sh(['multipathd', 'show', 'maps', 'json'])) as { maps: Array<{ uuid: string; paths: number; path_groups: Array<{ paths: Array<{ dev: string; target_wwnn: string }> }> }> };
    const m = json.maps.find((y) => y.uuid === x!.wwid)!;
    assert.equal(m.paths, 2);
    assert.deepEqual(new Set(m.path_groups.flatMap((g) => g.paths.map((p) => p.target_wwnn))), new Set([x.target]));
    // Each path: its own session through its own portal, the record's replacement timeout live.
    const p3 = await sh(['iscsiadm', '-m', 'session', '-P', '3']);
    const ours = p3.split(/^Target: /m).find((b) => b.startsWith(`${x!.target} `)) ?? '';
    const blocks = ours.split(/^\s*Current Portal: /m).slice(1);
    assert.deepEqual(blocks.map((b) => /^(\S+),\d+/.exec(b)?.[1]).sort(), PORTALS);
    for (const b of blocks) {
      const sid = /SID: (\d+)/.exec(b)![1]!;
      assert.equal((await sh(['cat', `/sys/class/iscsi_session/session${sid}/recovery_tmo`])).trim(), '5');
      const disk = /Attached scsi disk (sd[a-z]+)/.exec(b)![1]!;
      assert.equal((await sh(['/lib/udev/scsi_id', '-g', '-u', '-d', `/dev/${disk}`])).trim(), x.wwid, `${disk}: udev's WWID`);
      assert.equal((await sh(['lsblk', '-dbno', 'SERIAL,SIZE', `/dev/${disk}`])).trim().split(/\s+/).join(' '), `${x.serial} ${SIZE}`);
    }
    // The drop-in with our header, multipathd running with it, the WWID in its wwids file.
    assert.match(await sh(['cat', `/etc/multipath/conf.d/virt-iscsi-${NAME}.conf`]), new RegExp(`^# virt-iscsi: export ${NAME} [\\s\\S]*\\twwid ${x.wwid}\\n`));
    assert.match(await sh(['multipathd', 'show', 'config']), new RegExp(`wwid "${x.wwid}"\\n\\s+path_grouping_policy "multibus"`));
    assert.match(await sh(['cat', '/etc/multipath/wwids']), new RegExp(`^/${x.wwid}/$`, 'm'));
    // The VM's disk is the map.
    const a = x.hypervisors[0]!.attachment!;
    const row = (await sh(['virsh', 'domblklist', VM, '--details'])).split('\n').map((l) => l.trim().split(/\s+/)).find((r) => r[2] === a.dev);
    assert.deepEqual(row, ['block', 'disk', a.dev, dev]);
    assert.match(await sh(['virsh', 'domblkinfo', VM, a.dev]), new RegExp(`Capacity:\\s+${SIZE}\\n`));
    // status shows each path.
    const st = JSON.parse(await labCliOk(lab, ['status', NAME, '--json'], env)) as { exports: Array<{ healthy: boolean; problems: string[]; hypervisors: Array<{ paths?: Array<{ portal?: string; state: string }> }> }> };
    const e = st.exports[0]!;
    assert.deepEqual(e.problems, []);
    assert.deepEqual(e.hypervisors[0]!.paths!.map((p) => `${p.portal} ${p.state}`).sort(), PORTALS.map((p) => `${p} active ready running`));
  });

  test('one path cut while a reader reads the map: reads go on, 1 path failed; restored: 2 active paths', async () => {
    assert.ok(x, 'exported');
    const dev = `/dev/disk/by-id/dm-uuid-mpath-${x.wwid}`;
    await lab.runner.writeFile(
      READER,
      [
        '#!/bin/bash',
        '# reads 4 KiB at a time with O_DIRECT; one line per read: when it ended (ms) and ok/fail',
        'i=0',
        'while :; do',
        '  if dd if="$1" of=/dev/null bs=4k count=1 skip=$((i % 8192)) iflag=direct status=none; then s=ok; else s=fail; fi',
        '  t=${EPOCHREALTIME/./}; echo "${t:0:-3} $s"',
        '  i=$((i + 1))',
        'done',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    readerPid = (await sh(['sh', '-c', `setsid ${READER} ${dev} >${READS} 2>&1 </dev/null & echo $!`])).trim();
    const reads = async (): Promise<Array<{ t: number; ok: boolean }>> =>
      (await sh(['cat', READS]))
        .split('\n')
        .filter(Boolean)
        .map((l) => ({ t: Number(l.split(' ')[0]), ok: l.endsWith(' ok') }));
    await waitFor('the reader to start reading', async () => (await reads()).length >= 5, 30_000);
    const now = async (): Promise<number> => Number((await sh(['date', '+%s%3N'])).trim());
    await sh(['nft', 'add', 'table', 'inet', NFT_TABLE]);
    await sh(['nft', 'add', 'chain', 'inet', NFT_TABLE, 'out', '{ type filter hook output priority 0; }']);
    await sh(['nft', 'add', 'rule', 'inet', NFT_TABLE, 'out', 'ip', 'daddr', CUT, 'tcp', 'dport', '3260', 'drop']);
    const cutAt = await now();
    await waitFor(`the path through ${CUT} to fail`, async () => (await states()).includes('failed faulty running'), 120_000);
    const failedAt = await now();
    const afterFail = (await reads()).length;
    await waitFor('reads after the path failed', async () => (await reads()).length >= afterFail + 5, 60_000);
    assert.deepEqual(await states(), ['active ready running', 'failed faulty running']);
    const st = JSON.parse(await labCliOk(lab, ['status', NAME, '--json'], env)) as { exports: Array<{ problems: string[]; hypervisors: Array<{ paths?: Array<{ portal?: string; state: string }> }> }> };
    const failed = st.exports[0]!.hypervisors[0]!.paths!.filter((p) => p.state !== 'active ready running');
    assert.deepEqual(failed.map((p) => `${p.portal} ${p.state}`), [`${CUT}:3260 failed faulty running`], 'status names the failed path');
    assert.ok(st.exports[0]!.problems.some((p) => p.includes(`(portal ${CUT}:3260)`) && p.includes('failed faulty')), st.exports[0]!.problems.join('\n'));

    await sh(['nft', 'delete', 'table', 'inet', NFT_TABLE]);
    const restoredAt = await now();
    await waitFor('both paths active again', async () => (await states()).join() === 'active ready running,active ready running', 120_000);
    const backAt = await now();
    const n = (await reads()).length;
    await waitFor('reads on both paths again', async () => (await reads()).length >= n + 5, 60_000);
    await sh(['kill', readerPid]);
    readerPid = '';
    const log = await reads();
    assert.deepEqual(log.filter((r) => !r.ok), [], 'no read failed');
    const during = log.filter((r) => r.t > cutAt && r.t < restoredAt);
    assert.ok(during.length >= 5, `reads went on while the path was down (${during.length})`);
    let stall = 0;
    for (let i = 1; i < log.length; i++) stall = Math.max(stall, log[i]!.t - log[i - 1]!.t);
    const typical = log.map((r, i) => (i ? r.t - log[i - 1]!.t : 0)).sort((a, b) => a - b)[Math.floor(log.length / 2)]!;
    console.log(
      `path cut: failed after ${((failedAt - cutAt) / 1000).toFixed(1)} s; longest read stall ${(stall / 1000).toFixed(1)} s (a read takes ${typical} ms here); ` +
        `${log.length} reads, none failed; restored: 2 active paths after ${((backAt - restoredAt) / 1000).toFixed(1)} s`,
    );
    assert.ok(stall < 60_000, `reads stalled ${stall} ms`);
  });

  test('unexport leaves no map, session, node record, wwids entry, drop-in or target', async () => {
    assert.ok(x, 'exported');
    const started = Date.now();
    await labCliOk(lab, ['unexport', NAME, '--storage', lab.uri, '--host-records', RECORDS], env);
    console.log(`unexport took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    assert.equal((await sh(['multipath', '-ll', x.wwid])).trim(), '');
    assert.doesNotMatch(await out(['iscsiadm', '-m', 'session']), new RegExp(x.target.replace(/\./g, '\\.')));
    assert.doesNotMatch(await out(['iscsiadm', '-m', 'node']), new RegExp(x.target.replace(/\./g, '\\.')));
    assert.notEqual((await lab.runner.run(['test', '-e', `/etc/multipath/conf.d/virt-iscsi-${NAME}.conf`])).exitCode, 0);
    // `multipath -w` comments the line out ("#/WWID/"): no longer a valid WWID.
    assert.doesNotMatch(await out(['cat', '/etc/multipath/wwids']), new RegExp(`^/${x.wwid}/$`, 'm'));
    assert.doesNotMatch(await out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']), new RegExp(x.target.replace(/\./g, '\\.')));
    await sh(['udevadm', 'settle']);
    assert.deepEqual(await snapshot(), before0);
  });
});
