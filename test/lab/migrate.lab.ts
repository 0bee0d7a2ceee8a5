// Live migration for real, with raw virsh: one VM whose disk is an iSCSI LUN of one storage
// host moves between two real libvirt hypervisors, this machine's libvirtd and the lab
// guest's (test/lab/cluster.ts), and back, and keeps its bytes.
//
// The disk is a network disk (QEMU's own iSCSI client) on 127.0.0.1:P, the private tgtd
// here, which the guest reaches at the same address through the cluster's forward: the
// domain XML needs no change to run on either side. Both sides run QEMU 7.2 under TCG
// (no KVM here, none nested in the guest), machine `pc`, QEMU's default CPU model.
// Migration is `virsh migrate --live --p2p --tunnelled`: the source libvirtd opens the
// destination's libvirtd over SSH (libssh transport, host key checked) and the memory goes
// through that connection, so no migration port has to be reachable.
//
// Bytes are written and read through the running VM's own QEMU (HMP `qemu-io` on its SCSI
// disk device, which prints to the domain log) and checked in the LUN's backing file here.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../helpers/daemon.js';
import { useCluster, type Cluster, type Hypervisor } from './cluster.js';
import { unique } from './lab.js';

const id = unique();
const VM = `lab-mig-${id}`;
const IQN = `iqn.2024-01.test.lab:mig-${id}`;
const TID = 1; // the private tgtd serves this target only
const MiB = 2 ** 20;
const BLOCK_A = { offset: 1 * MiB, byte: 0x5a }; // written on this machine before the first hop
const BLOCK_B = { offset: 2 * MiB, byte: 0xa5 }; // written in the guest between the hops
/** The VM's SCSI disk device: libvirt names it after its address (controller 0, unit 0). */
const DISK_DEVICE = 'scsi0-0-0-0';
const MIGRATE = ['migrate', '--live', '--p2p', '--tunnelled', '--persistent', '--undefinesource'];

describe('live migration between two real hypervisors, one iSCSI disk (raw virsh)', () => {
  let c: Cluster;
  let dir: string;
  let image: string;
  const seen: Record<string, { host: string; guest: string }> = {};
  const hopSeconds: number[] = [];

  const virsh = (hv: Hypervisor, ...args: string[]): Promise<string> => hv.sh(['virsh', ...args]);
  /** `virsh list --all --name` on both: what each hypervisor holds. */
  const domains = async (): Promise<{ host: string; guest: string }> => ({
    host: (await virsh(c.host, 'list', '--all', '--name')).trim(),
    guest: (await virsh(c.guest, 'list', '--all', '--name')).trim(),
  });
  /** `virsh domstate --reason` there, or the error virsh gives when the domain is not there. */
  const domstate = async (hv: Hypervisor): Promise<string> => {
    const r = await hv.runner.run(['virsh', 'domstate', VM, '--reason']);
    return r.exitCode === 0 ? r.stdout.trim() : `exit ${r.exitCode}: ${r.stderr.trim()}`;
  };
  /** Runs a qemu-io command in the VM's QEMU on `hv`; returns what it printed (to the domain log). */
  const qemuIo = async (hv: Hypervisor, command: string): Promise<string> => {
    const log = `/var/log/libvirt/qemu/${VM}.log`;
    const start = Number((await hv.sh(['stat', '-c', '%s', log])).trim());
    const hmp = await virsh(hv, 'qemu-monitor-command', VM, '--hmp', `qemu-io -d ${DISK_DEVICE} "${command}"`);
    assert.equal(hmp.trim(), '', `HMP qemu-io refused "${command}"`);
    let out = '';
    await waitFor(`qemu-io "${command}" in ${log}`, async () => {
      out = await hv.sh(['tail', '-c', `+${start + 1}`, log]);
      return /^(read|wrote) \d+\/\d+ bytes at offset \d+$/m.test(out);
    }, 30_000);
    return out;
  };
  const writeBlock = async (hv: Hypervisor, b: { offset: number; byte: number }): Promise<void> => {
    const out = await qemuIo(hv, `write -P 0x${b.byte.toString(16)} ${b.offset} 4096`);
    assert.match(out, new RegExp(`^wrote 4096/4096 bytes at offset ${b.offset}$`, 'm'));
  };
  /** qemu-io's read -P checks every byte against the pattern and says so when one differs. */
  const readBlock = async (hv: Hypervisor, b: { offset: number; byte: number }): Promise<void> => {
    const out = await qemuIo(hv, `read -P 0x${b.byte.toString(16)} ${b.offset} 4096`);
    assert.match(out, new RegExp(`^read 4096/4096 bytes at offset ${b.offset}$`, 'm'));
    assert.doesNotMatch(out, /Pattern verification failed/, `the VM read other bytes at ${b.offset}`);
  };
  /** The LUN's bytes at `offset`, from its backing file on the storage host. */
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
  const migrate = async (from: Hypervisor, to: Hypervisor): Promise<number> => {
    const t0 = Date.now();
    await virsh(from, ...MIGRATE, VM, to.libvirtUri);
    const s = (Date.now() - t0) / 1000;
    hopSeconds.push(s);
    // libvirt's own account of the job, kept on the destination
    const job = await to.runner.run(['virsh', 'domjobinfo', VM, '--completed']);
    const pick = (k: string): string => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(job.stdout)?.[1] ?? '?';
    console.log(`libvirt job: time elapsed ${pick('Time elapsed')}, downtime ${pick('Total downtime')}, memory processed ${pick('Memory processed')}`);
    return s;
  };

  before(async () => {
    const t = Date.now();
    c = await useCluster();
    console.log(`cluster (lab guest, tgtd, sshd, forwards) ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    seen.before = await domains();
    // The guest's libvirtd probes QEMU the first time it needs it (a minute under TCG):
    // done here, so that the hops measure migration.
    const t0 = Date.now();
    await virsh(c.guest, 'domcapabilities', '--virttype', 'qemu', '--arch', 'x86_64', '--machine', 'pc');
    console.log(`guest libvirtd QEMU capabilities: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    dir = mkdtempSync(join(tmpdir(), 'lab-mig-'));
    image = join(dir, 'disk.img');
    writeFileSync(image, '');
    truncateSync(image, 64 * MiB);
    c.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'new', '--mode', 'target', '--tid', String(TID), '-T', IQN]);
    c.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'new', '--mode', 'logicalunit', '--tid', String(TID), '--lun', '1', '-b', image]);
    c.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'bind', '--mode', 'target', '--tid', String(TID), '-I', 'ALL']);

    const [ip, port] = c.portal.split(':');
    const xml = `<domain type='qemu'><name>${VM}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <features><acpi/><apic/></features>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <controller type='scsi' model='virtio-scsi'/>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source protocol='iscsi' name='${IQN}/1'><host name='${ip}' port='${port}'/></source>
      <target dev='sda' bus='scsi'/>
    </disk>
  </devices></domain>\n`;
    await c.host.runner.writeFile(join(dir, 'vm.xml'), xml);
    await virsh(c.host, 'define', join(dir, 'vm.xml'));
    await virsh(c.host, 'start', VM);
    console.log(`before() done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    if (!c) return;
    try {
      for (const hv of [c.host, c.guest]) {
        await hv.runner.run(['virsh', 'destroy', VM]);
        await hv.runner.run(['virsh', 'undefine', VM]);
        await hv.runner.run(['rm', '-f', `/var/log/libvirt/qemu/${VM}.log`]);
      }
      // tgtd stops with the cluster, its target with it
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (hopSeconds.length) console.log(`migration hops: ${hopSeconds.map((s) => `${s.toFixed(1)} s`).join(', ')}`);
    } finally {
      await c.release();
    }
  });

  test('the VM runs here on the LUN at 127.0.0.1:P; a block written through its QEMU lands in the LUN', async () => {
    assert.equal(await domstate(c.host), 'running (booted)');
    const disk = (await virsh(c.host, 'domblklist', VM, '--details')).split('\n').map((l) => l.trim().split(/\s+/)).find((r) => r[2] === 'sda');
    assert.deepEqual(disk, ['network', 'disk', 'sda', `${IQN}/1`]);
    assert.ok(stored(BLOCK_A.offset).every((b) => b === 0), 'the LUN starts zeroed');
    await writeBlock(c.host, BLOCK_A);
    assert.ok(stored(BLOCK_A.offset).every((b) => b === BLOCK_A.byte), 'the block is in the backing file of the LUN');
    // the guest has the same portal (through the forward): its tgtd session works from there too
    assert.match(await c.guest.sh(['ss', '-Htln']), new RegExp(`127\\.0\\.0\\.1:${c.portal.split(':')[1]}\\s`));
  });

  test('migrate --live to the guest: running (migrated) there, gone here; the VM reads its block there and writes another', async () => {
    const s = await migrate(c.host, c.guest);
    seen.guest = { host: await domstate(c.host), guest: await domstate(c.guest) };
    console.log(`hop 1 (this machine -> guest): ${s.toFixed(1)} s; domstate here: ${seen.guest.host}; in the guest: ${seen.guest.guest}`);
    assert.equal(seen.guest.guest, 'running (migrated)');
    assert.match(seen.guest.host, /^exit 1: error: failed to get domain/, 'the source keeps no definition (--undefinesource)');
    assert.match(await virsh(c.guest, 'dominfo', VM), /Persistent:\s+yes/);
    const disk = (await virsh(c.guest, 'domblklist', VM, '--details')).split('\n').map((l) => l.trim().split(/\s+/)).find((r) => r[2] === 'sda');
    assert.deepEqual(disk, ['network', 'disk', 'sda', `${IQN}/1`], 'the same disk, unchanged');
    await readBlock(c.guest, BLOCK_A);
    await writeBlock(c.guest, BLOCK_B);
    assert.ok(stored(BLOCK_B.offset).every((b) => b === BLOCK_B.byte), "the guest's QEMU wrote to the same LUN");
  });

  test('migrate --live back: running (migrated) here, gone in the guest; both blocks read back here', async () => {
    const s = await migrate(c.guest, c.host);
    seen.back = { host: await domstate(c.host), guest: await domstate(c.guest) };
    console.log(`hop 2 (guest -> this machine): ${s.toFixed(1)} s; domstate here: ${seen.back.host}; in the guest: ${seen.back.guest}`);
    assert.equal(seen.back.host, 'running (migrated)');
    assert.match(seen.back.guest, /^exit 1: error: failed to get domain/);
    await readBlock(c.host, BLOCK_A);
    await readBlock(c.host, BLOCK_B);
    assert.ok(stored(BLOCK_A.offset).every((b) => b === BLOCK_A.byte) && stored(BLOCK_B.offset).every((b) => b === BLOCK_B.byte));
  });

  test('after the VM is removed: both hypervisors hold what they held before', async () => {
    await virsh(c.host, 'destroy', VM);
    await virsh(c.host, 'undefine', VM);
    c.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', String(TID)]);
    // this machine is shared: other domains come and go; ours is gone and nothing else of ours is left
    const now = await domains();
    assert.ok(!now.host.split('\n').includes(VM), now.host);
    assert.equal(now.guest, seen.before!.guest);
    assert.equal(c.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']), '');
  });
});
