// The main job for real: `virt-iscsi export IMAGE --vm VM` in pool and block mode, with a
// tgt and a LIO target, and `unexport` leaving the guest exactly as it was. The guest is
// both storage host and hypervisor, reached as users reach hosts (--storage/--hypervisor
// ssh://..., SshRunner); the CLI runs on this machine, whose local records go to a temp
// XDG_STATE_HOME. The guest is read with its own tools: iscsiadm, virsh, tgtadm,
// targetcli, lsblk, sg_inq, blkid.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ValidationError } from '../../src/errors.js';
import { Session } from '../../src/cli/session.js';
import type { IscsiExportRecord } from '../../src/workflows/records.js';
import { exportImage } from '../../src/workflows/export.js';
import { checkDeviceSerial as checkSerial } from '../../src/hypervisor/host.js';
import { labCli, labCliOk, labDomain, removeDomain, unique, useLab, type Lab } from './lab.js';
import { recordPool, recordSecretUsage } from '../../src/workflows/records.js';

const id = unique();
const VM = `lab-xvm-${id}`;
/** Shut off, and without a SCSI controller: the export adds one to its definition. */
const BARE_VM = `lab-xbare-${id}`;
const DIR = `/var/lib/lab-export-${id}`;
const RECORDS = `${DIR}/records`;
const MiB = 2 ** 20;
const LIO_PORTAL = '127.0.0.1:3261'; // tgt has 127.0.0.1:3260
const SAVECONFIG = '/etc/rtslib-fb-target/saveconfig.json';

type ExportJson = IscsiExportRecord & { changed: boolean; applied: number; undo: string };

describe('export and unexport in the lab guest (storage host and hypervisor), through the CLI over SSH', () => {
  let lab: Lab;
  let hosts: string[];
  let state: string;
  let env: Record<string, string>;
  let startedTgt = false;

  /** What the guest holds, as its own tools print it: compared before an export and after its unexport. */
  async function snapshot(): Promise<Record<string, string>> {
    const out = async (argv: string[]): Promise<string> => {
      const r = await lab.runner.run(argv);
      return `${r.exitCode} ${r.stdout}${r.stderr}`;
    };
    const tgtd = (await lab.runner.run(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'sys'])).exitCode === 0;
    // One SSH connection, one channel per command: all at once (the guest is slow under TCG).
    const [saved, ...texts] = await Promise.all([
      lab.runner.readFile(SAVECONFIG),
      out(['iscsiadm', '-m', 'session']),
      out(['iscsiadm', '-m', 'node']),
      out(['iscsiadm', '-m', 'iface']),
      out(['virsh', 'pool-list', '--all']),
      out(['virsh', 'secret-list']),
      out(['virsh', 'dumpxml', '--inactive', VM]),
      out(['virsh', 'dumpxml', '--inactive', BARE_VM]),
      // A tgtd that is not running serves no target: the same as one serving none.
      tgtd ? out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']) : '0 ',
      tgtd ? out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'account']) : '0 ',
      out(['ls', '-A', '/etc/tgt/conf.d']),
      out(['targetcli', 'ls', '/']),
      out(['ls', '/dev/disk/by-path']),
      out(['ls', '-A', RECORDS]),
    ]);
    const names = ['sessions', 'nodes', 'ifaces', 'pools', 'secrets', 'vm', 'bareVm', 'tgtTargets', 'tgtAccounts', 'tgtConf', 'lio', 'byPath', 'records'];
    // No saveconfig.json and one saving nothing hold the same: no target comes back at boot.
    const { storage_objects = [], targets = [] } = saved === undefined ? {} : (JSON.parse(saved) as { storage_objects?: unknown[]; targets?: unknown[] });
    return { ...Object.fromEntries(names.map((n, i) => [n, texts[i]!])), saveconfig: JSON.stringify({ storage_objects, targets }) };
  }

  const exportIt = async (args: string[]): Promise<ExportJson> => JSON.parse(await labCliOk(lab, ['export', ...args, ...hosts, '--host-records', RECORDS, '--json'], env)) as ExportJson;
  const unexportIt = async (name: string): Promise<void> => void (await labCliOk(lab, ['unexport', name, '--host-records', RECORDS], env));
  const virsh = (...args: string[]): Promise<string> => lab.sh(['virsh', ...args]);
  /** The domain's disk at `dev` as `virsh domblklist --details` lists it: [type, device, target, source]. */
  const blkRow = async (vm: string, dev: string, inactive = false): Promise<string[] | undefined> =>
    (await virsh('domblklist', '--details', ...(inactive ? ['--inactive'] : []), vm))
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((c) => c[2] === dev);
  const diskXml = async (vm: string, dev: string, inactive = false): Promise<string> =>
    (await virsh('dumpxml', ...(inactive ? ['--inactive'] : []), vm)).split('<disk ').find((d) => d.includes(`<target dev='${dev}'`))?.split('</disk>')[0] ?? '';

  before(async () => {
    lab = await useLab();
    hosts = ['--storage', lab.uri, '--hypervisor', lab.uri];
    state = mkdtempSync(join(tmpdir(), 'lab-export-'));
    env = { XDG_STATE_HOME: state };
    await lab.sh(['mkdir', '-p', DIR, RECORDS]);
    await labDomain(lab, VM);
    await labDomain(lab, BARE_VM, { scsi: false, start: false });
    // With no --backend the export takes the first target running (tgt, LIO, IET): tgtd
    // runs, as on a tgt storage host, so that is tgt even when an earlier look loaded LIO.
    startedTgt = (await lab.runner.run(['systemctl', 'is-active', '--quiet', 'tgt'])).exitCode !== 0;
    if (startedTgt) await lab.sh(['systemctl', 'start', 'tgt']);
    // targetcli's first run on a fresh guest warns that it has no prefs file, then writes
    // one: done here, so the first snapshot reads the tree as every later one does.
    await lab.sh(['targetcli', 'ls', '/']);
  });

  after(async () => {
    if (!lab) return;
    try {
      // Whatever a failed test left: unexport by the records still there, then the rest.
      const left = join(state, 'virt-iscsi', 'exports');
      for (const f of (await lab.runner.run(['ls', RECORDS])).stdout.split('\n').filter((x) => x.endsWith('.json'))) {
        await labCli(lab, ['unexport', f.replace(/\.json$/, ''), '--storage', lab.uri, '--host-records', RECORDS, '--force'], env);
      }
      rmSync(left, { recursive: true, force: true });
      await removeDomain(lab, VM);
      await removeDomain(lab, BARE_VM);
      await lab.sh(['rm', '-rf', DIR]);
      if (startedTgt) await lab.sh(['systemctl', 'stop', 'tgt']);
      rmSync(state, { recursive: true, force: true });
    } finally {
      await lab.release();
    }
  });

  test('no --mode picks pool on the guest (open-iscsi logs in there): tgt target, iscsi pool, block disk with the LUN serial; unexport leaves all as it was', async () => {
    const before = await snapshot();
    const image = `${DIR}/data.img`;
    await lab.sh(['truncate', '-s', '24M', image]);
    const x = await exportIt([image, '--vm', VM]);
    const a = x.hypervisors[0]!.attachment!;
    assert.deepEqual([x.mode, x.backend, recordPool(x), x.portal], ['pool', 'tgt', 'virt-iscsi-data', '127.0.0.1:3260']);
    assert.equal(x.hypervisors[0]!.initiator, (await lab.sh(['sed', '-n', 's/^InitiatorName=//p', '/etc/iscsi/initiatorname.iscsi'])).trim(), "the pool logs in as the guest's own initiator");
    const dev = `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${x.target}-lun-1`;
    assert.deepEqual(await blkRow(VM, a.dev), ['block', 'disk', a.dev, dev]);
    assert.deepEqual(await blkRow(VM, a.dev, true), ['block', 'disk', a.dev, dev], 'and in the definition');
    assert.match(await virsh('domblkinfo', VM, a.dev), new RegExp(`Capacity:\\s+${24 * MiB}\\n`));
    assert.match(await virsh('vol-list', 'virt-iscsi-data'), new RegExp(`unit:0:0:1 +${dev.replace(/\./g, '\\.')}`));
    // Pitfall 7 for real: the kernel's disk carries the serial set on the LUN, which the export checked with lsblk.
    assert.equal((await lab.sh(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev])).trim(), x.serial);
    assert.match(await lab.sh(['sg_inq', '--page=0x80', dev]), new RegExp(`Unit serial number: +${x.serial}\\n`));
    await checkSerial(lab.runner, dev, x.serial);
    await assert.rejects(checkSerial(lab.runner, dev, 'VI000000000000'), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.match(e.message, new RegExp(`has serial "${x.serial}", not "VI000000000000" as set on the LUN: a stale device`));
      return true;
    });
    assert.match(await lab.sh(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']), new RegExp(`SCSI SN: ${x.serial}\\n`));

    const again = await exportIt([image, '--vm', VM]);
    assert.deepEqual([again.changed, again.applied], [false, 0], 'a second run changes nothing');
    const [st] = (JSON.parse(await labCliOk(lab, ['status', '--json'], env)) as { exports: Array<{ name: string; healthy: boolean; problems: string[]; dev: string }> }).exports;
    assert.deepEqual([st?.name, st?.healthy, st?.dev], ['data', true, a.dev], st?.problems.join('; '));

    await unexportIt(x.name);
    assert.deepEqual(await snapshot(), before);
    assert.equal((await lab.sh(['stat', '-c', '%s', image])).trim(), String(24 * MiB), 'the image is untouched');
  });

  test('an ISO in block mode with CHAP: node record with CHAP, login, a read-only SCSI cdrom; unexport leaves all as it was', async () => {
    const before = await snapshot();
    const src = mkdtempSync(join(tmpdir(), 'lab-iso-'));
    try {
      mkdirSync(join(src, 'd'));
      writeFileSync(join(src, 'd', 'hello.txt'), `hello from ${id}\n`);
      execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', join(src, 'boot.iso'), '-V', 'LABISO', join(src, 'd')], { stdio: 'ignore' });
      await lab.sh(['dd', `of=${DIR}/boot.iso`, 'status=none'], { stdin: readFileSync(join(src, 'boot.iso')) });
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
    const x = await exportIt([`${DIR}/boot.iso`, '--vm', VM, '--mode', 'block', '--chap']);
    const a = x.hypervisors[0]!.attachment!;
    const dev = `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${x.target}-lun-1`;
    assert.deepEqual([x.mode, x.cdrom, x.readonly, x.chapUser, recordPool(x), recordSecretUsage(x)], ['block', true, true, 'virt-iscsi-boot', undefined, undefined]);
    assert.deepEqual([a.device, a.bus, a.media, a.live, a.config], ['cdrom', 'scsi', false, true, true]);
    assert.deepEqual(await blkRow(VM, a.dev), ['block', 'cdrom', a.dev, dev]);
    assert.match(await diskXml(VM, a.dev), /<readonly\/>/);
    assert.match(await diskXml(VM, a.dev, true), /<readonly\/>/);
    assert.match(await lab.sh(['blkid', dev]), /LABEL="LABISO" TYPE="iso9660"/);
    assert.equal((await lab.sh(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL,TYPE,RO', dev])).trim().split(/\s+/).join(' '), `${x.serial} rom 1`);
    const record = await lab.sh(['iscsiadm', '-m', 'node', '-T', x.target, '-p', '127.0.0.1:3260']);
    assert.match(record, /node\.session\.auth\.authmethod = CHAP\n/);
    assert.match(record, /node\.session\.auth\.username = virt-iscsi-boot\n/);
    const conf = (await lab.sh(['ls', '/etc/tgt/conf.d'])).split('\n').find((f) => f.includes(x.name))!;
    assert.equal((await lab.sh(['stat', '-c', '%a', `/etc/tgt/conf.d/${conf}`])).trim(), '600', 'the CHAP secret is in a root-only file');

    await unexportIt(x.name);
    assert.deepEqual(await snapshot(), before);
  });

  test('LIO backend, pool mode with CHAP on 127.0.0.1:3261 beside tgt: saved target, libvirt secret; unexport leaves all as it was', async () => {
    const before = await snapshot();
    const image = `${DIR}/lio.img`;
    await lab.sh(['truncate', '-s', '20M', image]);
    const x = await exportIt([image, '--vm', VM, '--backend', 'lio', '--portal', LIO_PORTAL, '--mode', 'pool', '--chap']);
    const a = x.hypervisors[0]!.attachment!;
    const dev = `/dev/disk/by-path/ip-127.0.0.1:3261-iscsi-${x.target}-lun-1`;
    assert.deepEqual([x.backend, x.mode, x.portal, recordSecretUsage(x)], ['lio', 'pool', LIO_PORTAL, 'virt-iscsi-lio']);
    assert.deepEqual(await blkRow(VM, a.dev), ['block', 'disk', a.dev, dev]);
    assert.match(await virsh('domblkinfo', VM, a.dev), new RegExp(`Capacity:\\s+${20 * MiB}\\n`));
    assert.equal((await lab.sh(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev])).trim(), x.serial, "LIO's wwn is the unit serial");
    const tree = await lab.sh(['targetcli', 'ls', `/iscsi/${x.target}/tpg1`]);
    assert.match(tree, /0\.0\.0\.0:3261/, 'LIO listens on the portal port');
    assert.match(tree, new RegExp(`${x.hypervisors[0]!.initiator.replace(/\./g, '\\.')} .*\\[1-way auth, Mapped LUNs: 1\\]`));
    const saved = JSON.parse((await lab.runner.readFile(SAVECONFIG))!) as { targets: Array<{ wwn: string }> };
    assert.ok(saved.targets.some((t) => t.wwn === x.target), 'the target is saved');
    assert.match(await virsh('secret-list'), /iscsi +virt-iscsi-lio\b/);
    assert.match(await lab.sh(['iscsiadm', '-m', 'session']), new RegExp(`127\\.0\\.0\\.1:3261,1 ${x.target.replace(/\./g, '\\.')}`));

    await unexportIt(x.name);
    assert.deepEqual(await snapshot(), before);
  });

  test('LIO backend, block mode, to a shut-off domain without a SCSI controller: the controller comes and goes with the disk', async () => {
    const before = await snapshot();
    const image = `${DIR}/bare.img`;
    await lab.sh(['truncate', '-s', '12M', image]);
    const x = await exportIt([image, '--vm', BARE_VM, '--backend', 'lio', '--portal', LIO_PORTAL, '--mode', 'block']);
    const a = x.hypervisors[0]!.attachment!;
    assert.deepEqual([a.live, a.config, a.controller], [false, true, { live: false, config: true }]);
    const dev = `/dev/disk/by-path/ip-127.0.0.1:3261-iscsi-${x.target}-lun-1`;
    assert.deepEqual(await blkRow(BARE_VM, a.dev, true), ['block', 'disk', a.dev, dev]);
    assert.match(await virsh('dumpxml', '--inactive', BARE_VM), /<controller type='scsi' index='0' model='virtio-scsi'>/);
    assert.equal((await lab.sh(['lsblk', '--nodeps', '--noheadings', '--output', 'SERIAL', dev])).trim(), x.serial);

    await unexportIt(x.name);
    assert.deepEqual(await snapshot(), before);
  });

  test('a failure after the pool started (library API, test hook) rolls back to the guest as it was', async () => {
    const before = await snapshot();
    const image = `${DIR}/fail.img`;
    await lab.sh(['truncate', '-s', '8M', image]);
    const session = new Session({ ...lab.ssh });
    try {
      await assert.rejects(
        exportImage(session, {
          image,
          vm: VM,
          storage: lab.uri,
          hypervisor: lab.uri,
          mode: 'pool',
          hostRecordDir: RECORDS,
          stateDir: join(state, 'rollback'),
          hooks: {
            beforeApply: (step) => {
              if (step === 'attach') throw new Error('injected failure before attach');
            },
          },
        }),
        /injected failure before attach/,
      );
    } finally {
      await session.close();
    }
    assert.deepEqual(await snapshot(), before);
  });
});
