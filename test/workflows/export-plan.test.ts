// plan-only: modes pool and block need the hypervisor's open-iscsi to log in, and this
// machine's kernel has no iscsi_tcp (test/lab runs them in a real guest). Here the whole
// export is planned under --dry-run: the storage side is this machine (tgt with a control
// port nobody listens on, so the plan starts that tgtd), the hypervisor a host whose
// read-only answers are real captured output (virsh dumpxml/pool-list of a TCG domain,
// open-iscsi 2.1.8's initiatorname, node list and session tree from the lab guest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderSteps } from '../../src/runner/recording.js';
import type { RunResult } from '../../src/runner/types.js';
import { exportImage } from '../../src/workflows/export.js';
import { renderRecord, type ExportRecord, recordPool, recordSecretUsage, asIscsi } from '../../src/workflows/records.js';
import type { ExportOptions } from '../../src/workflows/types.js';
import { unexportImage } from '../../src/workflows/unexport.js';
import { virtXmlValidate, wrapInDomain } from '../helpers/xml-validate.js';
import { DOMAIN, fixture, HV, PlanSession } from './replay.js';

const HOST_INITIATOR = 'iqn.1993-08.org.debian:01:de888379e257';
const NO_RECORDS: Partial<RunResult> = { exitCode: 21, stderr: 'iscsiadm: No records found\n' };

function unusedControlPort(): number {
  for (;;) {
    const n = 20000 + Math.floor(Math.random() * 10000);
    if (!existsSync(`/run/tgtd/socket.${n}`)) return n;
  }
}

/** The first file body (heredoc) in the plan that starts with `start`. */
function document(plan: string, start: string): string {
  const body = [...plan.matchAll(/<<'(EOF_*)'\n([\s\S]*?)\n\1(?:\n|$)/g)].map((m) => m[2]!).find((b) => b.startsWith(start));
  assert.ok(body, `the plan writes a file starting with ${start}`);
  return body;
}

test('plan-only: [no iscsi_tcp here] pool and block modes, planned whole under --dry-run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-xp-'));
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
    portal: '127.0.0.1:3260',
    confDir: join(dir, 'conf'),
    hostRecordDir: join(dir, 'host-records'),
    stateDir: join(dir, 'state'),
    now: new Date(Date.UTC(2026, 10, 5)),
    ...extra,
  });

  await t.test('pool (chosen by itself: iscsiadm and iscsi_tcp there): iscsi pool, host login, serial check, block disk', async () => {
    const s = new PlanSession([
      ['iscsiadm --mode node', NO_RECORDS],
      ['iscsiadm --mode session -P 3', { exitCode: 21, stderr: 'iscsiadm: No active sessions.\n' }],
    ]);
    let titles: string[] = [];
    const r = await exportImage(s, options({ replacementTimeout: 30, onPlan: (steps) => void (titles = steps.map((x) => x.title)) }));
    const plan = renderSteps(s.recorded);
    const x = asIscsi(r.record);
    // libvirt's pool-start writes the node record from iscsid.conf and logs in: the settings go on the record after it.
    assert.deepEqual(x.session, { replacementTimeout: 30, noopOutInterval: 5, noopOutTimeout: 5 }, 'given, and the single-path defaults');
    const update = (k: string, v: number): string => `iscsiadm --mode node --targetname ${x.target} --portal 127.0.0.1:3260 --interface default --op update --name '${k}' --value ${v}`;
    for (const [k, v] of [['node.session.timeo.replacement_timeout', 30], ['node.conn[0].timeo.noop_out_interval', 5], ['node.conn[0].timeo.noop_out_timeout', 5]] as const) {
      const line = update(k, v).replace(`'${k}'`, k.includes('[') ? `'${k}'` : k);
      assert.ok(plan.includes(line), `the plan has ${line}\n${plan}`);
      assert.ok(plan.indexOf('pool-start') < plan.indexOf(line), 'after the pool logged in');
    }
    const live = titles.findIndex((x) => /^set the live session's replacement timeout of .* to 30 s \(sysfs recovery_tmo\)$/.test(x));
    assert.ok(live > titles.findIndex((x) => x.startsWith('start pool')) && live < titles.findIndex((x) => x.startsWith('give domain')), titles.join('\n'));
    assert.deepEqual([x.mode, x.hypervisors[0]!.initiator, recordPool(x)], ['pool', HOST_INITIATOR, 'virt-iscsi-data'], "the host's own initiator name");
    assert.match(x.target, /^iqn\.2026-11\.[a-z0-9.-]+:data$/);
    // The storage side: the private tgtd is started, the ACL is that one initiator name.
    assert.match(plan, new RegExp(`^tgtd --control-port ${controlPort} --iscsi portal=127\\.0\\.0\\.1:3260 --pid-file /run/tgtd-${controlPort}\\.pid$`, 'm'));
    assert.match(plan, new RegExp(`--op bind --tid 1 --initiator-name ${HOST_INITIATOR.replace(/\./g, '\\.')}$`, 'm'));
    assert.doesNotMatch(plan, /--initiator-address ALL/);
    const pool = document(plan, '<pool ');
    assert.match(pool, /<pool type="iscsi">/);
    assert.match(pool, /<device path="iqn\.2026-11\.[a-z0-9.-]+:data"\/>/);
    assert.match(pool, /<path>\/dev\/disk\/by-path<\/path>/);
    assert.doesNotMatch(pool, /<initiator>/, 'an iscsi pool logs in as the host (pitfall 12)');
    virtXmlValidate(pool, 'storagepool');
    const dev = `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${x.target}-lun-1`;
    for (const line of [`# on ${HV}`, 'virsh -c qemu:///system pool-start --pool virt-iscsi-data', 'virsh -c qemu:///system pool-autostart --pool virt-iscsi-data', `lsblk --nodeps --noheadings --output SERIAL ${dev}`]) {
      assert.ok(plan.includes(line), `the plan has ${line}`);
    }
    const disk = document(plan, '<disk ');
    assert.match(disk, new RegExp(`<disk type="block" device="disk">[\\s\\S]*<source dev="${dev.replace(/\./g, '\\.')}"/>[\\s\\S]*<target dev="sda" bus="scsi"/>`));
    assert.match(disk, new RegExp(`<serial>${x.serial}</serial>[\\s\\S]*<alias name="ua-virt-iscsi-data"/>`));
    virtXmlValidate(wrapInDomain(disk), 'domain');
    assert.ok(plan.indexOf('pool-start') < plan.indexOf('lsblk') && plan.indexOf('lsblk') < plan.indexOf('attach-device'), 'the serial is checked before the VM gets the disk');
    assert.ok(!existsSync(join(dir, 'state')) && !existsSync(join(dir, 'host-records')), 'a dry run writes no record');
  });

  await t.test('block with CHAP and an ISO: node record, CHAP in the record file (masked), login, device, media into the empty IDE drive', async () => {
    const iso = join(dir, 'boot.iso');
    writeFileSync(iso, '');
    truncateSync(iso, 1024 * 1024);
    const s = new PlanSession([
      ['iscsiadm --mode node', NO_RECORDS],
      ['iscsiadm --mode session -P 3', { exitCode: 21, stderr: 'iscsiadm: No active sessions.\n' }],
      ['test -b /dev/disk/by-path/', { exitCode: 1 }],
      ['test -d /etc/iscsi/nodes/', { exitCode: 1 }],
      ['test -d /var/lib/iscsi/nodes/', { exitCode: 1 }],
      ['test -d /etc/iscsi/nodes', { exitCode: 0 }],
    ]);
    const r = await exportImage(s, options({ image: iso, mode: 'block', chap: true, noopOutInterval: 10, noopOutTimeout: 15 }));
    const plan = renderSteps(s.recorded);
    const x = asIscsi(r.record);
    const portal = '127.0.0.1:3260';
    const dev = `/dev/disk/by-path/ip-${portal}-iscsi-${x.target}-lun-1`;
    assert.deepEqual(x.session, { replacementTimeout: 120, noopOutInterval: 10, noopOutTimeout: 15 });
    assert.deepEqual([x.mode, x.cdrom, x.readonly, x.chapUser, recordSecretUsage(x), recordPool(x)], ['block', true, true, 'virt-iscsi-boot', undefined, undefined]);
    const order = [
      `iscsiadm --mode node --targetname ${x.target} --portal ${portal},1 --interface default --op new`,
      // On the node record before the login, which takes them.
      `iscsiadm --mode node --targetname ${x.target} --portal ${portal} --interface default --op update --name node.session.timeo.replacement_timeout --value 120`,
      `iscsiadm --mode node --targetname ${x.target} --portal ${portal} --interface default --op update --name 'node.conn[0].timeo.noop_out_interval' --value 10`,
      `iscsiadm --mode node --targetname ${x.target} --portal ${portal} --interface default --op update --name 'node.conn[0].timeo.noop_out_timeout' --value 15`,
      `install -m 0600 /dev/stdin /etc/iscsi/nodes/${x.target}/127.0.0.1,3260,1/default <<'EOF'\n********\nEOF`,
      `iscsiadm --mode node --targetname ${x.target} --portal ${portal} --interface default --login`,
      'udevadm settle',
      `test -e ${dev}`,
      `lsblk --nodeps --noheadings --output SERIAL ${dev}`,
      `virsh -c qemu:///system change-media --domain ${DOMAIN} --path hdc --source ${dev} --insert --block --live --config`,
    ];
    let at = 0;
    for (const line of order) {
      const i = plan.indexOf(line, at);
      assert.ok(i >= at, `the plan has, in order: ${line}\n${plan}`);
      at = i;
    }
    assert.deepEqual(x.hypervisors[0]!.attachment && [x.hypervisors[0]!.attachment.dev, x.hypervisors[0]!.attachment.media], ['hdc', true], 'the existing empty drive gets the media');
    assert.doesNotMatch(plan, /secret-define/, 'block mode needs no libvirt secret');
    assert.match(plan, /--op new --user virt-iscsi-boot --password '?\*{8}'?$/m, "tgtadm's password is masked in the plan");
    assert.doesNotMatch(plan, /--password (?!'?\*{8})/);
  });

  await t.test('unexport of a block export: detach, logout, node record, target, records, in that order', async () => {
    // A record as export writes it, for the lab target whose session the fixtures hold.
    const stateDir = join(dir, 'unexport-state');
    mkdirSync(stateDir);
    const record: ExportRecord = {
      version: 2,
      name: 'fixture-tgt',
      image,
      sizeBytes: 16 * 1024 * 1024,
      cdrom: false,
      readonly: false,
      storage: 'local',
      backend: 'tgt',
      backendOptions: { controlPort, confDir: join(dir, 'conf') },
      target: 'iqn.2024-01.test.lab:fixture-tgt',
      lun: 1,
      serial: 'VI000000000001',
      portal: '127.0.0.1:3260',
      mode: 'block',
      hypervisors: [{ uri: HV, connect: 'qemu:///system', initiator: HOST_INITIATOR }],
      vm: DOMAIN,
      persist: true,
      createdAt: '2026-11-05T00:00:00.000Z',
    };
    writeFileSync(join(stateDir, 'fixture-tgt.json'), renderRecord(record));
    const s = new PlanSession([
      ['iscsiadm --mode session -P 3', { stdout: fixture('lab/session-p3-tgt-and-lio-ipv6.txt') }],
      ['iscsiadm --mode node', { stdout: fixture('lab/node-list.txt') }],
    ]);
    const u = await unexportImage(s, { name: 'fixture-tgt', stateDir, hostRecordDir: join(dir, 'host-records') });
    const plan = renderSteps(s.recorded);
    assert.equal(u.found, true);
    const order = [
      'iscsiadm --mode node --targetname iqn.2024-01.test.lab:fixture-tgt --portal 127.0.0.1:3260 --interface default --logout',
      'iscsiadm --mode node --targetname iqn.2024-01.test.lab:fixture-tgt --portal 127.0.0.1:3260 --interface default --op delete',
      `rm -f ${join(stateDir, 'fixture-tgt.json')}`,
    ];
    let at = 0;
    for (const line of order) {
      const i = plan.indexOf(line, at);
      assert.ok(i >= at, `the plan has, in order: ${line}\n${plan}`);
      at = i;
    }
    assert.doesNotMatch(plan, /detach-device|change-media/, 'the domain does not hold the disk: nothing to detach');
    assert.ok(existsSync(join(stateDir, 'fixture-tgt.json')), 'a dry run removes nothing');
  });
});
