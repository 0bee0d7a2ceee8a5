// The backend-neutral checks on a TargetSpec: everything refused before any command runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import type { TargetSpec } from '../../src/storage/backend.js';
import { normalizeTargetSpec } from '../../src/storage/spec.js';

const base: TargetSpec = { iqn: 'iqn.2024-06.com.Example:Disk1', luns: [{ lun: 1, path: '/srv/a.img' }], allow: [], persist: true };

test('names are normalised, CDs made read-only, duplicate ACLs dropped', () => {
  const s = normalizeTargetSpec({
    ...base,
    luns: [
      { lun: 1, path: '/srv/a.img' },
      { lun: 2, path: '/srv/b.iso', cdrom: true },
    ],
    allow: ['IQN.2024-06.COM.EXAMPLE:HOST', '10.0.0.0/8', 'iqn.2024-06.com.example:host', 'ALL'],
    chap: { user: 'u', secret: '123456789012', mutualUser: 't', mutualSecret: 'abcdefghijklmnop' },
  });
  assert.equal(s.iqn, 'iqn.2024-06.com.example:disk1');
  assert.deepEqual(s.luns[1], { lun: 2, path: '/srv/b.iso', cdrom: true, readonly: true });
  assert.deepEqual(s.allow, ['iqn.2024-06.com.example:host', '10.0.0.0/8', 'ALL']);
});

test('each bad value: one line naming it, secrets never echoed', () => {
  const cases: Array<[Partial<TargetSpec>, RegExp, { anySecretLength?: boolean }?]> = [
    [{ iqn: 'iqn.2024-13.com.example:x' }, /^target name "iqn\.2024-13\.com\.example:x" is not a valid iSCSI name: the month/],
    [{ iqn: 'disk1' }, /^target name "disk1" is not a valid iSCSI name/],
    [{ luns: [] }, /has no LUN: give at least one/],
    [{ luns: [{ lun: 0, path: '/srv/a.img' }] }, /^LUN 0 is the target controller: number image LUNs from 1$/],
    [{ luns: [{ lun: 1.5, path: '/srv/a.img' }] }, /^LUN 1\.5 is not a LUN number: expected 1 to 16383$/],
    [{ luns: [{ lun: 1, path: '/srv/a.img' }, { lun: 1, path: '/srv/b.img' }] }, /^LUN 1 is given twice \("\/srv\/a\.img" and "\/srv\/b\.img"\)$/],
    [{ luns: [{ lun: 1, path: '/srv/a.img' }, { lun: 2, path: '/srv/a.img' }] }, /^image "\/srv\/a\.img" is given for two LUNs$/],
    [{ luns: [{ lun: 1, path: 'relative.img' }] }, /is not an absolute path/],
    [{ allow: ['somehost'] }, /^allowed initiator "somehost" is neither ALL, an IP address, a CIDR/],
    [{ allow: ['10.0.0.0/33'] }, /"10\.0\.0\.0\/33" is neither/],
    [{ tid: 0 }, /^target id 0 is not a positive integer$/],
    [{ chap: { user: 'u', secret: 'short' } }, /^CHAP secret for user "u" has 5 characters; most initiators need 12 to 16 \(force to accept it\)$/],
    [{ chap: { user: 'u', secret: 'x'.repeat(17) } }, /has 17 characters/],
    [{ chap: { user: 'u', secret: '123456789012', mutualUser: 't' } }, /^mutual CHAP needs both a user and a secret$/],
    [{ chap: { user: 'u', secret: '123456789012', mutualUser: 'u', mutualSecret: 'abcdefghijkl' } }, /mutual CHAP user "u" must differ/],
    [{ chap: { user: 'u', secret: '123456789012', mutualUser: 't', mutualSecret: '123456789012' } }, /must differ from the CHAP secret \(RFC 7143/],
    [{ chap: { user: 'u', secret: 'with space 12' } }, /contains whitespace/],
  ];
  for (const [patch, message, options] of cases) {
    assert.throws(
      () => normalizeTargetSpec({ ...base, ...patch }, options),
      (e: unknown) => e instanceof ValidationError && message.test(e.message) && !e.message.includes('\n') && !/123456789012|short|xxxxxxxx/.test(e.message.replace(/"u"/, '')),
      message.source,
    );
  }
});

test('forced: a CHAP secret of any length', () => {
  const s = normalizeTargetSpec({ ...base, chap: { user: 'u', secret: 'short' } }, { anySecretLength: true });
  assert.equal(s.chap?.secret, 'short');
});
