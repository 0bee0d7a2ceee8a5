// The RBD parts of the XML layer: ceph secrets, rbd network disks, rbd pools. Built,
// parsed back equal, accepted by libvirt's schemas, and bad values refused in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { buildDisk, parseDisk, type DiskDef } from '../../src/xml/disk.js';
import { buildRbdPool, parseRbdPool, rbdPoolDef } from '../../src/xml/pool.js';
import { buildSecret, cephKeySecret, parseSecret, secretUsageName } from '../../src/xml/secret.js';
import { validateAll, validateDisks } from './schema.js';

const rbdDisk = (over: Partial<Extract<DiskDef['source'], { protocol: 'rbd' }>> = {}): DiskDef => ({
  device: 'disk',
  source: { type: 'network', protocol: 'rbd', name: 'rbd/vm1', hosts: [{ name: '127.0.0.1', port: 6789 }], auth: { username: 'libvirt', secret: { usage: 'ceph-key' } }, ...over },
  driver: { name: 'qemu', type: 'raw', cache: 'none' },
  target: { dev: 'sdb', bus: 'scsi' },
});

test('a ceph secret: persistent and private, its usage name under <name>', async () => {
  const s = cephKeySecret({ usage: 'client.libvirt secret', description: 'cephx key' });
  assert.deepEqual(s, { ephemeral: false, private: true, description: 'cephx key', usage: { type: 'ceph', name: 'client.libvirt secret' } });
  const xml = buildSecret(s);
  assert.equal(xml, '<secret ephemeral="no" private="yes">\n  <description>cephx key</description>\n  <usage type="ceph">\n    <name>client.libvirt secret</name>\n  </usage>\n</secret>\n');
  assert.deepEqual(parseSecret(xml), s);
  assert.equal(secretUsageName(s.usage), 'client.libvirt secret');
  await validateAll([xml], 'secret');
  assert.throws(() => cephKeySecret({ usage: 'a/b' }), (e: unknown) => e instanceof ValidationError && /secret usage "a\/b"/.test(e.message));
});

test('an rbd network disk: built, parsed back equal, valid for libvirt; iSCSI disks unchanged beside it', async () => {
  const many = rbdDisk({ hosts: [{ name: '127.0.0.1', port: 6789 }, { name: '::1' }, { name: 'mon3.example.com', port: 3300 }], auth: { username: 'admin', secret: { uuid: '2495069b-72f9-4f60-b4a6-7b779b75fa14' } } });
  const noHosts = rbdDisk({ hosts: [], auth: undefined });
  const docs = [rbdDisk(), many, { ...noHosts, source: { type: 'network' as const, protocol: 'rbd' as const, name: 'rbd/vm1', hosts: [] } }];
  for (const d of docs) assert.deepEqual(parseDisk(buildDisk(d)), d);
  assert.match(buildDisk(rbdDisk()), /<source protocol="rbd" name="rbd\/vm1">\s+<host name="127.0.0.1" port="6789"\/>\s+<auth username="libvirt">\s+<secret type="ceph" usage="ceph-key"\/>/);
  await validateDisks(docs.map(buildDisk));
  // <auth> beside <source>, as older libvirt wrote it, reads the same.
  const old = `<disk type='network' device='disk'><auth username='libvirt'><secret type='ceph' usage='ceph-key'/></auth><source protocol='rbd' name='rbd/vm1'><host name='127.0.0.1' port='6789'/></source><target dev='sdb' bus='scsi'/></disk>`;
  assert.deepEqual(parseDisk(old).source, rbdDisk().source);
});

test('bad rbd disks are refused with one line naming the value', () => {
  const cases: Array<[DiskDef, RegExp]> = [
    [rbdDisk({ name: 'vm1' }), /^disk source name "vm1" is not POOL\/IMAGE of an RBD image: .*has no '\/'/],
    [rbdDisk({ name: 'rbd/vm1@snap' }), /names a snapshot/],
    [rbdDisk({ name: 'rbd/a:conf=/x' }), /disk source name "rbd\/a:conf=\/x"/],
    [rbdDisk({ auth: { username: 'client.admin', secret: { usage: 'k' } } }), /^disk cephx user "client.admin" is not allowed/],
    [rbdDisk({ hosts: [{ name: 'bad host' }] }), /disk source host "bad host"/],
  ];
  for (const [d, re] of cases) assert.throws(() => buildDisk(d), (e: unknown) => e instanceof ValidationError && re.test(e.message) && !e.message.includes('\n'), String(re));
  assert.throws(() => parseDisk("<disk type='network'><source protocol='nbd' name='x'/><target dev='vdb'/></disk>"), /protocol "nbd" is not iscsi or rbd/);
});

test('an rbd pool: the Ceph pool, the monitors and cephx auth, valid for libvirt', async () => {
  const def = rbdPoolDef({ name: 'vit-rbd', cephPool: 'rbd', hosts: [{ name: '127.0.0.1', port: 6789 }], auth: { username: 'libvirt', secret: { usage: 'ceph-key' } } });
  assert.deepEqual(def, { type: 'rbd', name: 'vit-rbd', cephPool: 'rbd', hosts: [{ name: '127.0.0.1', port: 6789 }], auth: { username: 'libvirt', secret: { usage: 'ceph-key' } } });
  const xml = buildRbdPool(def);
  assert.deepEqual(parseRbdPool(xml), def);
  await validateAll([xml], 'storagepool');
  const bad: Array<[() => unknown, RegExp]> = [
    [() => rbdPoolDef({ name: 'p', cephPool: 'rbd', hosts: [] }), /^an rbd pool needs at least one Ceph monitor host$/],
    [() => rbdPoolDef({ name: 'p', cephPool: 'r b', hosts: [{ name: 'h' }] }), /^rbd pool source name: RBD pool name "r b"/],
    [() => rbdPoolDef({ name: 'a/b', cephPool: 'rbd', hosts: [{ name: 'h' }] }), /pool name "a\/b"/],
    [() => rbdPoolDef({ name: 'p', cephPool: 'rbd', hosts: [{ name: 'h' }], auth: { username: 'x y', secret: { usage: 'k' } } }), /pool cephx user "x y"/],
    [() => parseRbdPool("<pool type='rbd'><name>p</name><source><host name='h'/><name>rbd</name><auth type='chap' username='u'><secret usage='k'/></auth></source></pool>"), /auth type "chap" is not ceph/],
  ];
  for (const [f, re] of bad) assert.throws(f, (e: unknown) => e instanceof ValidationError && re.test(e.message), String(re));
});
