// The domain a migration sends, with a network disk's initiator name changed to the
// destination's: on a real `virsh dumpxml` capture, only that attribute differs, the rest
// (order, metadata with its namespace, other disks) reads back the same, and libvirt's own
// schema (virt-xml-validate) takes the result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { parseDomain } from '../../src/xml/domain.js';
import { withDiskInitiators } from '../../src/xml/migrate-xml.js';
import { validateAll } from './schema.js';

const running = readFileSync(new URL('../fixtures/xml/in/domain-running.xml', import.meta.url), 'utf8');
const FROM = 'iqn.2024-01.dev.virt-iscsi:capture-initiator';
const TO = 'iqn.1993-08.org.debian:01:7fcc959f674';

test('the disk named by alias logs in as the destination; nothing else changes; libvirt schema-valid', async () => {
  const r = withDiskInitiators(running, new Map([['ua-lun1', TO]]));
  assert.deepEqual(r.changes, [{ alias: 'ua-lun1', from: FROM, to: TO }]);
  const before = parseDomain(running);
  const after = parseDomain(r.xml);
  assert.equal(after.disks[0]!.source.type === 'network' && after.disks[0]!.source.protocol === 'iscsi' ? after.disks[0]!.source.initiator : undefined, TO);
  const swap = (d: typeof before): unknown => ({ ...d, disks: d.disks.map((x, i) => (i === 0 ? { ...x, source: { ...x.source, initiator: 'X' } } : x)) });
  assert.deepEqual(swap(after), swap(before), 'every other field reads back the same');
  assert.match(r.xml, /<vi:exports xmlns:vi="https:\/\/virt-iscsi\.dev\/xmlns\/1">\s*<vi:export name="cap" dev="sda"\/>/, 'our metadata, namespace and all');
  // element order kept: the tags in document order are the same list
  const tags = (xml: string): string[] => [...xml.matchAll(/<([a-z][\w:-]*)/g)].map((m) => m[1]!);
  assert.deepEqual(tags(r.xml), tags(running));
  await validateAll([r.xml], 'domain');
});

test('no disk of that alias, or a disk without <initiator>, or the same name: the document comes back as it was', () => {
  for (const map of [new Map([['ua-other', TO]]), new Map([['scsi0-0-0-1', TO]]), new Map([['ua-lun1', FROM]])]) {
    const r = withDiskInitiators(running, map);
    assert.deepEqual(r.changes, []);
    assert.equal(r.xml, running);
  }
});

test('a destination initiator that is not an iSCSI name is refused before any XML is made', () => {
  assert.throws(() => withDiskInitiators(running, new Map([['ua-lun1', "iqn.x'/><evil/>"]])), (e: unknown) => e instanceof ValidationError && /destination initiator/.test(e.message));
  assert.throws(() => withDiskInitiators('<domain><devices>', new Map()), /not well-formed XML/);
});
