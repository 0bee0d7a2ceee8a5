// Golden pairs: test/fixtures/xml/in/NAME.xml (real virsh output) -> parse -> build ->
// test/fixtures/xml/out/NAME.xml. The kind is the name's first word. A domain is never
// built whole: its out file holds the device fragments the model gives back.
// After an intended change, regenerate with UPDATE_GOLDEN=1 and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { buildXml } from '../../src/xml/codec.js';
import { diskNode } from '../../src/xml/disk.js';
import { controllerNode, parseDomain } from '../../src/xml/domain.js';
import { buildPool, buildRbdPool, parsePool, parseRbdPool } from '../../src/xml/pool.js';
import { buildSecret, parseSecret } from '../../src/xml/secret.js';
import { validateAll, validateDisks } from './schema.js';

const dir = new URL('../fixtures/xml/', import.meta.url);

const KINDS = {
  pool: {
    rebuild: (xml: string) => buildPool(parsePool(xml)),
    same: (a: string, b: string) => assert.deepEqual(parsePool(a), parsePool(b)),
    validate: (xml: string) => validateAll([xml], 'storagepool'),
  },
  rbdpool: {
    rebuild: (xml: string) => buildRbdPool(parseRbdPool(xml)),
    same: (a: string, b: string) => assert.deepEqual(parseRbdPool(a), parseRbdPool(b)),
    validate: (xml: string) => validateAll([xml], 'storagepool'),
  },
  secret: {
    rebuild: (xml: string) => buildSecret(parseSecret(xml)),
    same: (a: string, b: string) => assert.deepEqual(parseSecret(a), parseSecret(b)),
    validate: (xml: string) => validateAll([xml], 'secret'),
  },
  domain: {
    rebuild: (xml: string) => {
      const d = parseDomain(xml);
      return buildXml({ devices: { disk: d.disks.map(diskNode), controller: d.controllers.map(controllerNode) } });
    },
    // the fragments carry the same disks, minus what only a running domain shows
    same: (a: string, b: string) => {
      const fragments = parseDomain(`<domain type='kvm'><name>x</name><uuid>00000000-0000-0000-0000-000000000000</uuid>${b}</domain>`);
      assert.deepEqual(fragments.disks, parseDomain(a).disks.map(({ liveAlias: _, ...disk }) => disk));
    },
    validate: (xml: string) => validateDisks([xml.replace(/^<devices>|<\/devices>\s*$/g, '')]),
  },
} as const;

const names = readdirSync(new URL('in/', dir)).filter((n) => n.endsWith('.xml')).sort();

test('there are golden inputs of every kind', () => {
  for (const kind of Object.keys(KINDS)) assert.ok(names.some((n) => n.startsWith(`${kind}-`)), kind);
});

for (const name of names) {
  test(`golden: in/${name} -> parse -> build -> out/${name}`, async () => {
    const kind = KINDS[name.split('-')[0] as keyof typeof KINDS];
    assert.ok(kind, `no kind for ${name}`);
    const input = readFileSync(new URL(`in/${name}`, dir), 'utf8');
    const out = kind.rebuild(input);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(new URL(`out/${name}`, dir), out);
    assert.equal(out, readFileSync(new URL(`out/${name}`, dir), 'utf8'));
    kind.same(input, out);
    // building is stable: the out file rebuilds to itself
    if (name.startsWith('domain-')) assert.equal(kind.rebuild(`<domain type='kvm'><name>x</name><uuid>00000000-0000-0000-0000-000000000000</uuid>${out}</domain>`), out);
    else assert.equal(kind.rebuild(out), out);
    await kind.validate(out);
  });
}
