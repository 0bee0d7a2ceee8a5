// Inputs that once crashed or were misread, through the real CLI: each is one line on
// stderr naming the bad value, exit 1 (2 for usage). Pure commands only (xml generators,
// a stack file's dry run on a bad file), so no daemon is needed: the same checks in
// `target create` against a real tgtd are in target-bad-input.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, failedWith } from '../helpers/cli.js';

const IQN = 'iqn.2024-01.com.example:never-crash';

test('bad flags: an IPv6 portal with a port and no brackets, a LUN out of range, a stack file that is a FIFO, a symlink loop or a device', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-never-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'stack.yaml');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  symlinkSync('loop2', join(dir, 'loop1'));
  symlinkSync('loop1', join(dir, 'loop2'));
  const cases: Array<[string[], RegExp]> = [
    [['xml', 'pool', '--name', 'p', '--portal', 'fe80::1:3261', '--target', IQN], /^virt-iscsi: portal "fe80::1:3261" looks like an IPv6 address with a port: write \[fe80::1\]:3261 /],
    [['xml', 'target-conf', '--backend', 'tgt', '--target', IQN, '--lun', '99999999999=/srv/a.img', '--initiator-address', 'ALL'], /^virt-iscsi: --lun "99999999999=\/srv\/a\.img": LUN 99999999999 is out of range: expected 1 to 16383$/],
    [['apply', '-f', fifo, '--dry-run'], /^virt-iscsi: stack file ".*stack\.yaml" is a FIFO, not a regular file$/],
    [['apply', '-f', join(dir, 'loop1'), '--dry-run'], /^virt-iscsi: stack file ".*loop1" cannot be read: ELOOP$/],
    [['apply', '-f', '/dev/zero', '--dry-run'], /^virt-iscsi: stack file "\/dev\/zero" is a character device, not a regular file$/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(...args)));
  results.forEach((r, i) => assert.equal(failedWith(r, cases[i]![1]), undefined, cases[i]![0].join(' ')));
  // The bracketed form is taken.
  const ok = await cli('xml', 'pool', '--name', 'p', '--portal', '[fe80::1]:3261', '--target', IQN);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /<host name="fe80::1" port="3261"\/>/);
});
