// `iscsiadm -m iface` as the lab guest printed it after libvirt started an iscsi pool with
// an initiator name of its own (test/fixtures/lab/iface-list-libvirt.txt): the iface libvirt
// made, which `pool delete` removes again (test/lab/pool-attach.lab.ts does it for real).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseIfaceList } from '../../src/hypervisor/iscsiadm-parse.js';

test('iface list: libvirt\'s iface with its initiator name, and the built-in ones without', () => {
  const text = readFileSync(new URL('../fixtures/lab/iface-list-libvirt.txt', import.meta.url), 'utf8');
  assert.deepEqual(parseIfaceList(text), [
    { name: 'libvirt-iface-ef1d57b8', transport: 'tcp', initiatorName: 'iqn.2024-01.test.lab:custom' },
    { name: 'default', transport: 'tcp' },
    { name: 'iser', transport: 'iser' },
  ]);
});

test('iface list: error lines and empty output hold no iface', () => {
  assert.deepEqual(parseIfaceList(''), []);
  assert.deepEqual(parseIfaceList('iscsiadm: Could not read iface info for nonexist.\n'), []);
});
