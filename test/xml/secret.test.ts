import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { parseXml } from '../../src/xml/codec.js';
import { buildSecret, iscsiChapSecret, parseSecret, readSecret, withSecretDefaults, type SecretDef } from '../../src/xml/secret.js';
import { rng } from '../config/random.js';
import { randomSecret } from './gen.js';
import { validateAll } from './schema.js';

test('real secret-dumpxml output parses', () => {
  const xml = readFileSync(new URL('../fixtures/xml/in/secret-iscsi.xml', import.meta.url), 'utf8');
  assert.deepEqual(parseSecret(xml), {
    ephemeral: false,
    private: true,
    uuid: '8b95b1f6-bedc-48a8-bfbf-58546192f4d2',
    description: 'CHAP for vit capture',
    usage: { type: 'iscsi', target: 'vit-cap-chap' },
  });
});

test('the CHAP secret helper makes a persistent, private secret', () => {
  const s = iscsiChapSecret({ usage: 'lun1-chap', description: 'CHAP for lun1' });
  assert.deepEqual(s, { ephemeral: false, private: true, description: 'CHAP for lun1', usage: { type: 'iscsi', target: 'lun1-chap' } });
  assert.equal(
    buildSecret(s),
    '<secret ephemeral="no" private="yes">\n  <description>CHAP for lun1</description>\n  <usage type="iscsi">\n    <target>lun1-chap</target>\n  </usage>\n</secret>\n',
  );
});

test("parse, fill defaults, validate: ephemeral and private default to libvirt's 'no'", () => {
  const doc = "<secret><usage type='iscsi'><target>t</target></usage></secret>";
  const read = readSecret(parseXml(doc));
  assert.deepEqual(read, { usage: { type: 'iscsi', target: 't' } });
  assert.deepEqual(withSecretDefaults(read), { ephemeral: false, private: false, usage: { type: 'iscsi', target: 't' } });
  assert.deepEqual(parseSecret(doc), { ephemeral: false, private: false, usage: { type: 'iscsi', target: 't' } });
});

test('bad secrets are refused with one line naming the value', () => {
  const base: SecretDef = { ephemeral: false, private: true, usage: { type: 'iscsi', target: 't' } };
  const cases: Array<[SecretDef, string]> = [
    [{ ...base, usage: { type: 'iscsi', target: 'a/b' } }, 'secret usage "a/b"'],
    [{ ...base, usage: { type: 'iscsi', target: '' } }, 'secret usage is missing'],
    [{ ...base, uuid: 'xyz' }, 'secret uuid "xyz"'],
    [{ ...base, description: 'two\nlines' }, 'secret description "two\\nlines" contains a control character'],
    [{ ...base, description: 'trailing ' }, 'starts or ends with whitespace'],
  ];
  for (const [s, words] of cases) assert.throws(() => buildSecret(s), (e: unknown) => e instanceof ValidationError && e.message.includes(words), words);
  assert.throws(() => parseSecret("<secret><usage type='volume'><volume>/v</volume></usage></secret>"), /usage type "volume" is not iscsi or ceph/);
  assert.throws(() => parseSecret("<secret ephemeral='maybe'><usage type='iscsi'><target>t</target></usage></secret>"), /secret ephemeral "maybe" is not one of yes, no/);
  assert.throws(() => parseSecret('<pool/>'), /no <secret> element/);
});

test('hostile usage names and descriptions survive escaping', () => {
  const s: SecretDef = { ephemeral: true, private: false, description: `"Tom's" <disk> & ü😀`, usage: { type: 'iscsi', target: `<a href="x">&amp;` } };
  const xml = buildSecret(s);
  assert.ok(xml.includes('&lt;disk&gt;') && xml.includes('&amp;amp;'), xml);
  assert.deepEqual(parseSecret(xml), s);
});

test('round trip: parse(build(x)) deep-equals x for 48 seeded secrets, and each passes the libvirt schema', async () => {
  const r = rng(77);
  const built: string[] = [];
  for (let i = 0; i < 48; i++) {
    const s = randomSecret(r);
    const xml = buildSecret(s);
    assert.deepEqual(parseSecret(xml), s, `case ${i}:\n${xml}`);
    built.push(xml);
  }
  await validateAll(built, 'secret');
});
