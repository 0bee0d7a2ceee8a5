// Live migration through the CLI: one export (mode network, CHAP) served to two real libvirt
// hypervisors, this machine's libvirtd (`local`) and the lab guest's (test/lab/cluster.ts),
// from one storage host (a private tgtd here). The CLI runs on this machine as users run it:
//   virt-iscsi export IMG --vm VM --hypervisor local --hypervisor ssh://root@127.0.0.1:LABPORT
//   virt-iscsi status --json                       (each hypervisor's view, where the VM runs)
//   virt-iscsi migrate VM --to URI --dest-uri ...  (there, and back)
//   virt-iscsi unexport NAME                       (both hypervisors as before, target gone)
// and the refusals around it: a hypervisor that fails midway during export (its domain
// definition cannot be saved) rolls back on both; --remove-hypervisor of the host the VM runs
// on; migrate to a hypervisor the export does not serve; unexport while one hypervisor's
// sshd is stopped (its pieces listed, the rest removed; unexport again finishes). While the
// VM runs in the guest, the export is narrowed to the guest (--remove-hypervisor local) and
// the VM cold-started there: its QEMU logs in as the guest, whose name the ACL then holds alone.
//
// Bytes: a block is written into the image before the export; the VM's own QEMU (HMP
// qemu-io on the disk's device) reads it on each side and writes another in the guest.
// Who logs in is read from tgtd (tgtadm --op show): after each hop, the destination's
// QEMU holds the session, as the destination's initiator.
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/daemon.js';
import { useCluster, type Cluster, type Hypervisor } from './cluster.js';
import { labCli, labCliOk, unique, type CliResult } from './lab.js';

const id = unique();
const VM = `lab-mx-${id}`;
const NAME = `mx-${id}`;
const MiB = 2 ** 20;
const BLOCK_A = { offset: 1 * MiB, byte: 0x3c }; // written into the image before the export
const BLOCK_B = { offset: 3 * MiB, byte: 0xc3 }; // written by the VM in the guest
const DISK_ALIAS = `ua-virt-iscsi-${NAME}`; // the export's user alias: QEMU's device id of the disk

interface Part {
  uri: string;
  initiator: string;
  attachment?: { dev: string; live: boolean; config: boolean };
}
interface ExportDoc {
  name: string;
  target: string;
  hypervisors: Part[];
}
interface HvStatus {
  uri: string;
  initiator: string;
  running: boolean;
  defined: boolean;
  secret: string;
  disk: string;
}
interface StatusDoc {
  exports: Array<{ name: string; runningOn?: string; hypervisors: HvStatus[]; healthy: boolean; problems: string[] }>;
}
interface MigrateDoc {
  relogin: Array<{ export: string; from: string; to: string }>;
  from: string;
  to: string;
  migrateMs: number;
  state: { from: string; to: string };
}

describe('one export, two real hypervisors, live migration through the CLI (mode network, CHAP)', () => {
  const t0 = Date.now();
  let c: Cluster;
  let dir: string;
  let image: string;
  let env: Record<string, string>;
  let storageArgs: string[];
  let records: string;
  const seconds: Record<string, number> = {};
  let before0: { host: Record<string, string>; guest: Record<string, string> };

  const cli = (args: string[]): Promise<CliResult> => labCli(c.lab, args, env);
  const cliOk = (args: string[]): Promise<string> => labCliOk(c.lab, args, env);
  const virsh = (hv: Hypervisor, ...args: string[]): Promise<string> => hv.sh(['virsh', ...args]);
  const domstate = async (hv: Hypervisor): Promise<string> => {
    const r = await hv.runner.run(['virsh', 'domstate', VM, '--reason']);
    return r.exitCode === 0 ? r.stdout.trim() : `exit ${r.exitCode}: ${r.stderr.trim()}`;
  };
  /** What each hypervisor holds that an export could leave: our secrets and pools, the VM's definition. */
  const holdings = async (hv: Hypervisor): Promise<Record<string, string>> => {
    const mine = (text: string): string => text.split('\n').filter((l) => l.includes(id)).join('\n');
    const xml = await hv.runner.run(['virsh', 'dumpxml', '--inactive', VM]);
    return {
      secrets: mine(await virsh(hv, 'secret-list')),
      pools: mine(await virsh(hv, 'pool-list', '--all')),
      domain: xml.exitCode === 0 ? xml.stdout : 'not defined',
      domains: (await virsh(hv, 'list', '--all', '--name')).split('\n').filter((l) => l.includes(id)).join('\n'),
    };
  };
  const targets = (): string => c.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
  /** Initiators logged in to our target, from tgtd. */
  const sessions = (iqn: string): string[] => {
    const block = targets().split(/^Target \d+: /m).find((b) => b.startsWith(`${iqn}\n`)) ?? '';
    return [...block.matchAll(/Initiator: (\S+)/g)].map((m) => m[1]!);
  };
  const aclOf = (iqn: string): string[] => {
    const block = targets().split(/^Target \d+: /m).find((b) => b.startsWith(`${iqn}\n`)) ?? '';
    // initiator names only: tgt also binds an address no initiator has (0.0.0.0/32)
    return [...(/ACL information:\n([\s\S]*)$/.exec(block)?.[1] ?? '').matchAll(/^\s+(iqn\.\S+)$/gm)].map((m) => m[1]!);
  };
  const status = async (): Promise<StatusDoc['exports'][number]> => (JSON.parse(await cliOk(['status', '--json'])) as StatusDoc).exports.find((e) => e.name === NAME)!;

  /** Runs a qemu-io command in the VM's QEMU on `hv` (HMP, on the export's disk); what it printed to the domain log. */
  const qemuIo = async (hv: Hypervisor, command: string): Promise<string> => {
    const log = `/var/log/libvirt/qemu/${VM}.log`;
    const start = Number((await hv.sh(['stat', '-c', '%s', log])).trim());
    const hmp = await virsh(hv, 'qemu-monitor-command', VM, '--hmp', `qemu-io -d ${DISK_ALIAS} "${command}"`);
    assert.equal(hmp.trim(), '', `HMP qemu-io refused "${command}"`);
    let out = '';
    await waitFor(`qemu-io "${command}" in ${log}`, async () => {
      out = await hv.sh(['tail', '-c', `+${start + 1}`, log]);
      return /^(read|wrote) \d+\/\d+ bytes at offset \d+$/m.test(out);
    }, 60_000);
    return out;
  };
  const readBlock = async (hv: Hypervisor, b: { offset: number; byte: number }): Promise<void> => {
    const out = await qemuIo(hv, `read -P 0x${b.byte.toString(16)} ${b.offset} 4096`);
    assert.match(out, new RegExp(`^read 4096/4096 bytes at offset ${b.offset}$`, 'm'));
    assert.doesNotMatch(out, /Pattern verification failed/, `the VM read other bytes at ${b.offset}`);
  };
  const writeBlock = async (hv: Hypervisor, b: { offset: number; byte: number }): Promise<void> => {
    const out = await qemuIo(hv, `write -P 0x${b.byte.toString(16)} ${b.offset} 4096`);
    assert.match(out, new RegExp(`^wrote 4096/4096 bytes at offset ${b.offset}$`, 'm'));
  };
  const stored = (offset: number): Buffer => {
    const buf = Buffer.alloc(4096);
    const fd = openSync(image, 'r');
    try {
      readSync(fd, buf, 0, buf.length, offset);
    } finally {
      closeSync(fd);
    }
    return buf;
  };

  const exportArgs = (): string[] => ['export', image, '--vm', VM, '--name', NAME, '--mode', 'network', '--chap', '--hypervisor', 'local', '--hypervisor', c.guest.uri, ...storageArgs];
  const migrate = async (to: Hypervisor): Promise<MigrateDoc> => {
    const t = Date.now();
    const doc = JSON.parse(await cliOk(['migrate', VM, '--to', to.uri, '--dest-uri', to.libvirtUri, '--json'])) as MigrateDoc;
    const wall = (Date.now() - t) / 1000;
    seconds[`migrate to ${to.uri} (virsh migrate)`] = doc.migrateMs / 1000;
    seconds[`migrate to ${to.uri} (whole command)`] = wall;
    return doc;
  };

  before(async () => {
    let t = Date.now();
    c = await useCluster();
    seconds.cluster = (Date.now() - t) / 1000;
    // The guest's libvirtd probes QEMU the first time it needs it (a minute under TCG).
    t = Date.now();
    await virsh(c.guest, 'domcapabilities', '--virttype', 'qemu', '--arch', 'x86_64', '--machine', 'pc');
    seconds['guest QEMU capabilities'] = (Date.now() - t) / 1000;

    dir = mkdtempSync(join(tmpdir(), 'lab-mx-'));
    records = join(dir, 'host-records');
    mkdirSync(records);
    mkdirSync(join(dir, 'tgt-conf'));
    env = { XDG_STATE_HOME: join(dir, 'state') };
    storageArgs = ['--storage', 'local', '--backend', 'tgt', '--control-port', String(c.tgtd.controlPort), '--portal', c.portal, '--conf-dir', join(dir, 'tgt-conf'), '--host-records', records];
    image = join(dir, 'disk.img');
    writeFileSync(image, '');
    truncateSync(image, 64 * MiB);
    const fd = openSync(image, 'r+');
    writeSync(fd, Buffer.alloc(4096, BLOCK_A.byte), 0, 4096, BLOCK_A.offset);
    closeSync(fd);

    before0 = { host: await holdings(c.host), guest: await holdings(c.guest) };
    const xml = `<domain type='qemu'><name>${VM}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <features><acpi/><apic/></features>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><controller type='scsi' model='virtio-scsi'/></devices></domain>\n`;
    writeFileSync(join(dir, 'vm.xml'), xml);
    await virsh(c.host, 'define', join(dir, 'vm.xml'));
    await virsh(c.host, 'start', VM);
    before0.host = await holdings(c.host);
  });

  after(async () => {
    if (!c) return;
    try {
      if (dir) await cli(['unexport', NAME, '--host-records', records, '--force']);
      for (const hv of [c.host, c.guest]) {
        await hv.runner.run(['chattr', '-i', `/etc/libvirt/qemu/${VM}.xml`]);
        await hv.runner.run(['virsh', 'destroy', VM]);
        await hv.runner.run(['virsh', 'undefine', VM]);
        await hv.runner.run(['rm', '-f', `/var/log/libvirt/qemu/${VM}.log`]);
      }
      await c.guest.runner.run(['systemctl', 'start', 'ssh']);
      if (dir) rmSync(dir, { recursive: true, force: true });
    } finally {
      await c.release();
      seconds['whole file'] = (Date.now() - t0) / 1000;
      console.log(`times (s): ${Object.entries(seconds).map(([k, v]) => `${k} ${v.toFixed(1)}`).join('; ')}`);
    }
  });

  test('a hypervisor that fails midway (the guest cannot save the domain definition) rolls back on both', async () => {
    // The domain defined (shut off) in the guest too, with its definition file immutable:
    // libvirt cannot save the disk into it, after the guest's secret was made.
    await c.guest.runner.writeFile(`/tmp/${VM}.xml`, await virsh(c.host, 'dumpxml', '--inactive', VM));
    await virsh(c.guest, 'define', `/tmp/${VM}.xml`);
    await c.guest.sh(['chattr', '+i', `/etc/libvirt/qemu/${VM}.xml`]);
    try {
      const guestBefore = await holdings(c.guest);
      const r = await cli([...exportArgs(), '--json']);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(c.guest.uri.replace(/[.]/g, '\\.')), 'the error names the hypervisor that failed');
      assert.deepEqual(await holdings(c.host), before0.host, 'this machine: no secret, the VM without the disk');
      assert.deepEqual(await holdings(c.guest), guestBefore, 'the guest: its secret taken away again');
      assert.equal((await virsh(c.host, 'domblklist', VM)).includes(NAME), false);
      assert.equal(targets(), '', 'the target is deleted');
      assert.deepEqual((await c.host.sh(['ls', '-A', records])).trim(), '', 'no storage record');
    } finally {
      await c.guest.sh(['chattr', '-i', `/etc/libvirt/qemu/${VM}.xml`]);
      await virsh(c.guest, 'undefine', VM);
      await c.guest.runner.run(['rm', '-f', `/tmp/${VM}.xml`]);
    }
  });

  let x: ExportDoc;
  let hostInitiator: string;
  let guestInitiator: string;

  test('export to both: each hypervisor has its initiator in the ACL and its secret; the disk on the running VM here', async () => {
    const t = Date.now();
    x = JSON.parse(await cliOk([...exportArgs(), '--json'])) as ExportDoc;
    seconds.export = (Date.now() - t) / 1000;
    assert.deepEqual(x.hypervisors.map((h) => h.uri), ['local', c.guest.uri]);
    [hostInitiator, guestInitiator] = x.hypervisors.map((h) => h.initiator) as [string, string];
    assert.notEqual(hostInitiator, guestInitiator);
    assert.deepEqual(aclOf(x.target).sort(), [hostInitiator, guestInitiator].sort());
    assert.ok(x.hypervisors[0]!.attachment?.live, 'attached live here');
    assert.equal(x.hypervisors[1]!.attachment, undefined, 'not defined in the guest: nothing attached there');
    for (const hv of [c.host, c.guest]) assert.match(await virsh(hv, 'secret-list'), new RegExp(`virt-iscsi-${NAME}`), `the CHAP secret on ${hv.uri}`);
    assert.deepEqual(sessions(x.target), [hostInitiator], "this machine's QEMU logged in as this machine's initiator");

    const s = await status();
    assert.equal(s.runningOn, 'local');
    assert.ok(s.healthy, s.problems.join('; '));
    const [h, g] = s.hypervisors;
    assert.deepEqual([h!.uri, h!.running, h!.defined, h!.secret, h!.disk], ['local', true, true, 'ok', 'ok']);
    assert.deepEqual([g!.uri, g!.running, g!.defined, g!.secret], [c.guest.uri, false, false, 'ok']);
    const text = await cliOk(['status']);
    assert.match(text, new RegExp(`${VM} runs on local`));

    await readBlock(c.host, BLOCK_A);
  });

  test('refused, nothing changed: --remove-hypervisor of the host the VM runs on; migrate to a hypervisor not in the export, or where it runs; dry-run', async () => {
    const was = { host: await holdings(c.host), guest: await holdings(c.guest), acl: aclOf(x.target) };
    const rm = await cli(['export', NAME, '--remove-hypervisor', 'local', '--host-records', records]);
    assert.equal(rm.status, 1);
    assert.match(rm.stderr, new RegExp(`domain ${VM} runs on local: migrate it away first`));
    const other = 'ssh://root@127.0.0.1:1';
    const mig = await cli(['migrate', VM, '--to', other]);
    assert.equal(mig.status, 1);
    assert.match(mig.stderr, new RegExp(`cannot migrate ${VM} to ${other}: export ${NAME} is not served to ${other} \\(virt-iscsi export ${NAME} --add-hypervisor ${other}\\)`));
    const here = await cli(['migrate', VM, '--to', 'local']);
    assert.equal(here.status, 1);
    assert.match(here.stderr, new RegExp(`domain "${VM}" already runs on local`));
    const dry = await cli(['migrate', VM, '--to', c.guest.uri, '--dest-uri', c.guest.libvirtUri, '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`would migrate ${VM} live from local to ${c.guest.uri.replace(/[.]/g, '\\.')}`));
    assert.match(dry.stdout, /virsh .*migrate --live --p2p --tunnelled --persistent --undefinesource/);
    assert.deepEqual({ host: await holdings(c.host), guest: await holdings(c.guest), acl: aclOf(x.target) }, was);
    assert.equal(await domstate(c.host), 'running (booted)');
  });

  test('migrate --live to the guest: domstate on both sides, status, the block read there, another written', async () => {
    const m = await migrate(c.guest);
    assert.deepEqual([m.from, m.to], ['local', c.guest.uri]);
    assert.deepEqual(m.relogin, [{ export: NAME, from: hostInitiator, to: guestInitiator }]);
    const here = await domstate(c.host);
    const there = await domstate(c.guest);
    console.log(`hop 1 (local -> guest): virsh migrate ${(m.migrateMs / 1000).toFixed(1)} s; domstate here: ${here}; in the guest: ${there}`);
    assert.equal(there, 'running (migrated)');
    assert.match(here, /^exit 1: error: failed to get domain/, 'the source keeps no definition');
    assert.equal(m.state.to, 'running');
    const s = await status();
    assert.equal(s.runningOn, c.guest.uri);
    assert.deepEqual(s.hypervisors.map((h) => [h.uri, h.running, h.defined]), [['local', false, false], [c.guest.uri, true, true]]);
    assert.ok(s.healthy, s.problems.join('; '));
    assert.deepEqual(sessions(x.target), [guestInitiator], "the guest's QEMU holds the session, as the guest's initiator");
    assert.match(await virsh(c.guest, 'dumpxml', '--inactive', VM), new RegExp(`<iqn name='${guestInitiator.replace(/[.]/g, '\\.')}'/>`), 'and its definition there logs in as the guest after a restart');
    await readBlock(c.guest, BLOCK_A);
    await writeBlock(c.guest, BLOCK_B);
    assert.ok(stored(BLOCK_B.offset).every((b) => b === BLOCK_B.byte), "the guest's QEMU wrote to the same LUN");
  });

  test('narrowed to the guest while the VM runs there: a cold start there logs in as the guest; --add-hypervisor brings this machine back', async () => {
    await cliOk(['export', NAME, '--remove-hypervisor', 'local', '--host-records', records]);
    assert.deepEqual(aclOf(x.target), [guestInitiator], "the ACL holds the guest's initiator only");
    assert.equal((await holdings(c.host)).secrets, '', "this machine's secret is removed");
    // QEMU logs in anew, with the initiator of the definition the migration left in the guest
    await virsh(c.guest, 'destroy', VM);
    await virsh(c.guest, 'start', VM);
    assert.deepEqual(sessions(x.target), [guestInitiator]);
    await readBlock(c.guest, BLOCK_B);
    await cliOk(['export', NAME, '--add-hypervisor', 'local', '--host-records', records]);
    assert.deepEqual(aclOf(x.target).sort(), [hostInitiator, guestInitiator].sort());
    assert.match(await virsh(c.host, 'secret-list'), new RegExp(`virt-iscsi-${NAME}`));
  });

  test('migrate --live back: running here again, both blocks read back; status says local', async () => {
    const m = await migrate(c.host);
    assert.deepEqual(m.relogin, [{ export: NAME, from: guestInitiator, to: hostInitiator }]);
    const here = await domstate(c.host);
    const there = await domstate(c.guest);
    console.log(`hop 2 (guest -> local): virsh migrate ${(m.migrateMs / 1000).toFixed(1)} s; domstate here: ${here}; in the guest: ${there}`);
    assert.equal(here, 'running (migrated)');
    assert.match(there, /^exit 1: error: failed to get domain/);
    assert.equal((await status()).runningOn, 'local');
    assert.deepEqual(sessions(x.target), [hostInitiator]);
    await readBlock(c.host, BLOCK_A);
    await readBlock(c.host, BLOCK_B);
    assert.ok(stored(BLOCK_A.offset).every((b) => b === BLOCK_A.byte));
  });

  test("unexport with the guest's sshd stopped: its pieces listed, the rest removed; unexport again finishes; both as before", async () => {
    // Debian's ssh.service stops only the listener (KillMode=process): open connections stay.
    await c.guest.sh(['systemctl', 'stop', 'ssh']);
    let partial: CliResult;
    try {
      partial = await cli(['unexport', NAME, '--host-records', records]);
    } finally {
      await c.guest.sh(['systemctl', 'start', 'ssh']);
    }
    assert.equal(partial.status, 1, partial.stderr);
    assert.match(partial.stderr, new RegExp(`could not reach ${c.guest.uri.replace(/[.]/g, '\\.')} \\(.*\\) still has libvirt secret virt-iscsi-${NAME}`));
    assert.equal((await holdings(c.host)).secrets, '', "this machine's secret is removed");
    assert.equal((await virsh(c.host, 'domblklist', VM)).includes(NAME), false, 'the disk is detached here');
    assert.match(await virsh(c.guest, 'secret-list'), new RegExp(`virt-iscsi-${NAME}`), "the guest's secret is still there");
    assert.notEqual(targets(), '', 'the target stays while a hypervisor still holds pieces');

    await cliOk(['unexport', NAME, '--host-records', records]);
    assert.deepEqual(await holdings(c.guest), before0.guest);
    assert.deepEqual(await holdings(c.host), before0.host);
    assert.equal(targets(), '', 'the target is gone');
    assert.equal((await c.host.sh(['ls', '-A', records])).trim(), '');
    assert.equal((await cliOk(['status', '--json'])).includes(NAME), false);
  });
});
