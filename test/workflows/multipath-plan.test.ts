// plan-only: [no iscsi_tcp or dm-multipath here] mode multipath, planned whole under
// --dry-run (test/lab/multipath-export.lab.ts runs it for real in the lab guest). The
// storage side is this machine (tgt with a control port nobody listens on; `ip -o addr` is
// asked for real: 127.0.0.1/8 on lo makes 127.0.0.2 an address of it), the hypervisor a
// host whose read-only answers are real captured output (virsh of a TCG domain, open-iscsi
// 2.1.8, multipath-tools 0.9.4 from the lab guest). Every bad input is refused in one line
// before the plan starts, and the CLI refuses the ones it can tell alone with --dry-run --json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planRecorder } from '../../src/cli/plan-document.js';
import { renderSteps } from '../../src/runner/recording.js';
import type { RunResult } from '../../src/runner/types.js';
import { lunScsiId, lunWwid } from '../../src/storage/wwid.js';
import { exportImage } from '../../src/workflows/export.js';
import { renderRecord, parseRecord, type ExportRecord } from '../../src/workflows/records.js';
import type { ExportOptions } from '../../src/workflows/types.js';
import { unexportImage } from '../../src/workflows/unexport.js';
import { cli } from '../helpers/cli.js';
import { DOMAIN, fixture, HOST_ANSWERS, HV, PlanSession, type Answers } from './replay.js';

const NO_RECORDS: Partial<RunResult> = { exitCode: 21, stderr: 'iscsiadm: No records found\n' };
const NO_SESSIONS: Partial<RunResult> = { exitCode: 21, stderr: 'iscsiadm: No active sessions.\n' };
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';

/** Besides every plan's: no node record, no session, multipathd not running. */
const MULTIPATH_BASE: Answers = [
  ...HOST_ANSWERS,
  ['iscsiadm --mode node', NO_RECORDS],
  ['iscsiadm --mode session -P 3', NO_SESSIONS],
  ['systemctl is-active --quiet multipathd', { exitCode: 3 }],
];
const planSession = (answers: Answers, files: Record<string, string> = {}): PlanSession => new PlanSession(answers, files, MULTIPATH_BASE);

function unusedControlPort(): number {
  for (;;) {
    const n = 20000 + Math.floor(Math.random() * 10000);
    if (!existsSync(`/run/tgtd/socket.${n}`)) return n;
  }
}

/** The lines appear in the plan in this order. */
function inOrder(plan: string, lines: string[]): void {
  let at = 0;
  for (const line of lines) {
    const i = plan.indexOf(line, at);
    assert.ok(i >= at, `the plan has, in order: ${line}\n${plan}`);
    at = i;
  }
}

test('plan-only: [no iscsi_tcp or dm-multipath here] mode multipath, planned whole under --dry-run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-mp-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'data.img');
  writeFileSync(image, '');
  truncateSync(image, 16 * 1024 * 1024);
  const controlPort = unusedControlPort();
  const options = (extra: Partial<ExportOptions>): ExportOptions => ({
    image,
    vm: DOMAIN,
    hypervisor: HV,
    controlPort,
    portals: [P1, P2],
    confDir: join(dir, 'conf'),
    hostRecordDir: join(dir, 'host-records'),
    stateDir: join(dir, 'state'),
    now: new Date(Date.UTC(2026, 10, 5)),
    ...extra,
  });
  const withMultipath: Array<[string, Partial<RunResult>]> = [['multipath -h', { exitCode: 0, stdout: 'multipath-tools v0.9.4 (12/19, 2022)\n' }]];

  await t.test('two portals choose multipath: a login per portal (replacement_timeout 5 first), drop-in, wwids, map, the map attached as a block disk', async () => {
    const s = planSession(withMultipath);
    const rec = planRecorder(s.recorded);
    const r = await exportImage(s, options({ onEvent: rec.event }));
    const plan = renderSteps(s.recorded);
    const x = r.record as Extract<ExportRecord, { mode: 'multipath' }>;
    assert.equal(x.mode, 'multipath');
    assert.deepEqual([x.portals, x.minPaths, x.portal], [[P1, P2], 2, P1], 'min-paths defaults to every portal');
    assert.deepEqual(x.session, { replacementTimeout: 5, noopOutInterval: 5, noopOutTimeout: 5 }, "multipath's session defaults");
    assert.equal(x.wwid, lunWwid('tgt', x.serial));
    assert.match(x.wwid, /^36[0]{7}[0-9a-f]{24}$/, "tgt's WWID: 36 and the 24 hex digits of scsi_id, zero-padded to 31");
    assert.equal(x.wwid, `36${lunScsiId(x.serial).padStart(31, '0')}`);
    // The storage side: the LUN gets the scsi_id the WWID comes from.
    assert.match(plan, new RegExp(`--op update --tid 1 --lun 1 --params scsi_sn=${x.serial},scsi_id=${lunScsiId(x.serial)}$`, 'm'));
    const node = (p: string, rest: string): string => `iscsiadm --mode node --targetname ${x.target} --portal ${p} --interface default ${rest}`;
    const dropIn = '/etc/multipath/conf.d/virt-iscsi-data.conf';
    const map = `/dev/disk/by-id/dm-uuid-mpath-${x.wwid}`;
    inOrder(plan, [
      node(`${P1},1`, '--op new'),
      node(P1, '--op update --name node.session.timeo.replacement_timeout --value 5'),
      node(P1, '--login'),
      `lsblk --nodeps --noheadings --output SERIAL /dev/disk/by-path/ip-${P1}-iscsi-${x.target}-lun-1`,
      node(`${P2},1`, '--op new'),
      node(P2, '--op update --name node.session.timeo.replacement_timeout --value 5'),
      node(P2, '--login'),
      `lsblk --nodeps --noheadings --output SERIAL /dev/disk/by-path/ip-${P2}-iscsi-${x.target}-lun-1`,
      'mkdir -p /etc/multipath/conf.d',
      `${dropIn}`,
      `multipath -a ${x.wwid}`,
      'systemctl start multipathd',
      `multipath -ll ${x.wwid}`,
      'attach-device',
    ]);
    const doc = rec.document();
    const ids = doc.steps.map((st) => st.id);
    for (const id of ['node', 'node-settings', 'login', 'device', 'paths', 'multipath-conf', 'multipath-wwid', 'multipath-map', 'attach', 'local-record']) assert.ok(ids.includes(id), `step ${id} in ${ids.join(' ')}`);
    assert.equal(ids.filter((id) => id === 'login').length, 2, 'one login per portal');
    const conf = doc.steps.find((st) => st.id === 'multipath-conf')!.documents[0]!;
    assert.equal(conf.path, dropIn);
    assert.match(conf.content, /^# virt-iscsi: export data /, 'the header sweep looks for');
    assert.match(conf.content, new RegExp(`^\\t\\twwid ${x.wwid}$`, 'm'));
    const disk = doc.steps.find((st) => st.id === 'attach')!.documents.find((d) => d.content.startsWith('<disk '))!.content;
    assert.match(disk, new RegExp(`<disk type="block" device="disk">[\\s\\S]*<source dev="${map}"/>`));
    assert.ok(!existsSync(join(dir, 'state')), 'a dry run writes no record');
    // The record as export writes it reads back the same.
    assert.deepEqual(parseRecord('x.json', renderRecord(r.record)), r.record);
  });

  await t.test('--min-paths 1 and --replacement-timeout 10: kept in the record and on each node record', async () => {
    const s = planSession(withMultipath);
    const r = await exportImage(s, options({ minPaths: 1, replacementTimeout: 10, mode: 'multipath' }));
    const x = r.record as Extract<ExportRecord, { mode: 'multipath' }>;
    assert.deepEqual([x.minPaths, x.session?.replacementTimeout], [1, 10]);
    const plan = renderSteps(s.recorded);
    for (const p of [P1, P2]) assert.ok(plan.includes(`--portal ${p} --interface default --op update --name node.session.timeo.replacement_timeout --value 10`));
  });

  const refused = async (extra: Partial<ExportOptions>, message: RegExp, answers = withMultipath): Promise<void> => {
    const s = planSession(answers);
    let planned = false;
    await assert.rejects(exportImage(s, options({ ...extra, onPlan: () => void (planned = true) })), (e: Error) => {
      assert.match(e.message, message);
      assert.doesNotMatch(e.message, /\n/, 'one line');
      return true;
    });
    assert.equal(planned, false, 'refused before the plan starts');
    assert.deepEqual(s.recorded.filter((x) => x.command !== undefined), [], 'nothing made, nothing planned');
  };

  await t.test('a portal given twice', () => refused({ portals: [P1, '127.0.0.1'] }, /^portal 127\.0\.0\.1:3260 is given twice; give each path's portal once$/));
  await t.test('a portal the storage host does not have (ip -o addr there)', () => refused({ portals: [P1, '198.51.100.7'] }, /^portal 198\.51\.100\.7:3260 is not an address of the storage host local \(it has 127\.0\.0\.1, .*\); give its own addresses$/));
  await t.test('min-paths above the portals', () => refused({ minPaths: 3 }, /^--min-paths 3 is not a number of paths from 1 to the 2 portals given$/));
  await t.test('min-paths below 1', () => refused({ minPaths: 0 }, /^--min-paths 0 is not a number of paths from 1 to the 2 portals given$/));
  await t.test('multipath with one portal', () => refused({ portals: undefined, portal: P1, mode: 'multipath' }, /^mode multipath needs two or more portals \(give --portal once per path\), not only "127\.0\.0\.1:3260"$/));
  await t.test('two portals with another mode', () => refused({ mode: 'block' }, /^2 portals are for mode multipath; mode block dials one portal$/));
  await t.test('a portal by name', () => refused({ portals: [P1, 'localhost'] }, /^portal "localhost": give the storage host's IP address for each multipath path, not a name$/));
  await t.test('a hypervisor without multipath-tools', () =>
    refused({}, /^mode multipath needs multipath-tools \(multipath, multipathd\) on ssh:\/\/root@kvm1\.test, but it is not installed there; install it, or give one --portal$/, [['multipath -h', { exitCode: 127 }]]));
  await t.test('backend iet cannot give each LUN its WWID', () => {
    assert.equal(lunWwid('iet', 'VI0123456789AB'), undefined);
    assert.equal(lunWwid('lio', 'VI3F2A9C01B7D4'), '360014053f2a9c01b7d40000000000000');
  });

  await t.test('unexport: detach, flush, wwids, SCSI disks, logout and node record per portal, drop-in, target, records', async () => {
    const stateDir = join(dir, 'unexport-state');
    mkdirSync(stateDir);
    // The lab's two-portal target, whose sessions the fixtures hold.
    const serial = 'fixturemp01';
    const record: ExportRecord = {
      version: 2,
      name: 'fixture-mp',
      image,
      sizeBytes: 64 * 1024 * 1024,
      cdrom: false,
      readonly: false,
      storage: 'local',
      backend: 'tgt',
      backendOptions: { controlPort, confDir: join(dir, 'conf') },
      target: 'iqn.2024-01.test.lab:fixture-mp',
      lun: 1,
      serial,
      portal: P1,
      session: { replacementTimeout: 5, noopOutInterval: 5, noopOutTimeout: 5 },
      mode: 'multipath',
      portals: [P1, P2],
      minPaths: 2,
      wwid: lunWwid('tgt', serial)!,
      hypervisors: [{ uri: HV, connect: 'qemu:///system', initiator: 'iqn.1993-08.org.debian:01:de888379e257' }],
      vm: DOMAIN,
      persist: true,
      createdAt: '2026-11-05T00:00:00.000Z',
    };
    writeFileSync(join(stateDir, 'fixture-mp.json'), renderRecord(record));
    const ll = fixture('lab/multipath/mp-multipath-ll.txt').replaceAll('360000000f1c7a0e5b2d94c38a6e1d0b7', record.wwid);
    const s = planSession(
      [
        [`multipath -ll ${record.wwid}`, { stdout: ll }],
        ['iscsiadm --mode session -P 3', { stdout: fixture('lab/multipath/mp-session-p3-two-portals.txt') }],
        ['iscsiadm --mode node', { stdout: fixture('lab/multipath/mp-node-list.txt') }],
      ],
      {
        '/etc/multipath/wwids': fixture('lab/multipath/mp-wwids-file.txt').replaceAll('360000000f1c7a0e5b2d94c38a6e1d0b7', record.wwid),
        '/etc/multipath/conf.d/virt-iscsi-fixture-mp.conf': '# virt-iscsi: export fixture-mp\n',
      },
    );
    const u = await unexportImage(s, { name: 'fixture-mp', stateDir, hostRecordDir: join(dir, 'host-records') });
    assert.equal(u.found, true);
    const plan = renderSteps(s.recorded);
    const node = (p: string, rest: string): string => `iscsiadm --mode node --targetname iqn.2024-01.test.lab:fixture-mp --portal ${p} --interface default ${rest}`;
    inOrder(plan, [
      `multipath -f ${record.wwid}`,
      `multipath -w ${record.wwid}`,
      'tee /sys/block/sda/device/delete',
      'tee /sys/block/sdb/device/delete',
      node(P1, '--logout'),
      node(P1, '--op delete'),
      node(P2, '--logout'),
      node(P2, '--op delete'),
      'rm -f /etc/multipath/conf.d/virt-iscsi-fixture-mp.conf',
      `rm -f ${join(stateDir, 'fixture-mp.json')}`,
    ]);
    assert.ok(existsSync(join(stateDir, 'fixture-mp.json')), 'a dry run removes nothing');
  });
});

test('CLI: bad multipath flags are refused in one line, exit 1, nothing planned (--dry-run --json)', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--portal', P1, '--portal', P1], /portal 127\.0\.0\.1:3260 is given twice/],
    [['--portal', P1, '--portal', P2, '--min-paths', '3'], /--min-paths 3 is not a number of paths from 1 to the 2 portals given/],
    [['--portal', P1, '--portal', P2, '--min-paths', '0'], /--min-paths 0 is not a number of paths from 1 to the 2 portals given/],
    [['--portal', P1, '--mode', 'multipath'], /mode multipath needs two or more portals/],
    [['--portal', P1, '--min-paths', '1'], /--min-paths 1 is for mode multipath: give two or more --portal/],
  ];
  for (const [flags, message] of cases) {
    const r = await cli('export', '/nonexistent/x.img', '--vm', 'nodom', ...flags, '--dry-run', '--json');
    assert.equal(r.status, 1, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(r.stdout, '', 'no plan printed');
  }
});
