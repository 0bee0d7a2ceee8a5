// `targetcli ls` on real output from the lab guest (test/lab/capture-fixtures.sh,
// targetcli-fb 2.1.53): a demo-mode target with TPG mutual CHAP on an IPv6 portal.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseLioTree } from '../../../src/storage/lio/targetcli-ls.js';

test('targetcli ls /iscsi/IQN: demo mode, tpg-auth, mutual, [::1]:3261', () => {
  const text = readFileSync(new URL('../../fixtures/lab/targetcli-ls-demo-ipv6.txt', import.meta.url), 'utf8');
  assert.deepEqual(parseLioTree(text), {
    backstores: [],
    targets: [
      {
        iqn: 'iqn.2024-01.test.lab:fixture-lio',
        tpgs: [
          {
            tag: 1,
            enabled: true,
            generateNodeAcls: true,
            authentication: true,
            luns: [{ lun: 1, plugin: 'fileio', storageObject: 'fixture', path: '/var/lib/fixture-lio.img' }],
            acls: [],
            portals: [{ host: '::1', port: 3261 }],
          },
        ],
      },
    ],
  });
});

test("targetcli's first run warns about its preferences file on stdout, before the tree", () => {
  const text = readFileSync(new URL('../../fixtures/lab/targetcli-ls-first-run.txt', import.meta.url), 'utf8');
  assert.match(text, /^Warning: Could not load preferences file/);
  assert.deepEqual(parseLioTree(text), { backstores: [], targets: [] });
});
