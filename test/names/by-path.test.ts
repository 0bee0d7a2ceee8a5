import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { BY_PATH_DIR, byPathDevice, byPathFor, byPathName, parseByPath } from '../../src/names/by-path.js';
import { parsePortal } from '../../src/names/portal.js';

test("the seed page's by-path names build from their parts and parse back", () => {
  const seed: Array<[string, { address: string; port: number; iqn: string; lun: number }]> = [
    ['ip-192.168.122.1:3260-iscsi-iqn.2001-04.org.ultimana:storage.disk1-lun-0', { address: '192.168.122.1', port: 3260, iqn: 'iqn.2001-04.org.ultimana:storage.disk1', lun: 0 }],
    ['ip-10.68.99.75:3260-iscsi-iqn.test:test-lun-0', { address: '10.68.99.75', port: 3260, iqn: 'iqn.test:test', lun: 0 }],
  ];
  // the first is a valid name; the second's "iqn.test" has no date, so it is refused both ways
  const [first, second] = seed;
  assert.equal(byPathName(first![1]), first![0]);
  assert.deepEqual(parseByPath(first![0]), first![1]);
  assert.deepEqual(parseByPath(`${BY_PATH_DIR}/${first![0]}`), first![1]);
  assert.equal(byPathDevice(first![1]), `/dev/disk/by-path/${first![0]}`);
  assert.equal(parseByPath(second![0]), undefined);
  assert.throws(() => byPathName(second![1]), (e: unknown) => e instanceof ValidationError && e.message.includes('"iqn.test:test"'));
});

test('IPv6 portals appear unbracketed, as udev writes them, and parse back', () => {
  const id = { address: 'fe80::1', port: 3260, iqn: 'iqn.2001-04.com.example:disk', lun: 2 };
  const name = 'ip-fe80::1:3260-iscsi-iqn.2001-04.com.example:disk-lun-2';
  assert.equal(byPathName(id), name);
  assert.deepEqual(parseByPath(name), id);
  const v6 = { address: '2001:db8::3260:1', port: 13260, iqn: 'iqn.2001-04.com.example:x', lun: 0 };
  assert.deepEqual(parseByPath(byPathName(v6)), v6);
  assert.equal(byPathFor(parsePortal('[fe80::1]:3260'), 'iqn.2001-04.com.example:disk', 2), `/dev/disk/by-path/${name}`);
});

test('a target name holding "-iscsi-" or "-lun-" still parses', () => {
  const id = { address: '192.0.2.1', port: 3260, iqn: 'iqn.2001-04.com.example:1-iscsi-x-lun-3', lun: 7 };
  assert.equal(byPathName(id), 'ip-192.0.2.1:3260-iscsi-iqn.2001-04.com.example:1-iscsi-x-lun-3-lun-7');
  assert.deepEqual(parseByPath(byPathName(id)), id);
});

test('target names are normalised to lower case both ways', () => {
  assert.equal(byPathName({ address: '192.0.2.1', port: 3260, iqn: 'IQN.2001-04.COM.EXAMPLE:Disk', lun: 1 }), 'ip-192.0.2.1:3260-iscsi-iqn.2001-04.com.example:disk-lun-1');
  assert.equal(parseByPath('ip-192.0.2.1:3260-iscsi-IQN.2001-04.COM.EXAMPLE:Disk-lun-1')?.iqn, 'iqn.2001-04.com.example:disk');
});

test('by-path names need an IP address, not a host name (resolve first)', () => {
  assert.throws(
    () => byPathFor(parsePortal('storage.example.com'), 'iqn.2001-04.com.example:disk', 1),
    (e: unknown) => e instanceof ValidationError && e.field === 'portal' && e.message.includes('"storage.example.com" is not one (resolve it first)'),
  );
});

test('bad LUNs and ports are refused', () => {
  const base = { address: '192.0.2.1', port: 3260, iqn: 'iqn.2001-04.com.example:disk', lun: 0 };
  for (const lun of [-1, 65536, 1.5, Number.NaN]) assert.throws(() => byPathName({ ...base, lun }), (e: unknown) => e instanceof ValidationError && e.field === 'lun', String(lun));
  for (const port of [0, 65536, 3260.5, Number.NaN]) assert.throws(() => byPathName({ ...base, port }), (e: unknown) => e instanceof ValidationError && e.field === 'port', String(port));
  assert.equal(byPathName({ ...base, lun: 65535, port: 65535 }), 'ip-192.0.2.1:65535-iscsi-iqn.2001-04.com.example:disk-lun-65535');
});

test('names that are not an iSCSI LUN path give undefined', () => {
  for (const name of [
    'pci-0000:00:1f.2-ata-1',
    'pci-0000:00:19.0-ip-192.0.2.1:3260-iscsi-iqn.2001-04.com.example:disk-lun-0', // offload transport prefix
    'ip-192.0.2.1:3260-iscsi-iqn.2001-04.com.example:disk-lun-0-part1',
    'ip-storage.example.com:3260-iscsi-iqn.2001-04.com.example:disk-lun-0',
    'ip-[fe80::1]:3260-iscsi-iqn.2001-04.com.example:disk-lun-0',
    'ip-192.0.2.1:0-iscsi-iqn.2001-04.com.example:disk-lun-0',
    'ip-192.0.2.1:3260-iscsi-iqn.2001-04.com.example:disk-lun-99999',
    'ip-192.0.2.1:3260-iscsi-not-a-name-lun-0',
    '/dev/sdb',
    '',
  ]) {
    assert.equal(parseByPath(name), undefined, name);
  }
});
