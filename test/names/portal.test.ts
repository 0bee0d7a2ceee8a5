import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { DEFAULT_ISCSI_PORT, formatPortal, isHost, parsePortal } from '../../src/names/portal.js';

test('HOST[:PORT] with IPv4 addresses and host names; 3260 by default', () => {
  assert.equal(DEFAULT_ISCSI_PORT, 3260);
  assert.deepEqual(parsePortal('192.168.122.1'), { host: '192.168.122.1', port: 3260 });
  assert.deepEqual(parsePortal('192.168.122.1:3260'), { host: '192.168.122.1', port: 3260 });
  assert.deepEqual(parsePortal('10.68.99.75:13260'), { host: '10.68.99.75', port: 13260 });
  assert.deepEqual(parsePortal('storage.example.com'), { host: 'storage.example.com', port: 3260 });
  assert.deepEqual(parsePortal('Storage-1:1'), { host: 'Storage-1', port: 1 });
  assert.deepEqual(parsePortal('localhost:65535'), { host: 'localhost', port: 65535 });
});

test('IPv6: in brackets with or without a port, or bare without a port', () => {
  assert.deepEqual(parsePortal('[fe80::1]:3260'), { host: 'fe80::1', port: 3260 });
  assert.deepEqual(parsePortal('[2001:db8::10]:13260'), { host: '2001:db8::10', port: 13260 });
  assert.deepEqual(parsePortal('[::1]'), { host: '::1', port: 3260 });
  assert.deepEqual(parsePortal('2001:db8::10'), { host: '2001:db8::10', port: 3260 });
  // A bare IPv6 address without a port stays an address, even one ending in a short or hex group.
  assert.deepEqual(parsePortal('fe80::1'), { host: 'fe80::1', port: 3260 });
  assert.deepEqual(parsePortal('2001:db8::5:1'), { host: '2001:db8::5:1', port: 3260 });
  assert.deepEqual(parsePortal('fe80::1:abcd'), { host: 'fe80::1:abcd', port: 3260 });
  assert.deepEqual(parsePortal('2001:db8:0:0:0:0:0:3260'), { host: '2001:db8:0:0:0:0:0:3260', port: 3260 });
  assert.deepEqual(parsePortal('[fe80::1:3260]'), { host: 'fe80::1:3260', port: 3260 });
});

test('IPv6 with a port and no brackets: refused, with the bracketed form to write', () => {
  // fe80::1:3261 is a valid address, but whoever wrote it meant fe80::1 port 3261 (and got 3260).
  for (const [text, want] of [
    ['fe80::1:3261', '[fe80::1]:3261'],
    ['2001:db8::10:3260', '[2001:db8::10]:3260'],
    ['::1:3260', '[::1]:3260'],
  ]) {
    assert.throws(
      () => parsePortal(text!),
      (e: unknown) => e instanceof ValidationError && e.message === `portal "${text}" looks like an IPv6 address with a port: write ${want} (or [${text}] for the address alone); expected HOST[:PORT] or [IPV6][:PORT]`,
      text,
    );
  }
});

test('bad ports and hosts are refused with one line naming the portal', () => {
  const cases: Array<[string, string]> = [
    ['192.0.2.1:0', 'invalid port "0"'],
    ['192.0.2.1:65536', 'invalid port "65536"'],
    ['192.0.2.1:3620x', 'invalid port "3620x"'],
    ['192.0.2.1:', 'invalid port ""'],
    ['192.0.2.1:-1', 'invalid port "-1"'],
    ['192.0.2.1:+3260', 'invalid port "+3260"'],
    ['192.0.2.1:003260', 'invalid port "003260"'],
    ['[fe80::1]:', 'invalid port ""'],
    ['[fe80::1]:99999', 'invalid port "99999"'],
    ['[192.0.2.1]:3260', 'has "192.0.2.1" in brackets, which is not an IPv6 address'],
    ['[storage]:3260', 'has "storage" in brackets'],
    [':3260', 'invalid host ""'],
    ['', 'invalid host ""'],
    ['exa mple.com', 'invalid host "exa mple.com"'],
    ['-storage:3260', 'invalid host "-storage"'],
    ['storage_1', 'invalid host "storage_1"'],
    ['host..example', 'invalid host "host..example"'],
    ['256.1.1.1', 'invalid host "256.1.1.1"'],
    ['192.0.2.1.5:3260', 'invalid host "192.0.2.1.5"'],
    ['fe80::1]:3260', 'invalid host "fe80::1]"'],
  ];
  for (const [text, why] of cases) {
    assert.throws(
      () => parsePortal(text),
      (e: unknown) =>
        e instanceof ValidationError &&
        e.field === 'portal' &&
        e.message.startsWith(`portal ${JSON.stringify(text)} `) &&
        e.message.includes(why) &&
        e.message.endsWith('expected HOST[:PORT] or [IPV6][:PORT]'),
      text,
    );
  }
});

test('isHost: IP addresses and DNS names, but not all-numeric names that look like mistyped addresses', () => {
  for (const ok of ['127.0.0.1', '::1', 'fe80::1', 'a', 'storage.example.com', 'x1.example', '1a.example', 'example.123a']) assert.equal(isHost(ok), true, ok);
  for (const bad of ['', '300.1.1.1', '1.2.3', '123', 'a.1', 'a b', 'a_b', `${'a'.repeat(64)}.example`, '[::1]']) assert.equal(isHost(bad), false, bad);
});

test('formatPortal brackets IPv6 and always shows the port; it parses back', () => {
  for (const text of ['192.0.2.1:3260', '[fe80::1]:3260', 'storage.example.com:13260', '[2001:db8::10]:1']) {
    assert.equal(formatPortal(parsePortal(text)), text);
  }
  assert.equal(formatPortal({ host: '::1', port: 3260 }), '[::1]:3260');
  assert.equal(formatPortal(parsePortal('192.0.2.1')), '192.0.2.1:3260');
});
