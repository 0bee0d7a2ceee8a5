import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { checkIscsiName, generateIqn, MAX_NAME_BYTES, parseIscsiName, reverseAuthority, toIqnIdentifier } from '../../src/names/iscsi-name.js';

/** The problem text for an invalid name (fails the test when the name is accepted). */
function problem(name: string): string {
  const r = checkIscsiName(name);
  assert.equal(r.ok, false, `${JSON.stringify(name)} was accepted`);
  return (r as { problem: string }).problem;
}

test('the RFC 3720 §3.2.6.3 / RFC 7143 §4.2.7 examples and the seed page names are valid', () => {
  const valid: Array<[string, 'iqn' | 'eui' | 'naa']> = [
    ['iqn.2001-04.com.example', 'iqn'],
    ['iqn.2001-04.com.example:storage:diskarrays-sn-a8675309', 'iqn'],
    ['iqn.2001-04.com.example:storage.tape1.sys1.xyz', 'iqn'],
    ['iqn.2001-04.com.example:storage.disk2.sys1.xyz', 'iqn'],
    ['iqn.2001-04.org.ultimana:storage.disk1', 'iqn'],
    ['iqn.2008-09.com.example:server.target1', 'iqn'],
    ['iqn.1993-08.org.debian:01:6a1d4fe2b3c', 'iqn'],
    ['iqn.2003-01.org.linux-iscsi.host.x8664:sn.abc123', 'iqn'],
    ['eui.02004567a425678d', 'eui'],
    ['naa.52004567ba64678d', 'naa'],
    ['naa.62004567ba64678d0123456789abcdef', 'naa'],
  ];
  for (const [name, kind] of valid) assert.deepEqual(checkIscsiName(name), { ok: true, name, kind }, name);
});

test('names are case-insensitive and normalised to lower case', () => {
  assert.deepEqual(checkIscsiName('IQN.2001-04.COM.Example:Storage.Disk1'), { ok: true, name: 'iqn.2001-04.com.example:storage.disk1', kind: 'iqn' });
  assert.deepEqual(checkIscsiName('EUI.02004567A425678D'), { ok: true, name: 'eui.02004567a425678d', kind: 'eui' });
  assert.deepEqual(checkIscsiName('naa.52004567BA64678D'), { ok: true, name: 'naa.52004567ba64678d', kind: 'naa' });
  assert.equal(parseIscsiName('iqn.2001-04.COM.EXAMPLE'), 'iqn.2001-04.com.example');
});

test('dates: YYYY-MM with a month from 01 to 12, then a dot', () => {
  assert.equal(checkIscsiName('iqn.2001-01.com.example').ok, true);
  assert.equal(checkIscsiName('iqn.2001-12.com.example').ok, true);
  assert.match(problem('iqn.2001-00.com.example'), /month in 2001-00 is not 01 to 12/);
  assert.match(problem('iqn.2001-13.com.example'), /month in 2001-13 is not 01 to 12/);
  for (const bad of ['iqn.01-04.com.example', 'iqn.2001-4.com.example', 'iqn.200104.com.example', 'iqn.2001-04com.example', 'iqn.2001-04:disk', 'iqn.com.example']) {
    assert.match(problem(bad), /continues with the date YYYY-MM and a dot/, bad);
  }
  assert.match(problem('iqn.2001-04'), /needs a reversed domain name/);
  assert.match(problem('iqn.2001-04.'), /needs a reversed domain name/);
});

test('the naming authority is a reversed domain name of valid labels', () => {
  assert.match(problem('iqn.2001-04.com..example'), /invalid label ""/);
  assert.match(problem('iqn.2001-04.com.example.:x'), /invalid label ""/);
  assert.match(problem('iqn.2001-04.com.-example'), /invalid label "-example"/);
  assert.match(problem('iqn.2001-04.com.example-:x'), /invalid label "example-"/);
  assert.match(problem('iqn.2001-04.com.example:'), /nothing follows the ":"/);
});

test('only letters, digits, ".", "-" and ":" are allowed; the first bad character is named with its position', () => {
  assert.equal(problem('iqn.2001-04.com.example:disk 1'), 'it contains a space at position 29; only letters, digits, \'.\', \'-\' and \':\' are allowed');
  assert.match(problem('iqn.2001-04.com.example:disk_1'), /contains "_" at position 29/);
  assert.match(problem('iqn.2001-04.com.example:a/b'), /contains "\/" at position 26/);
  assert.match(problem('iqn.2001-04.com.example:a\tb'), /contains a control character at position 26/);
  assert.match(problem('iqn.2001-04.com.example:a\u0000'), /contains a control character at position 26/);
  // non-ASCII: named as given, positions counted in characters, not UTF-16 units or bytes
  assert.ok(problem('iqn.2001-04.com.example:\u{1F600}x_').startsWith('it contains "\u{1F600}" at position 25;'));
  assert.match(problem('iqn.2001-04.com.example:é'), /contains "é" at position 25/);
  assert.match(problem('\u0130qn.2001-04.com.example'), /contains "\u0130" at position 1/);
  assert.match(problem('iqn.2001-04.com.example:\u0130'), /contains "\u0130" at position 25/);
});

test('the prefix must be iqn., eui. or naa.; an empty name is refused', () => {
  assert.equal(problem(''), 'it is empty');
  for (const bad of ['iqn', 'ign.2001-04.com.example', 'eui02004567a425678d', 'iscsi.2001-04.com.example', '2001-04.com.example']) {
    assert.match(problem(bad), /must start with "iqn\.", "eui\." or "naa\."/, bad);
  }
});

test('eui. takes exactly 16 hex digits, naa. 16 or 32', () => {
  for (const bad of ['eui.02004567a425678', 'eui.02004567a425678d0', 'eui.02004567a425678g', 'eui.']) {
    assert.match(problem(bad), /exactly 16 hex digits/, bad);
  }
  for (const bad of ['naa.52004567ba64678', 'naa.52004567ba64678d0', 'naa.62004567ba64678d0123456789abcde', 'naa.62004567ba64678d0123456789abcdef0', 'naa.5200456zba64678d']) {
    assert.match(problem(bad), /16 or 32 hex digits/, bad);
  }
});

test('223 bytes is the limit, exactly', () => {
  const prefix = 'iqn.2001-04.com.example:';
  const at = prefix + 'a'.repeat(MAX_NAME_BYTES - prefix.length);
  assert.equal(Buffer.byteLength(at), 223);
  assert.deepEqual(checkIscsiName(at), { ok: true, name: at, kind: 'iqn' });
  assert.equal(problem(`${at}b`), 'it is 224 bytes long; the limit is 223');
  // upper case counts the same once lower-cased
  assert.equal(checkIscsiName(at.toUpperCase()).ok, true);
});

test('parseIscsiName throws a one-line ValidationError naming the field, the value and the first problem', () => {
  assert.throws(
    () => parseIscsiName('iqn.2001-13.com.example', 'target'),
    (e: unknown) =>
      e instanceof ValidationError &&
      e.field === 'target' &&
      e.message === 'target "iqn.2001-13.com.example" is not a valid iSCSI name: the month in 2001-13 is not 01 to 12',
  );
  assert.throws(() => parseIscsiName('iqn.2001-04.com.example:a\nb'), (e: unknown) => e instanceof ValidationError && !e.message.includes('\n') && e.message.includes('"iqn.2001-04.com.example:a\\nb"'));
});

test('generateIqn: date, reversed authority, identifier suffix', () => {
  const now = new Date(Date.UTC(2024, 0, 31, 23, 59));
  assert.equal(generateIqn({ now }), 'iqn.2024-01.localdomain');
  assert.equal(generateIqn({ date: '2001-04', authority: 'example.com', suffix: 'storage.disk1' }), 'iqn.2001-04.com.example:storage.disk1');
  assert.equal(generateIqn({ now, authority: 'Storage.Example.COM.', suffix: 'My Disk (1).img' }), 'iqn.2024-01.com.example.storage:my-disk-1-.img');
  assert.equal(generateIqn({ date: '2024-12', authority: 'example.com', suffix: '--Ubuntu 24.04 Server.iso--' }), 'iqn.2024-12.com.example:ubuntu-24.04-server.iso');
  // the current month by default, in UTC
  const d = new Date();
  assert.ok(generateIqn().startsWith(`iqn.${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}.localdomain`));
  // every generated name passes the checker
  for (const suffix of ['a', 'ÄÖÜ disk', 'x:y', 'x'.repeat(50)]) assert.equal(checkIscsiName(generateIqn({ now, authority: 'example.com', suffix })).ok, true, suffix);
});

test('generateIqn refuses bad dates, authorities and suffixes with one line naming the value', () => {
  const refuses = (o: Parameters<typeof generateIqn>[0], field: string, named: string) =>
    assert.throws(() => generateIqn(o), (e: unknown) => e instanceof ValidationError && e.field === field && e.message.includes(named), named);
  refuses({ date: '2024-13' }, 'date', '"2024-13"');
  refuses({ date: '2024-00' }, 'date', '"2024-00"');
  refuses({ date: '24-01' }, 'date', '"24-01"');
  refuses({ authority: 'exa mple.com' }, 'authority', '"exa mple.com"');
  refuses({ authority: '' }, 'authority', '""');
  refuses({ authority: 'example..com' }, 'authority', '"example..com"');
  refuses({ suffix: '***' }, 'suffix', '"***"');
  refuses({ suffix: 'x'.repeat(250) }, 'generated name', 'the limit is 223');
});

test('reverseAuthority and toIqnIdentifier', () => {
  assert.equal(reverseAuthority('example.com'), 'com.example');
  assert.equal(reverseAuthority('a.b.Example.com.'), 'com.example.b.a');
  assert.equal(toIqnIdentifier('  Debian 12 (netinst).ISO '), 'debian-12-netinst-.iso');
  assert.equal(toIqnIdentifier('a__b//c'), 'a-b-c');
  assert.equal(toIqnIdentifier('...x:'), 'x');
  assert.equal(toIqnIdentifier('日本語'), '');
});
