// `virt-iscsi xml pool|disk|secret` through the real CLI entry (src/cli/run.ts): output,
// exit codes 0/1/2, and libvirt's schema on what it prints. Flag-to-error mapping is
// also checked in process (renderPoolXml/renderDiskXml), which is faster than a spawn each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { renderDiskXml, renderPoolXml, type DiskFlags, type PoolFlags } from '../../src/cli/commands/xml.js';
import { parseDisk } from '../../src/xml/disk.js';
import { parsePool } from '../../src/xml/pool.js';
import { parseSecret } from '../../src/xml/secret.js';
import { cliWith, type CliResult } from '../helpers/cli.js';
import { validateAll, validateDisks } from '../xml/schema.js';


const cli = (...args: string[]): Promise<CliResult> => cliWith(['xml', ...args]);

const IQN = 'iqn.2001-04.com.example:storage.disk1';

test('xml pool|disk|secret print XML that parses to what the flags say and passes libvirt schemas', async () => {
  const [direct, network, secret] = await Promise.all([
    cli('pool', '--name', 'lun1-direct', '--type', 'iscsi-direct', '--portal', '[fe80::1]:13260', '--target', IQN.toUpperCase(), '--initiator', 'iqn.2024-01.com.example:host1', '--chap-user', 'chapuser', '--chap-secret-usage', 'lun1-chap'),
    cli('disk', '--portal', '192.0.2.1', '--target', IQN, '--lun', '1', '--dev', 'sdb', '--bus', 'scsi'),
    cli('secret', '--usage', 'lun1-chap', '--description', `CHAP for "lun1" <&>`),
  ]);
  for (const r of [direct, network, secret]) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  }
  assert.deepEqual(parsePool(direct.stdout), {
    type: 'iscsi-direct',
    name: 'lun1-direct',
    hosts: [{ name: 'fe80::1', port: 13260 }],
    device: IQN,
    initiator: 'iqn.2024-01.com.example:host1',
    auth: { username: 'chapuser', secret: { usage: 'lun1-chap' } },
  });
  assert.deepEqual(parseDisk(network.stdout), {
    device: 'disk',
    source: { type: 'network', protocol: 'iscsi', target: IQN, lun: 1, hosts: [{ name: '192.0.2.1', port: 3260 }] },
    driver: { name: 'qemu', type: 'raw' },
    target: { dev: 'sdb', bus: 'scsi' },
  });
  assert.deepEqual(parseSecret(secret.stdout), { ephemeral: false, private: true, description: `CHAP for "lun1" <&>`, usage: { type: 'iscsi', target: 'lun1-chap' } });
  await Promise.all([validateAll([direct.stdout], 'storagepool'), validateAll([secret.stdout], 'secret'), validateDisks([network.stdout])]);
});

test('a bad value exits 1 with one line on stderr naming it and nothing on stdout; usage errors exit 2; --help exits 0', async () => {
  const [bad, usage, help] = await Promise.all([
    cli('pool', '--name', 'p', '--portal', '192.0.2.1', '--target', 'iqn.2001-13.com.example:x'),
    cli('disk', '--by-path', `ip-192.0.2.1:3260-iscsi-${IQN}-lun-0`, '--bus', 'nvme'),
    cli('disk', '--help'),
  ]);
  assert.equal(bad.status, 1, bad.stderr);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr, 'virt-iscsi: pool target "iqn.2001-13.com.example:x" is not a valid iSCSI name: the month in 2001-13 is not 01 to 12\n');
  assert.equal(usage.status, 2, usage.stderr);
  assert.equal(usage.stdout, '');
  assert.ok(usage.stderr.includes("argument 'nvme' is invalid"), usage.stderr);
  assert.equal(help.status, 0, help.stderr);
  for (const flag of ['--by-path', '--portal', '--target', '--lun', '--pool', '--volume', '--dev', '--bus', '--cdrom', '--readonly']) assert.ok(help.stdout.includes(flag), flag);
});

test('in process: how the flags map to a pool, and every flag mistake is a one-line ValidationError', async () => {
  const pool: PoolFlags = { name: 'p', portal: '192.0.2.1', target: IQN, type: 'iscsi' };
  assert.match(renderPoolXml({ ...pool, chapUser: 'u', chapSecretUuid: '8b95b1f6-bedc-48a8-bfbf-58546192f4d2' }), /<secret uuid="8b95b1f6-bedc-48a8-bfbf-58546192f4d2"\/>/);
  const poolErrors: Array<[PoolFlags, string]> = [
    [{ ...pool, type: 'iscsi-direct' }, '--type iscsi-direct needs --initiator IQN'],
    [{ ...pool, chapSecretUsage: 's' }, '--chap-secret-usage/--chap-secret-uuid needs --chap-user'],
    [{ ...pool, chapUser: 'u', chapSecretUsage: 's', chapSecretUuid: '8b95b1f6-bedc-48a8-bfbf-58546192f4d2' }, 'not both'],
    [{ ...pool, chapUser: 'u v', chapSecretUsage: 's' }, 'pool CHAP user "u v"'],
    [{ ...pool, name: 'a/b' }, 'pool name "a/b"'],
    [{ ...pool, initiator: 'iqn.bad' }, 'pool initiator "iqn.bad"'],
    [{ ...pool, portal: '[192.0.2.1]' }, 'portal "[192.0.2.1]"'],
  ];
  for (const [flags, words] of poolErrors) assert.throws(() => renderPoolXml(flags), (e: unknown) => e instanceof ValidationError && e.message.includes(words) && !e.message.includes('\n'), words);
  const plain = renderPoolXml(pool);
  assert.deepEqual(parsePool(plain), { type: 'iscsi', name: 'p', hosts: [{ name: '192.0.2.1', port: 3260 }], device: IQN, targetPath: '/dev/disk/by-path' });
  await validateAll([plain, renderPoolXml({ ...pool, uuid: '8b95b1f6-bedc-48a8-bfbf-58546192f4d2', initiator: 'iqn.2024-01.com.example:h' })], 'storagepool');
});

test('in process: how the flags map to a disk, and every flag mistake is a one-line ValidationError', async () => {
  const net: DiskFlags = { portal: '192.0.2.1', target: IQN, lun: '1', bus: 'scsi' };
  // defaults: the second device name of the bus; hdc for an IDE cdrom
  assert.equal(parseDisk(renderDiskXml(net)).target.dev, 'sdb');
  assert.equal(parseDisk(renderDiskXml({ ...net, bus: 'virtio' })).target.dev, 'vdb');
  assert.equal(parseDisk(renderDiskXml({ ...net, bus: 'ide' })).target.dev, 'hdb');
  assert.deepEqual(parseDisk(renderDiskXml({ ...net, bus: 'ide', cdrom: true })).target, { dev: 'hdc', bus: 'ide' });
  // --by-path takes a full path too; network disks take an initiator and CHAP
  assert.equal(parseDisk(renderDiskXml({ byPath: `/dev/disk/by-path/ip-[::1]:3260-iscsi-${IQN}-lun-1`.replace('[::1]', '::1'), bus: 'scsi' })).source.type, 'block');
  const chap = parseDisk(renderDiskXml({ ...net, initiator: 'iqn.2024-01.com.example:h', chapUser: 'u', chapSecretUsage: 's' }));
  assert.deepEqual(chap.source.type === 'network' && chap.source.protocol === 'iscsi' && [chap.source.initiator, chap.source.auth], ['iqn.2024-01.com.example:h', { username: 'u', secret: { usage: 's' } }]);
  const diskErrors: Array<[DiskFlags, string]> = [
    [{ bus: 'scsi' }, 'no disk source: give --by-path PATH, or --portal HOST[:PORT] --target IQN --lun N, or --pool P --volume V'],
    [{ ...net, pool: 'p', volume: 'v' }, '--portal/--target/--lun and --pool/--volume are different disk sources'],
    [{ ...net, byPath: `ip-192.0.2.1:3260-iscsi-${IQN}-lun-1` }, '--by-path and --portal/--target/--lun are different disk sources'],
    [{ portal: '192.0.2.1', target: IQN, bus: 'scsi' }, '--portal, --target, --lun go together; missing --lun'],
    [{ pool: 'p', bus: 'scsi' }, 'missing --volume'],
    [{ ...net, lun: '65536' }, '--lun "65536" is not a LUN number from 0 to 65535'],
    [{ ...net, lun: '-1' }, '--lun "-1"'],
    [{ ...net, target: 'iqn.2001-04.com.example:a b' }, 'disk source target "iqn.2001-04.com.example:a b"'],
    [{ ...net, chapUser: 'u' }, '--chap-user "u" needs --chap-secret-usage'],
    [{ pool: 'p', volume: 'v', bus: 'scsi', initiator: 'iqn.2024-01.com.example:h' }, '--initiator and --chap-* apply to --portal/--target/--lun disks'],
    [{ byPath: '/dev/sdb', bus: 'scsi' }, '--by-path "/dev/sdb" is not an iSCSI LUN\'s'],
    [{ byPath: 'ip-storage.example.com:3260-iscsi-iqn.2001-04.com.example:a-lun-0', bus: 'scsi' }, '--by-path "ip-storage.example.com'],
    [{ ...net, dev: 'disk1' }, 'disk target dev "disk1"'],
    [{ ...net, alias: 'lun1' }, 'disk alias "lun1" is not a user alias'],
    [{ ...net, serial: 'a/b' }, 'disk serial "a/b"'],
    [{ ...net, bus: 'virtio', cdrom: true }, 'a cdrom cannot be on bus virtio'],
  ];
  for (const [flags, words] of diskErrors) assert.throws(() => renderDiskXml(flags), (e: unknown) => e instanceof ValidationError && e.message.includes(words) && !e.message.includes('\n'), words);
  assert.deepEqual(parseDisk(renderDiskXml({ byPath: `ip-192.0.2.1:3260-iscsi-${IQN}-lun-0`, bus: 'scsi', cdrom: true })), {
    device: 'cdrom',
    source: { type: 'block', dev: `/dev/disk/by-path/ip-192.0.2.1:3260-iscsi-${IQN}-lun-0` },
    driver: { name: 'qemu', type: 'raw' },
    target: { dev: 'sdb', bus: 'scsi' },
    readonly: true,
  });
  const volume = renderDiskXml({ pool: 'lun1-direct', volume: 'unit:0:0:1', bus: 'virtio', readonly: true, serial: 'VIT0001', alias: 'ua-lun1' });
  assert.deepEqual(parseDisk(volume), {
    device: 'disk',
    source: { type: 'volume', pool: 'lun1-direct', volume: 'unit:0:0:1' },
    driver: { name: 'qemu', type: 'raw' },
    target: { dev: 'vdb', bus: 'virtio' },
    readonly: true,
    serial: 'VIT0001',
    alias: 'ua-lun1',
  });
  await validateDisks([volume, renderDiskXml({ ...net, bus: 'ide', cdrom: true }), renderDiskXml({ ...net, initiator: 'iqn.2024-01.com.example:h', chapUser: 'u', chapSecretUsage: 's' })]);
});
