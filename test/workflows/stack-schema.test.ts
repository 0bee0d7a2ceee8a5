// schema/stack.schema.json: the committed file is what scripts/gen-schema.ts makes from the
// key tables, it is a valid draft 2020-12 schema (ajv, strict), and it agrees with the
// reader on a corpus: every example and template, valid files using every key, and
// invalid files that both refuse. What only the reader can tell (it needs the file's
// place, other entries, or a network address's meaning) is listed with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { ValidationError } from '../../src/errors.js';
import { parseStack } from '../../src/workflows/stack-file.js';
import { EXPORT_KEYS, POOL_KEYS, stackSchema } from '../../src/workflows/stack-keys.js';
import { SCHEMA_FILE, schemaText } from '../../scripts/gen-schema.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FILE = '/srv/stacks/corpus.yaml';

// strictRequired off: `required` inside if/not/then names properties declared elsewhere, as JSON Schema allows.
const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true, allowUnionTypes: true });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as object);

function schemaSays(text: string): string | undefined {
  const data: unknown = parseYaml(text, { version: '1.2', schema: 'core' });
  return validate(data) ? undefined : ajv.errorsText(validate.errors);
}

function readerSays(text: string): string | undefined {
  try {
    parseStack(text, FILE);
    return undefined;
  } catch (e) {
    if (e instanceof ValidationError) return e.message;
    throw e;
  }
}

const noVm = 'stack: corpus\nexports:\n  - image: /srv/a.img\n';
const head = `${noVm}    vm: v\n`;

const VALID: string[] = [
  'stack: empty\n',
  'stack: nulls\ndefaults:\nexports:\npools:\n',
  `${head}`,
  'stack: d\ndefaults: {vm: web1}\nexports:\n  - image: /a.img\n  - image: /b.iso\n',
  [
    'stack: every-export-key',
    'defaults:',
    '  vm: web1',
    '  storage: ssh://root@stor1:2222',
    '  hypervisors: [local, "ssh://admin@[2001:db8::2]"]',
    '  connect: qemu:///system',
    '  mode: multipath',
    '  portals: [192.0.2.10, "[2001:db8::10]:3261", stor1.example.com:3262]',
    '  min-paths: 2',
    '  chap: true',
    '  persist: false',
    '  backend: tgt',
    '  control-port: 3261',
    '  conf-dir: /etc/tgt/conf.d',
    '  host-records: /var/lib/virt-iscsi/exports',
    '  replacement-timeout: 15',
    '  noop-out-interval: 5',
    '  noop-out-timeout: 5',
    'exports:',
    '  - image: /srv/a.img',
    '    name: a.1',
    '    readonly: true',
    '    cdrom: false',
    '  - image: rbd:vms/web1_root.v2',
    '    mode: rbd',
    '    hypervisor: ssh://kvm9',
    '    ceph-conf: /etc/ceph/ceph.conf',
    '    ceph-id: libvirt',
    '  - image: /srv/c.iso',
    '    portal: fe80::1',
    '    min-paths: 1',
  ].join('\n'),
  [
    'stack: every-pool-key',
    'pools:',
    '  - name: nas.vol1+x',
    '    hypervisor: ssh://root@kvm1',
    '    connect: qemu:///system',
    '    type: iscsi-direct',
    '    portal: 192.0.2.10:3260',
    '    target: iqn.2004-04.com.example:nas.vol1',
    '    initiator: eui.02004567A425678D',
    '    chap-user: kvm1',
    '    chap-secret-file: nas.secret',
    '    autostart: false',
    '  - name: p2',
    '    portal: "[::1]"',
    '    target: naa.52004567BA64678D',
  ].join('\n'),
  '{"stack": "json", "exports": [{"image": "/a.img", "vm": "v", "hypervisors": ["local"]}]}',
];

/** Both refuse these. */
const INVALID: string[] = [
  'exports: []\n',
  'stack: Bad_Name\n',
  'stack: a\nextra: 1\n',
  'stack: a\nexports: {}\n',
  'stack: a\ndefaults: []\n',
  'stack: a\ndefaults:\n  image: /a.img\n',
  'stack: a\ndefaults:\n  name: x\n',
  'stack: a\ndefaults:\n  colour: blue\n',
  'stack: a\nexports:\n  - vm: v\n',
  'stack: a\nexports:\n  - image: /a.img\n',
  'stack: a\nexports:\n  - /a.img\n',
  `${head}    moed: pool\n`,
  `${head}    mode: floppy\n`,
  `${head}    readonly: "yes"\n`,
  `${head}    readonly: yes\n`,
  `${head}    cdrom: true\n    readonly: false\n`,
  `${head}    control-port: 70000\n`,
  `${head}    control-port: "3261"\n`,
  `${head}    storage: ftp://x\n`,
  `${head}    storage: ssh://host:99999\n`,
  `${head}    hypervisor: "ssh://bad user@h"\n`,
  `${head}    connect: xen+ssh://kvm1/system\n`,
  `${head}    connect: qemu+ext:///system?command=/bin/sh\n`,
  `${head}    portal: 256.1.1.1\n`,
  `${head}    portal: "host:0"\n`,
  `${head}    portal: "[not-v6]:3260"\n`,
  `${head}    name: Bad_Name\n`,
  `${head}    name: ""\n`,
  `${noVm}    vm: ""\n`,
  `${noVm}    vm: "a\\tb"\n`,
  `${noVm}    vm: [a]\n`,
  `${noVm}    vm:\n`,
  `${head}    hypervisor: local\n    hypervisors: [local]\n`,
  `${head}    portal: a\n    portals: [b]\n`,
  `${head}    hypervisors: []\n`,
  `${head}    hypervisors: local\n`,
  `${head}    hypervisors: [local, local]\n`,
  `${head}    portals: [a, a]\n`,
  `${head}    portals: [a, 999.0.0.1]\n`,
  `${head}    min-paths: 0\n`,
  `${head}    min-paths: 65\n`,
  `${head}    replacement-timeout: 0\n`,
  `${head}    noop-out-interval: 2.5\n`,
  `${head}    noop-out-timeout: -5\n`,
  `${head}    mode: rbd\n`,
  `${head}    ceph-id: "client admin"\n`,
  'stack: a\nexports:\n  - image: rbd:vms/a@snap\n    vm: v\n',
  'stack: a\nexports:\n  - image: rbd:vms\n    vm: v\n',
  'stack: a\nexports:\n  - image: rbd:../x\n    vm: v\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n',
  'stack: a\npools:\n  - name: p\n    target: iqn.2004-04.com.example:x\n',
  'stack: a\npools:\n  - portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.bad\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-13.com.example:x\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: eui.123\n',
  'stack: a\npools:\n  - name: "p q"\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    type: rbd\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    type: iscsi-direct\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    chap-user: u\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    chap-secret-file: f\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    autostart: 1\n',
  'stack: a\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    image: /a.img\n',
];

/** The reader refuses these, the schema cannot: each needs what a schema does not see. */
const READER_ONLY: Array<[string, string]> = [
  [`${head}  - image: /b/a.img\n    vm: w\n`, 'two exports with one name (the second derived from its image)'],
  [`${head}  - image: /srv/a.img\n    vm: w\n    name: b\n`, 'one image exported twice'],
  ['stack: a\nexports:\n  - image: a.img\n    vm: v\n    storage: ssh://s\n', 'a relative path means the stack file\'s directory, which only a local host has'],
  ['stack: a\nexports:\n  - image: /a.iso\n    vm: v\n    readonly: false\n', 'an .iso image is a CD-ROM unless cdrom: false says otherwise'],
  [`${head}    portals: [a, b]\n    min-paths: 3\n`, 'min-paths counts the portals given'],
  [`${head}    portal: "fe80::1:3261"\n`, 'a valid IPv6 address that reads as address:port'],
  [`${head}    ceph-conf: /etc/ceph/ceph.conf\n`, 'ceph-conf on an export whose image is not rbd: (in defaults it is fine)'],
  ['stack: a\nexports:\n  - image: "/x/###.img"\n    vm: v\n', 'the export name derived from the image file name is not a name'],
  ['stack: a\npools:\n  - {name: p, portal: a, target: "iqn.2004-04.com.example:x"}\n  - {name: p, portal: b, target: "iqn.2004-04.com.example:y"}\n', 'one pool declared twice'],
];

test('schema: the committed schema/stack.schema.json is the one scripts/gen-schema.ts makes from the key tables', () => {
  assert.equal(readFileSync(SCHEMA_FILE, 'utf8'), schemaText(), 'run: node --import tsx scripts/gen-schema.ts');
  const schema = stackSchema() as { $defs: { export: { properties: object }; pool: { properties: object } } };
  assert.deepEqual(Object.keys(schema.$defs.export.properties), Object.keys(EXPORT_KEYS), 'every export key, from the table');
  assert.deepEqual(Object.keys(schema.$defs.pool.properties), Object.keys(POOL_KEYS), 'every pool key, from the table');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
  assert.ok(pkg.files.includes('schema'), 'schema/ is in the package');
});

test('schema and reader agree: valid files, examples and templates pass both; invalid files fail both', () => {
  const files = ['examples', 'templates'].flatMap((d) => {
    let names: string[] = [];
    try {
      names = readdirSync(join(root, d));
    } catch {
      return [];
    }
    return names.filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => join(d, f));
  });
  assert.ok(files.some((f) => f.startsWith('examples/')), 'the examples are in the corpus');
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8');
    assert.match(text, /^# yaml-language-server: \$schema=\.\.\/schema\/stack\.schema\.json\n/, `${f} names the schema for editors`);
    assert.equal(schemaSays(text), undefined, `${f}: schema`);
    assert.equal(readerSays(text), undefined, `${f}: reader`);
  }
  for (const text of VALID) {
    assert.equal(schemaSays(text), undefined, `schema refuses a valid file:\n${text}`);
    assert.equal(readerSays(text), undefined, `reader refuses a valid file:\n${text}`);
  }
  for (const text of INVALID) {
    assert.notEqual(schemaSays(text), undefined, `schema accepts an invalid file:\n${text}`);
    assert.notEqual(readerSays(text), undefined, `reader accepts an invalid file:\n${text}`);
  }
  for (const [text, why] of READER_ONLY) {
    assert.equal(schemaSays(text), undefined, `expected the schema to pass (${why}):\n${text}`);
    assert.notEqual(readerSays(text), undefined, `the reader must refuse (${why}):\n${text}`);
  }
});
