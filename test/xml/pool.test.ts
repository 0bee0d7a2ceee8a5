import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { buildPool, parsePool, poolDef, readPool, validatePool, withPoolDefaults, type PoolDef, type PoolInput } from '../../src/xml/pool.js';
import { parseXml } from '../../src/xml/codec.js';
import { rng } from '../config/random.js';
import { randomPool } from './gen.js';
import { validateAll } from './schema.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/xml/in/${name}`, import.meta.url), 'utf8');

// ../shared/docs/seed-workflow.md §3, exactly.
const SEED_POOL = `<pool type="iscsi">
  <name>lun1</name>
  <source>
    <host name="192.168.122.1" />
    <device path="iqn.2001-04.org.ultimana:storage.disk1"/>
  </source>
  <target><path>/dev/disk/by-path</path></target>
</pool>`;

const seedDef: PoolDef = {
  type: 'iscsi',
  name: 'lun1',
  hosts: [{ name: '192.168.122.1' }],
  device: 'iqn.2001-04.org.ultimana:storage.disk1',
  targetPath: '/dev/disk/by-path',
};

test("the seed page's pool parses, builds back equal, and the build passes libvirt's schema", async () => {
  assert.deepEqual(parsePool(SEED_POOL), seedDef);
  const built = buildPool(seedDef);
  assert.deepEqual(parsePool(built), seedDef);
  await validateAll([SEED_POOL, built], 'storagepool');
});

test('real pool-dumpxml output: a running iscsi-direct pool with sizes, and an iscsi pool with CHAP', () => {
  assert.deepEqual(parsePool(fixture('pool-iscsi-direct-running.xml')), {
    type: 'iscsi-direct',
    name: 'vit-cap-direct',
    uuid: '1f5b60c3-6139-4648-b774-0da0202015c4',
    capacity: 67108352,
    allocation: 67108352,
    available: 0,
    hosts: [{ name: '127.0.0.1', port: 48308 }],
    device: 'iqn.2024-01.dev.virt-iscsi:capture',
    initiator: 'iqn.2024-01.dev.virt-iscsi:capture-initiator',
  });
  const chap = parsePool(fixture('pool-iscsi-chap.xml'));
  assert.equal(chap.type, 'iscsi');
  assert.deepEqual(chap.auth, { username: 'vituser', secret: { usage: 'vit-cap-chap' } });
  assert.equal(chap.type === 'iscsi' && chap.targetPath, '/dev/disk/by-path');
});

test('sizes in any libvirt unit are read as bytes', () => {
  const withSize = (capacity: string) =>
    parsePool(`<pool type='iscsi-direct'><name>p</name>${capacity}<source><host name='h'/><device path='iqn.2001-04.com.example:a'/><initiator><iqn name='iqn.2001-04.com.example:i'/></initiator></source></pool>`).capacity;
  assert.equal(withSize("<capacity unit='bytes'>512</capacity>"), 512);
  assert.equal(withSize('<capacity>512</capacity>'), 512);
  assert.equal(withSize("<capacity unit='b'>7</capacity>"), 7);
  assert.equal(withSize("<capacity unit='KiB'>4</capacity>"), 4096);
  assert.equal(withSize("<capacity unit='k'>4</capacity>"), 4096);
  assert.equal(withSize("<capacity unit='KB'>4</capacity>"), 4000);
  assert.equal(withSize("<capacity unit='MiB'>2</capacity>"), 2 * 1024 ** 2);
  assert.equal(withSize("<capacity unit='G'>3</capacity>"), 3 * 1024 ** 3);
  assert.equal(withSize("<capacity unit='TB'>1</capacity>"), 1e12);
  assert.throws(() => withSize("<capacity unit='parsecs'>1</capacity>"), (e: unknown) => e instanceof ValidationError && e.message.includes('"parsecs"'));
  assert.throws(() => withSize("<capacity unit='bytes'>0x10</capacity>"), (e: unknown) => e instanceof ValidationError && e.message.includes('"0x10"'));
  assert.throws(() => withSize("<capacity unit='E'>9999</capacity>"), (e: unknown) => e instanceof ValidationError && e.message.includes('too large'));
});

test('parse, fill defaults, validate are separate steps: an iscsi pool gets /dev/disk/by-path', () => {
  const doc = "<pool type='iscsi'><name>p</name><source><host name='h'/><device path='IQN.2001-04.com.Example:A'/></source></pool>";
  const read = readPool(parseXml(doc, ['host']));
  assert.deepEqual(read, { type: 'iscsi', name: 'p', hosts: [{ name: 'h' }], device: 'IQN.2001-04.com.Example:A' });
  const filled = withPoolDefaults(read);
  assert.equal(filled.targetPath, '/dev/disk/by-path');
  // validation normalises the IQN to lower case
  assert.deepEqual(validatePool(filled), { type: 'iscsi', name: 'p', hosts: [{ name: 'h' }], device: 'iqn.2001-04.com.example:a', targetPath: '/dev/disk/by-path' });
  // iscsi-direct has no target path to default
  assert.equal(withPoolDefaults({ type: 'iscsi-direct' }).targetPath, undefined);
});

test('per-type requirements: iscsi-direct needs an initiator and has no target path; both take exactly one host', () => {
  const base: PoolInput = { type: 'iscsi-direct', name: 'p', hosts: [{ name: '127.0.0.1' }], device: 'iqn.2001-04.com.example:t', initiator: 'iqn.2001-04.com.example:i' };
  assert.equal(poolDef(base).type, 'iscsi-direct');
  const refuses = (p: PoolInput, field: string, words: string) =>
    assert.throws(() => poolDef(p), (e: unknown) => e instanceof ValidationError && e.field === field && e.message.includes(words), words);
  refuses({ ...base, initiator: undefined }, 'initiator', 'needs an initiator IQN');
  refuses({ ...base, targetPath: '/dev/disk/by-path' }, 'targetPath', 'iscsi-direct has no target path');
  refuses({ ...base, hosts: [] }, 'host', 'exactly one source host; got 0');
  refuses({ ...base, type: 'iscsi', hosts: [{ name: 'a' }, { name: 'b' }] }, 'host', 'exactly one source host; got 2');
  // the iscsi type makes the initiator optional
  assert.equal(poolDef({ ...base, type: 'iscsi', initiator: undefined }).type, 'iscsi');
  // the type attribute comes from the variant
  assert.match(buildPool(poolDef(base)), /^<pool type="iscsi-direct">/);
  assert.match(buildPool(poolDef({ ...base, type: 'iscsi' })), /^<pool type="iscsi">[^]*<target>\s*<path>\/dev\/disk\/by-path<\/path>/);
});

test('bad values are refused with one line naming the value', () => {
  const base: PoolDef = { type: 'iscsi', name: 'p', hosts: [{ name: '192.0.2.1', port: 3260 }], device: 'iqn.2001-04.com.example:t', targetPath: '/dev/disk/by-path' };
  const cases: Array<[PoolDef, string]> = [
    [{ ...base, name: 'a/b' }, 'pool name "a/b"'],
    [{ ...base, name: 'a\nb' }, 'pool name "a\\nb" contains a control character'],
    [{ ...base, name: ' p' }, 'pool name " p" starts or ends with whitespace'],
    [{ ...base, name: '' }, 'pool name is missing'],
    [{ ...base, uuid: 'not-a-uuid' }, 'pool uuid "not-a-uuid"'],
    [{ ...base, device: 'iqn.2001-13.com.example:t' }, 'pool target "iqn.2001-13.com.example:t" is not a valid iSCSI name'],
    [{ ...base, initiator: 'iqn.x' }, 'pool initiator "iqn.x"'],
    [{ ...base, hosts: [{ name: 'bad host' }] }, 'pool host "bad host"'],
    [{ ...base, hosts: [{ name: '[fe80::1]' }] }, 'pool host "[fe80::1]"'],
    [{ ...base, hosts: [{ name: 'h', port: 0 }] }, 'pool host port 0'],
    [{ ...base, hosts: [{ name: 'h', port: 65536 }] }, 'pool host port 65536'],
    [{ ...base, targetPath: 'dev/disk' }, 'pool target path "dev/disk"'],
    [{ ...base, auth: { username: 'a b', secret: { usage: 'x' } } }, 'pool CHAP user "a b"'],
    [{ ...base, auth: { username: 'u', secret: { usage: 'x/y' } } }, 'pool CHAP secret usage "x/y"'],
    [{ ...base, auth: { username: 'u', secret: { uuid: '1234' } } }, 'pool CHAP secret uuid "1234"'],
    [{ ...base, capacity: -1 }, 'pool capacity -1'],
  ];
  for (const [p, words] of cases) {
    assert.throws(
      () => buildPool(p),
      (e: unknown) => e instanceof ValidationError && e.message.includes(words) && !e.message.includes('\n'),
      words,
    );
  }
});

test('documents that are not iscsi pools are refused', () => {
  assert.throws(() => parsePool("<pool type='dir'><name>d</name></pool>"), /pool type "dir" is not one of iscsi, iscsi-direct/);
  assert.throws(() => parsePool('<volume/>'), /no <pool> element/);
  assert.throws(() => parsePool('<pool type="iscsi"><name>x</name'), /not well-formed XML/);
  assert.throws(
    () => parsePool("<pool type='iscsi'><name>p</name><source><host name='h'/><device path='iqn.2001-04.com.example:a'/><auth type='ceph' username='u'><secret usage='s'/></auth></source></pool>"),
    /pool auth type "ceph" is not chap/,
  );
  assert.throws(
    () => parsePool("<pool type='iscsi'><name>p</name><source><host name='h'/><device path='iqn.2001-04.com.example:a'/><auth type='chap' username='u'><secret/></auth></source></pool>"),
    /pool CHAP secret has neither a usage nor a uuid/,
  );
});

test('hostile names survive escaping and parse back equal', () => {
  const p: PoolDef = { ...seedDef, name: `it's "<lun1>" & ü😀`, auth: { username: 'u', secret: { usage: `a'"<>&b` } }, targetPath: `/srv/<x>/"y"/&'z'` };
  const xml = buildPool(p);
  assert.ok(xml.includes('&lt;lun1&gt;') && xml.includes('&amp;') && !xml.includes('"<lun1>"'), xml);
  assert.deepEqual(parsePool(xml), p);
});

test('round trip: parse(build(x)) deep-equals x for 64 seeded pools, and each passes the libvirt schema', async () => {
  const r = rng(20240101);
  const built: string[] = [];
  for (let i = 0; i < 64; i++) {
    const p = randomPool(r);
    const xml = buildPool(p);
    assert.deepEqual(parsePool(xml), p, `case ${i}:\n${xml}`);
    assert.equal(buildPool(parsePool(xml)), xml);
    built.push(xml);
  }
  await validateAll(built, 'storagepool');
});
