// rbd/ceph output parsers, references, client options and the failure table, on real
// captured output (test/fixtures/rbd).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../../src/errors.js';
import { RecordingRunner } from '../../../src/runner/recording.js';
import { cephArgv, checkCephClient, parseRbdBsOpts, qemuRbdFilename, rbdBsOpts } from '../../../src/storage/rbd/client.js';
import { parseCephKey, parseRbdInfo, parseRbdLs, parseRbdStatus } from '../../../src/storage/rbd/parse.js';
import { cephFailure, type CephFailure } from '../../../src/storage/rbd/rbd.js';
import { formatRbdRef, isRbdRef, parseRbdImageSpec, parseRbdRef, rbdImageSpec } from '../../../src/storage/rbd/ref.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/rbd/${name}`, import.meta.url), 'utf8');

test('rbd info, status and ls JSON parse into typed values', () => {
  assert.deepEqual(parseRbdInfo(fixture('info.json')), {
    name: 't1',
    id: '10153dff6d59',
    sizeBytes: 67108864,
    objectSizeBytes: 4194304,
    format: 2,
    features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'],
  });
  const watchers = parseRbdStatus(fixture('status-watched.json'));
  assert.equal(watchers.length, 1);
  assert.match(watchers[0]!.address, /^127\.0\.0\.1:0\/\d+$/);
  assert.ok(Number.isInteger(watchers[0]!.client) && watchers[0]!.client > 0);
  assert.deepEqual(parseRbdStatus(fixture('status-none.json')), []);
  assert.deepEqual(parseRbdLs(fixture('ls.json')), ['sz', 't1']);
  assert.equal(parseCephKey('AQAvsg9r9fjgFRAAp5XDZ8HC2u6dfaCJKGbHSg==\n', 'client.x'), 'AQAvsg9r9fjgFRAAp5XDZ8HC2u6dfaCJKGbHSg==');
});

test('parsers refuse output that is not what rbd prints, in one line', () => {
  const one = (f: () => unknown, re: RegExp): void =>
    assert.throws(f, (e: unknown) => e instanceof ValidationError && re.test(e.message) && !e.message.includes('\n'));
  one(() => parseRbdInfo('rbd: error\nmore'), /^rbd info printed "rbd: error", not JSON$/);
  one(() => parseRbdInfo('{"name":"x","id":"1","size":"64M","object_size":1,"format":2,"features":[]}'), /field "size" is "64M", not a number/);
  one(() => parseRbdInfo('[]'), /not a JSON object/);
  one(() => parseRbdStatus('{"watchers":{}}'), /field "watchers"/);
  one(() => parseRbdLs('{"images":[]}'), /not print a JSON list/);
  // A key is never echoed back.
  assert.throws(() => parseCephKey('Error: something secret-ish', 'client.x'), (e: unknown) => e instanceof ValidationError && !e.message.includes('secret-ish'));
});

test('rbd:POOL/IMAGE references: parsed, formatted, and every bad form refused in one line naming it', () => {
  assert.deepEqual(parseRbdRef('rbd:rbd/vm-1.disk_0'), { pool: 'rbd', image: 'vm-1.disk_0' });
  assert.equal(formatRbdRef({ pool: 'p', image: 'i' }), 'rbd:p/i');
  assert.equal(rbdImageSpec({ pool: 'p', image: 'i' }), 'p/i');
  assert.deepEqual(parseRbdImageSpec('p/i'), { pool: 'p', image: 'i' });
  assert.ok(isRbdRef('rbd:x/y') && !isRbdRef('/srv/rbd:x'));
  const cases: Array<[string, RegExp]> = [
    ['rbd:pool', /^RBD image "rbd:pool" has no '\/': expected rbd:POOL\/IMAGE$/],
    ['rbd:pool/img@snap', /names a snapshot \('@'\): expected rbd:POOL\/IMAGE/],
    ['rbd:a/b/c', /has 2 '\/': expected rbd:POOL\/IMAGE \(RBD namespaces are not supported\)/],
    ['rbd:/img', /^RBD image "rbd:\/img" has no pool name: expected rbd:POOL\/IMAGE$/],
    ['rbd:pool/', /has no image name/],
    ['rbd:po ol/x', /^RBD pool name "po ol" in "rbd:po ol\/x" is not allowed: expected letters/],
    ['rbd:p/x;reboot', /RBD image name "x;reboot"/],
    ['rbd:p/-x', /RBD image name "-x"/],
    ['rbd:p/a:id=admin', /RBD image name "a:id=admin"/],
    ['/srv/x.img', /does not start with "rbd:"/],
    [`rbd:p/${'x'.repeat(256)}`, /longer than 255 characters/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseRbdRef(text), (e: unknown) => e instanceof ValidationError && re.test(e.message) && !e.message.includes('\n'), text);
  }
});

test('Ceph client options: checked once, the same values in rbd argv, QEMU filenames and tgt bsopts', () => {
  const c = { conf: '/etc/ceph/ceph.conf', id: 'libvirt', keyring: '/etc/ceph/ceph.client.libvirt.keyring' };
  assert.deepEqual(cephArgv(c), ['--conf', c.conf, '--id', 'libvirt', '--keyring', c.keyring]);
  assert.deepEqual(cephArgv({}), []);
  assert.equal(qemuRbdFilename({ pool: 'rbd', image: 'vm1' }, c), `rbd:rbd/vm1:id=libvirt:conf=${c.conf}:keyring=${c.keyring}:client_mount_timeout=20`);
  assert.equal(rbdBsOpts({ conf: c.conf, id: 'libvirt' }), `conf=${c.conf};id=libvirt`);
  assert.equal(rbdBsOpts({}), undefined);
  assert.deepEqual(parseRbdBsOpts(`conf=${c.conf};id=libvirt`), { conf: c.conf, id: 'libvirt' });
  assert.throws(() => rbdBsOpts(c), /tgt's rbd backing store has no keyring option/);
  const bad: Array<[() => unknown, RegExp]> = [
    [() => checkCephClient({ conf: 'ceph.conf' }), /^--ceph-conf "ceph.conf" is not allowed: expected an absolute path/],
    [() => checkCephClient({ conf: '/etc/ceph/a:b.conf' }), /--ceph-conf "\/etc\/ceph\/a:b.conf" is not allowed/],
    [() => checkCephClient({ keyring: '/k;rm -rf /' }), /--ceph-keyring/],
    [() => checkCephClient({ id: 'client.admin' }), /^Ceph id "client.admin" starts with "client.": give the id alone, e.g. "admin"$/],
    [() => checkCephClient({ id: 'a;b' }), /^Ceph id "a;b" is not allowed/],
    [() => checkCephClient({ timeoutSec: 0 }), /Ceph timeout 0/],
    [() => parseRbdBsOpts('conf=/x;keyring=/y'), /"keyring=\/y" is not conf=FILE or id=USER/],
    [() => parseRbdBsOpts('id=a;id=b'), /gives id twice/],
  ];
  for (const [f, re] of bad) assert.throws(f, (e: unknown) => e instanceof ValidationError && re.test(e.message), String(re));
});

test('every captured failure maps to its reason and a one-line message naming the value', () => {
  const runner = new RecordingRunner(undefined, [], 'local');
  const client = { conf: '/etc/ceph/x.conf', id: 'virt-iscsi', timeoutSec: 3 };
  const ctx = { host: 'local', client, subject: 'rbd:rbd/none', pool: 'nopool', user: 'client.nobody' };
  const cases: Array<[string, CephFailure, RegExp]> = [
    ['no-image', 'no-image', /^RBD image rbd:rbd\/none does not exist in the Ceph cluster of \/etc\/ceph\/x.conf \(on local\)$/],
    ['no-pool', 'no-pool', /^pool "nopool" does not exist in the Ceph cluster of/],
    ['exists', 'exists', /already exists .*; refusing to overwrite it$/],
    ['wrong-key', 'auth', /^Ceph refused the key of client.virt-iscsi \(on local\): wrong key, or no such user$/],
    ['no-monitor', 'timeout', /^no Ceph monitor of \/etc\/ceph\/x.conf answered local within 3 s/],
    ['no-conf', 'no-conf', /^Ceph configuration \/etc\/ceph\/x.conf cannot be read on local/],
    ['no-keyring', 'no-keyring', /^no keyring for client.virt-iscsi on local/],
    ['ceph-denied', 'denied', /^client.virt-iscsi may not do this/],
    ['ceph-no-user', 'no-user', /^Ceph user client.nobody does not exist/],
    ['ceph-no-monitor', 'timeout', /^no Ceph monitor/],
    ['ceph-wrong-key', 'auth', /^Ceph refused the key/],
  ];
  for (const [name, reason, re] of cases) {
    const r = { stdout: '', stderr: fixture(`err-${name}.txt`), exitCode: Number(fixture(`err-${name}.exit`)) };
    const e = cephFailure(runner, ['rbd', 'info'], r, ctx);
    assert.equal(e.reason, reason, name);
    assert.match(e.message, re, name);
    assert.ok(!e.message.includes('\n'), name);
  }
  const other = cephFailure(runner, ['rbd', 'bench'], { stdout: '', stderr: 'rbd: something new\n', exitCode: 5 }, ctx);
  assert.equal(other.reason, 'other');
  assert.match(other.message, /^rbd bench failed on local \(exit 5\): rbd: something new$/);
});
