// Property tests of what users type and write: iSCSI names, by-path names, portals, host
// URIs, libvirt URIs, sizes, export names and whole stack files. Random and near-valid
// input never crashes a reader: it returns a value that reads back the same, or throws
// our ValidationError in one line (for stack files: FILE:LINE:COL first). The seed is
// printed; FC_SEED=N (and FC_PATH) replays a failure, FC_RUNS=N sets the number of cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ValidationError } from '../../src/errors.js';
import { byPathName, parseByPath } from '../../src/names/by-path.js';
import { checkIscsiName, parseIscsiName } from '../../src/names/iscsi-name.js';
import { checkLibvirtUri } from '../../src/names/libvirt-uri.js';
import { formatPortal, parsePortal } from '../../src/names/portal.js';
import { formatHostUri, parseHostUri } from '../../src/runner/host-uri.js';
import { parseSize, SECTOR } from '../../src/storage/size.js';
import { checkExportName } from '../../src/workflows/names.js';
import { parseStack } from '../../src/workflows/stack-file.js';
import { EXPORT_KEYS, POOL_KEYS } from '../../src/workflows/stack-keys.js';
import { mutated, params, returnsOrTyped, SEED } from './fuzz.js';

/** Strings near the valid ones: real examples with random edits, and random text. */
const near = (examples: string[]): fc.Arbitrary<string> =>
  fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...examples) }, { weight: 5, arbitrary: mutated(examples) }, { weight: 2, arbitrary: fc.string({ maxLength: 60 }) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) });

const hex = (n: number): fc.Arbitrary<string> => fc.array(fc.constantFrom(...'0123456789abcdefABCDEF'), { minLength: n, maxLength: n }).map((a) => a.join(''));
const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?$/);
const iqn = fc
  .tuple(fc.integer({ min: 1990, max: 2099 }), fc.integer({ min: 1, max: 12 }), fc.array(label, { minLength: 1, maxLength: 4 }), fc.option(fc.stringMatching(/^[a-z0-9.:-]{0,20}[a-z0-9]$/)))
  .map(([y, m, labels, id]) => `iqn.${y}-${String(m).padStart(2, '0')}.${labels.join('.')}${id === null ? '' : `:${id}`}`);
const anyName = fc.oneof(iqn, hex(16).map((h) => `eui.${h}`), fc.oneof(hex(16), hex(32)).map((h) => `naa.${h}`));
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const port = fc.integer({ min: 1, max: 65535 });

const typed = (what: string, fn: () => unknown): void => returnsOrTyped(what, fn, (e) => assert.ok(e instanceof ValidationError, `${what}: ${e.constructor.name}`));

test(`iSCSI names: checked without a crash; valid ones normalise to themselves (seed ${SEED})`, (t) => {
  t.diagnostic(`fast-check seed ${SEED}`);
  fc.assert(
    fc.property(fc.oneof(anyName, near(['iqn.2001-04.com.example:storage.disk2.sys1.xyz', 'eui.02004567A425678D', 'naa.52004567BA64678D'])), (raw) => {
      const r = checkIscsiName(raw);
      typed('parseIscsiName', () => parseIscsiName(raw));
      if (r.ok) {
        assert.equal(r.name, raw.toLowerCase());
        assert.ok(Buffer.byteLength(r.name) <= 223);
        assert.deepEqual(checkIscsiName(r.name), r);
      }
    }),
    params(),
  );
  fc.assert(fc.property(anyName, (n) => checkIscsiName(n).ok), params());
});

test(`by-path names: read back what byPathName makes; anything else is undefined, never a crash (seed ${SEED})`, () => {
  fc.assert(
    fc.property(fc.oneof(ipv4, ipv6), port, iqn, fc.integer({ min: 0, max: 16383 }), (address, p, name, lun) => {
      const id = { address, port: p, iqn: name, lun };
      assert.deepEqual(parseByPath(byPathName(id)), id);
    }),
    params(),
  );
  fc.assert(fc.property(near(['ip-192.0.2.1:3260-iscsi-iqn.2001-04.com.example:disk-lun-1', '/dev/disk/by-path/ip-[fe80::1]:3260-iscsi-iqn.2001-04.com.example:d-lun-0']), (s) => typed('parseByPath', () => parseByPath(s))), params());
});

test(`portals: parsed or refused in one line; what is parsed formats and parses back the same (seed ${SEED})`, () => {
  const valid = fc.oneof(
    fc.tuple(ipv4, fc.option(port)).map(([h, p]) => (p === null ? h : `${h}:${p}`)),
    fc.tuple(ipv6, fc.option(port)).map(([h, p]) => (p === null ? `[${h}]` : `[${h}]:${p}`)),
    fc.tuple(fc.domain(), port).map(([h, p]) => `${h}:${p}`),
  );
  fc.assert(
    fc.property(fc.oneof(valid, near(['192.0.2.1:3260', '[fe80::1]:3261', 'stor1.example.com', 'fe80::1:3261', '2001:db8::10'])), (text) => {
      typed('parsePortal', () => {
        const p = parsePortal(text);
        assert.deepEqual(parsePortal(formatPortal(p)), p);
      });
    }),
    params(),
  );
  // Bracketed IPv6 with a port always reads as that address and port.
  fc.assert(fc.property(ipv6, port, (h, p) => assert.deepEqual(parsePortal(`[${h}]:${p}`), { host: h, port: p })), params());
});

test(`host URIs and libvirt URIs: parsed or refused in one line; host URIs format back the same (seed ${SEED})`, () => {
  const valid = fc
    .tuple(fc.option(fc.stringMatching(/^[a-z_][a-z0-9_.-]{0,10}$/)), fc.oneof(fc.domain(), ipv4, ipv6.map((h) => `[${h}]`)), fc.option(port))
    .map(([u, h, p]) => `ssh://${u === null ? '' : `${u}@`}${h}${p === null ? '' : `:${p}`}`);
  fc.assert(
    fc.property(fc.oneof(valid, near(['local', 'ssh://root@stor1:2222', 'ssh://[::1]', 'ssh://bad user@x'])), (uri) => {
      typed('parseHostUri', () => {
        const spec = parseHostUri(uri);
        assert.deepEqual(parseHostUri(formatHostUri(spec)), spec);
      });
    }),
    params(),
  );
  fc.assert(fc.property(near(['qemu:///system', 'qemu:///session', 'qemu+ext:///system?command=/bin/sh', 'qemu+ssh://h/system']), (uri) => typed('checkLibvirtUri', () => checkLibvirtUri(uri))), params());
});

test(`sizes and export names: a whole, positive multiple of 512 bytes, or one line why not (seed ${SEED})`, () => {
  fc.assert(
    fc.property(near(['10G', '512M', '1.5T', '4k', '2GiB', '1048576', '0.5K']), (text) => {
      typed('parseSize', () => {
        const n = parseSize(text);
        assert.ok(Number.isSafeInteger(n) && n > 0 && n % SECTOR === 0, `${text} -> ${n}`);
      });
    }),
    params(),
  );
  fc.assert(fc.property(near(['web1-data', 'debian-12', 'a', 'x'.repeat(48)]), (name) => typed('checkExportName', () => checkExportName(name))), params());
});

// Stack files: documents built from the key tables with values that are valid, nearly
// valid or of the wrong kind, written as YAML or JSON, then edited at random as text.
const values = fc.oneof(
  fc.constantFrom('local', 'ssh://root@stor1', 'qemu:///system', 'qemu+ext:///x?command=y', '192.0.2.1:3260', '[fe80::1]:3261', 'fe80::1:3261', 'direct', 'multipath', 'rbd', 'tgt', '/srv/a.img', 'rbd:vms/a', 'rbd:vms/a@s', 'a.iso', 'web1', 'iqn.2004-04.com.example:x', 'Bad_Name', '', ' ', 'yes'),
  fc.boolean(),
  fc.integer({ min: -5, max: 70000 }),
  fc.double(),
  fc.constant(null),
  fc.array(fc.constantFrom('local', 'ssh://kvm1', '192.0.2.1', '192.0.2.2:3261', 'x'), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
);
const entry = (keys: string[]): fc.Arbitrary<Record<string, unknown>> => fc.dictionary(fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...keys) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }), values, { maxKeys: 8 });
const stackDoc = fc.record(
  {
    stack: fc.oneof(fc.constantFrom('lab', 'a.b-c'), values),
    defaults: entry(Object.keys(EXPORT_KEYS)),
    exports: fc.array(fc.oneof({ weight: 9, arbitrary: entry(Object.keys(EXPORT_KEYS)) }, { weight: 1, arbitrary: values }), { maxLength: 5 }),
    pools: fc.array(entry(Object.keys(POOL_KEYS)), { maxLength: 3 }),
  },
  { requiredKeys: ['stack'] },
);
const stackText = fc.tuple(stackDoc, fc.boolean()).map(([doc, json]) => (json ? JSON.stringify(doc, null, 1) : stringify(doc)));

test(`stack files: random and edited documents are read, or refused in one line at FILE:LINE:COL (seed ${SEED})`, () => {
  const FILE = '/srv/stacks/fuzz.yaml';
  const checked = (text: string): void =>
    returnsOrTyped(
      'parseStack',
      () => parseStack(text, FILE),
      (e) => {
        assert.ok(e instanceof ValidationError, e.constructor.name);
        assert.match(e.message, /^\/srv\/stacks\/fuzz\.yaml:\d+:\d+: /);
      },
    );
  const runs = Math.max(1, Math.floor(params().numRuns! / 2));
  fc.assert(fc.property(stackText, checked), params(runs));
  fc.assert(
    fc.property(
      stackText.chain((t) => mutated([t])),
      checked,
    ),
    params(runs),
  );
});
