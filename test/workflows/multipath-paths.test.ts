// min-paths when a portal does not answer: the hypervisor's open-iscsi cannot log in on
// this machine (no iscsi_tcp), so iscsiadm, multipath and the kernel's files answer with
// the lab guest's real output (test/fixtures/lab/multipath; the discovery timeout as
// iscsiadm 2.1.8 printed it for a portal tgtd did not listen on). The lab runs it all for
// real (test/lab/multipath-export.lab.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Virsh } from '../../src/hypervisor/virsh.js';
import { runPlan } from '../../src/plan/plan.js';
import { lunWwid } from '../../src/storage/wwid.js';
import { MODES } from '../../src/workflows/modes.js';
import type { ExportRecord } from '../../src/workflows/records.js';
import type { SourceSlot } from '../../src/workflows/visibility.js';
import { fixture, ReplayRunner } from '../storage/lio-replay-runner.js';

const T = 'iqn.2024-01.test.lab:fixture-mp';
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';
const FIXTURE_WWID = '360000000f1c7a0e5b2d94c38a6e1d0b7';
const SERIAL = 'fixturemp01';

function record(minPaths: number): ExportRecord {
  return {
    version: 2,
    name: 'fixture-mp',
    image: '/srv/mp.img',
    sizeBytes: 64 * 2 ** 20,
    cdrom: false,
    readonly: false,
    storage: 'local',
    backend: 'tgt',
    backendOptions: {},
    target: T,
    lun: 1,
    serial: SERIAL,
    portal: P1,
    mode: 'multipath',
    portals: [P1, P2],
    minPaths,
    wwid: lunWwid('tgt', SERIAL)!,
    hypervisors: [{ uri: 'ssh://root@kvm1.test', connect: 'qemu:///system', initiator: 'iqn.1993-08.org.debian:01:4373891c537e' }],
    vm: 'db1',
    persist: true,
    createdAt: '2026-11-05T00:00:00.000Z',
  };
}

/** The guest logged in through P1 only (its session block of the two-portal tree); P2's discovery times out. */
function host(wwid: string): ReplayRunner {
  const tree = fixture('lab/multipath/mp-session-p3-two-portals.txt').split('\tCurrent Portal: 127.0.0.2')[0]!;
  const ll = fixture('lab/multipath/mp-multipath-ll-one-failed.txt').replaceAll(FIXTURE_WWID, wwid);
  return new ReplayRunner(
    [
      { match: `iscsiadm --mode discovery --type sendtargets --portal ${P1}`, replies: [{ stdout: `${P1},1 ${T}\n` }] },
      {
        match: `iscsiadm --mode discovery --type sendtargets --portal ${P2}`,
        replies: [{ exitCode: 11, stderr: 'iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out\n' }],
      },
      { match: (a) => a.join(' ') === 'iscsiadm --mode node', replies: [{ exitCode: 21, stderr: 'iscsiadm: No records found\n' }] },
      { match: 'iscsiadm --mode session -P 3', replies: [{ stdout: tree }] },
      { match: 'lsblk --nodeps --noheadings --output SERIAL', replies: [{ stdout: `${SERIAL}\n` }] },
      { match: `multipath -ll ${wwid}`, replies: [{ stdout: ll }] },
      { match: 'blockdev --getsize64', replies: [{ stdout: `${64 * 2 ** 20}\n` }] },
    ],
    new Map([
      ['/sys/block/sda/device/wwid', `naa.${wwid.slice(1)}\n`],
      ['/sys/block/sdb/device/wwid', `naa.${wwid.slice(1)}\n`],
    ]),
    'ssh://root@kvm1.test',
  );
}

function steps(r: ExportRecord, runner: ReplayRunner, slot: SourceSlot) {
  return MODES.multipath.visible({ record: r, virsh: new Virsh(runner, 'qemu:///system'), portal: { host: '127.0.0.1', port: 3260 }, initiator: r.hypervisors[0]!.initiator, knownPool: null, wait: { timeoutMs: 5_000 }, slot });
}

test('[no iscsi_tcp here] --min-paths 1: a portal that does not answer is left out, the export goes on with the other path', async () => {
  const r = record(1);
  const runner = host((r as { wwid: string }).wwid);
  const slot: SourceSlot = {};
  await runPlan(steps(r, runner, slot));
  assert.deepEqual(slot.source, { type: 'block', dev: `/dev/disk/by-id/dm-uuid-mpath-${(r as { wwid: string }).wwid}` });
  assert.ok(runner.lines().includes(`iscsiadm --mode node --targetname ${T} --portal ${P1},1 --interface default --op new`));
  assert.ok(!runner.lines().some((l) => l.includes(`--portal ${P2}`) && l.includes('--op new')), 'no node record for the portal that did not answer');
  assert.ok(runner.lines().includes(`multipath -a ${(r as { wwid: string }).wwid}`));
  assert.equal(runner.writes[0]!.path, '/etc/multipath/conf.d/virt-iscsi-fixture-mp.conf');
});

test('[no iscsi_tcp here] --min-paths 2 (all): the portal that does not answer is named in one line, and what was made is undone', async () => {
  const r = record(2);
  const runner = host((r as { wwid: string }).wwid);
  await assert.rejects(runPlan(steps(r, runner, {})), (e: Error) => {
    assert.match(e.message, /^portal 127\.0\.0\.2:3260: iscsiadm --mode discovery --type sendtargets --portal 127\.0\.0\.2:3260 --op nonpersistent failed on ssh:\/\/root@kvm1\.test \(exit 11\): iscsiadm: Could not perform SendTargets discovery: iSCSI PDU timed out/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  // P1's node record, made by this run, is deleted again; nothing of multipath was made.
  const lines = runner.lines();
  assert.ok(lines.indexOf(`iscsiadm --mode node --targetname ${T} --portal ${P1} --interface default --op delete`) > lines.indexOf(`iscsiadm --mode node --targetname ${T} --portal ${P1},1 --interface default --op new`));
  assert.ok(!lines.some((l) => l.startsWith('multipath')), lines.join('\n'));
  assert.deepEqual(runner.writes, []);
});
