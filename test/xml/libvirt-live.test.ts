// What the builders make, the running libvirtd takes, and what it then prints, the
// parsers read back equal. Against a private tgtd on 127.0.0.1: an iscsi-direct pool
// that starts, a domain that runs with hot-plugged network and volume disks (QEMU logs
// in to tgtd itself, once with CHAP from a libvirt secret), a controller, and our marks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDisk, cdromDisk, type DiskDef } from '../../src/xml/disk.js';
import { buildController, buildMarks, parseDomain, parseMarks, VIRT_ISCSI_NS, VIRT_ISCSI_NS_KEY, type ExportMark } from '../../src/xml/domain.js';
import { buildPool, parsePool, poolDef } from '../../src/xml/pool.js';
import { buildSecret, iscsiChapSecret, parseSecret } from '../../src/xml/secret.js';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../helpers/libvirt.js';
import { startTgtd } from '../helpers/tgtd.js';

const virsh = (...args: string[]): string => execFileSync('virsh', ['-q', '-c', LIBVIRT_URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** Cleanup: a missing object is fine. */
const quietly = (...args: string[]): void => {
  try {
    virsh(...args);
  } catch {
    /* already gone */
  }
};

/** The disk as libvirt shows it, minus what libvirt adds (address, its own alias). */
function asBuilt(d: DiskDef): DiskDef {
  const { address: _a, liveAlias: _l, ...rest } = d;
  return rest;
}

test('libvirt takes our pool, secret, disk, controller and metadata XML, and its dumpxml parses back equal', async (t) => {
  const cleanups: Array<() => unknown> = [];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  cleanups.push(await ensureLibvirtd());
  const tgtd = await startTgtd();
  cleanups.push(() => tgtd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'vit-xml-live-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  const id = randomBytes(4).toString('hex');
  const iqn = `iqn.2024-01.dev.virt-iscsi:xml-${id}`;
  const chapIqn = `iqn.2024-01.dev.virt-iscsi:xml-chap-${id}`;
  const initiator = `iqn.2024-01.dev.virt-iscsi:xml-init-${id}`;
  const [host, port] = ['127.0.0.1', tgtd.port];
  for (const [name, size] of [['lun1.img', 32], ['lun2.iso', 4], ['chap.img', 8]] as const) {
    writeFileSync(join(dir, name), '');
    truncateSync(join(dir, name), size * 1024 * 1024);
  }
  const lld = ['--lld', 'iscsi'];
  tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'target', '--tid', '1', '--targetname', iqn]);
  tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', join(dir, 'lun1.img')]);
  tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '2', '-b', join(dir, 'lun2.iso'), '--device-type', 'cd']);
  tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'target', '--tid', '1', '--initiator-address', 'ALL']);
  // A second target that wants CHAP. tgtadm takes the password on argv: it has no other way.
  const chapUser = `u${id}`;
  const chapPassword = randomBytes(9).toString('base64url');
  tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'target', '--tid', '2', '--targetname', chapIqn]);
  tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'logicalunit', '--tid', '2', '--lun', '1', '-b', join(dir, 'chap.img')]);
  tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'target', '--tid', '2', '--initiator-address', 'ALL']);
  tgtd.tgtadm([...lld, '--op', 'new', '--mode', 'account', '--user', chapUser, '--password', chapPassword]);
  tgtd.tgtadm([...lld, '--op', 'bind', '--mode', 'account', '--tid', '2', '--user', chapUser]);

  // secret
  const usage = `vit-xml-chap-${id}`;
  const uuid = randomUUID();
  const secret = iscsiChapSecret({ usage, description: `CHAP for "${chapIqn}" <test> & ü`, uuid });
  cleanups.push(() => quietly('secret-undefine', uuid));
  virsh('secret-define', file('secret.xml', buildSecret(secret)));
  assert.deepEqual(parseSecret(virsh('secret-dumpxml', uuid)), secret);
  virsh('secret-set-value', uuid, '--file', file('chap.pw', chapPassword), '--plain');

  // an iscsi-direct pool that starts and lists the LUNs
  const direct = poolDef({ type: 'iscsi-direct', name: `vit-xml-direct-${id}`, hosts: [{ name: host, port }], device: iqn, initiator });
  cleanups.push(() => quietly('pool-undefine', direct.name));
  virsh('pool-define', file('direct.xml', buildPool(direct)));
  cleanups.push(() => quietly('pool-destroy', direct.name));
  virsh('pool-start', direct.name);
  const { uuid: poolUuid, capacity, allocation, available, ...readBack } = parsePool(virsh('pool-dumpxml', direct.name));
  assert.deepEqual(readBack, direct);
  // LUN 1 is 32 MiB; libvirt reports one 512-byte block less (it multiplies the last LBA
  // READ CAPACITY returns, not the block count), and nothing for the cd LUN.
  assert.ok(poolUuid && capacity === 32 * 1024 * 1024 - 512 && allocation === capacity && available === 0, `uuid ${poolUuid} capacity ${capacity}`);
  assert.deepEqual(virsh('vol-list', direct.name).trim().split('\n').map((l) => l.trim().split(/\s+/)[0]), ['unit:0:0:0', 'unit:0:0:1', 'unit:0:0:2']);

  // an iscsi pool with CHAP and its own initiator defines (it cannot start here: no iscsi_tcp)
  const chapPool = poolDef({ type: 'iscsi', name: `vit-xml-chap-${id}`, hosts: [{ name: host, port }], device: chapIqn, initiator, auth: { username: chapUser, secret: { usage } } });
  cleanups.push(() => quietly('pool-undefine', chapPool.name));
  virsh('pool-define', file('chap-pool.xml', buildPool(chapPool)));
  const { uuid: _u, capacity: _c, allocation: _al, available: _av, ...chapBack } = parsePool(virsh('pool-dumpxml', chapPool.name));
  assert.deepEqual(chapBack, chapPool);

  // a running domain; disks hot-plugged and made persistent
  const domain = `vit-xml-${id}`;
  cleanups.push(() => quietly('undefine', domain));
  virsh('define', file('domain.xml', minimalDomainXml(domain)));
  cleanups.push(() => quietly('destroy', domain));
  virsh('start', domain);

  const network: DiskDef = {
    device: 'disk',
    source: { type: 'network', protocol: 'iscsi', target: iqn, lun: 1, hosts: [{ name: host, port }], initiator },
    driver: { name: 'qemu', type: 'raw', cache: 'none' },
    target: { dev: 'sda', bus: 'scsi' },
    serial: '0012',
    alias: 'ua-net1',
  };
  const cdrom = cdromDisk({ source: { type: 'volume', pool: direct.name, volume: 'unit:0:0:2' }, target: { dev: 'sdb', bus: 'scsi' } });
  const withChap: DiskDef = {
    device: 'disk',
    source: { type: 'network', protocol: 'iscsi', target: chapIqn, lun: 1, hosts: [{ name: host, port }], initiator, auth: { username: chapUser, secret: { usage } } },
    driver: { name: 'qemu', type: 'raw' },
    target: { dev: 'sdc', bus: 'scsi' },
  };
  for (const [i, disk] of [network, cdrom, withChap].entries()) virsh('attach-device', domain, file(`disk${i}.xml`, buildDisk(disk)), '--persistent');
  virsh('attach-device', domain, file('controller.xml', buildController({ type: 'scsi', model: 'virtio-scsi', index: 1 })), '--config');
  const marks: ExportMark[] = [
    { name: `lun1 "${id}" <&>`, dev: 'sda', target: iqn, lun: 1, portal: `${host}:${port}` },
    { name: 'iso', dev: 'sdb', pool: direct.name },
  ];
  virsh('metadata', domain, VIRT_ISCSI_NS, '--key', VIRT_ISCSI_NS_KEY, '--set', buildMarks(marks), '--live', '--config');

  const live = parseDomain(virsh('dumpxml', domain));
  assert.ok(live.id !== undefined && live.acpi);
  const ours = (d: typeof live) => d.disks.filter((disk) => ['sda', 'sdb', 'sdc'].includes(disk.target.dev)).map(asBuilt);
  assert.deepEqual(ours(live), [network, cdrom, withChap]);
  assert.ok(live.disks.filter((disk) => disk.target.dev !== 'sda').every((disk) => disk.liveAlias !== undefined), 'libvirt gives running disks its own alias');
  assert.deepEqual(live.marks, marks);

  const inactive = parseDomain(virsh('dumpxml', '--inactive', domain));
  assert.equal(inactive.id, undefined);
  assert.deepEqual(ours(inactive), [network, cdrom, withChap]);
  assert.deepEqual(
    inactive.controllers.filter((c) => c.type === 'scsi'),
    [
      { type: 'scsi', model: 'virtio-scsi', index: 0 },
      { type: 'scsi', model: 'virtio-scsi', index: 1 },
    ],
  );
  assert.deepEqual(parseMarks(virsh('metadata', domain, VIRT_ISCSI_NS)), marks);

  // tgtd, not libvirt, confirms QEMU logged in to both targets with our initiator name
  const shown = tgtd.tgtadm([...lld, '--op', 'show', '--mode', 'target']);
  assert.equal(shown.split(`Initiator: ${initiator}`).length - 1 >= 2, true, shown);

  // the same fragment detaches the disk
  virsh('detach-device', domain, file('detach.xml', buildDisk(network)), '--persistent');
  assert.ok(!parseDomain(virsh('dumpxml', domain)).disks.some((disk) => disk.target.dev === 'sda'));
  assert.ok(!parseDomain(virsh('dumpxml', '--inactive', domain)).disks.some((disk) => disk.target.dev === 'sda'));
});
