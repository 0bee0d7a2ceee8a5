// The virsh parsers and the error classifier on real virsh output (test/fixtures/virsh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../src/errors.js';
import { classifyVirshError, type VirshFailure } from '../../src/hypervisor/virsh-errors.js';
import {
  parseBlkInfo,
  parseBlkList,
  parseDomPersistent,
  parseDomState,
  parsePoolInfo,
  parsePoolList,
  parseSecretList,
  parseTable,
  parseVolInfo,
  parseVolList,
} from '../../src/hypervisor/virsh-parse.js';

const dir = fileURLToPath(new URL('../fixtures/virsh/', import.meta.url));
const fixture = (name: string): string => readFileSync(dir + name, 'utf8');

test('pool-list --all --details: names (spaces too), states, autostart, persistent', () => {
  assert.deepEqual(parsePoolList(fixture('pool-list-details.txt')), [
    { name: 'vit-fcap', state: 'running', autostart: true, persistent: true },
    { name: 'vit-fcap-chap', state: 'running', autostart: false, persistent: true },
  ]);
  assert.deepEqual(
    parsePoolList(fixture('pool-list-spaces.txt')).map((p) => [p.name, p.state]),
    [
      ['vit fcap spaced name', 'inactive'],
      ['vit-fcap', 'running'],
      ['vit-fcap-chap', 'inactive'],
    ],
  );
  assert.deepEqual(parsePoolList(' Name   State   Autostart   Persistent   Capacity   Allocation   Available\n---------\n\n'), []);
});

test('pool-info --bytes: exact sizes while running, none when inactive', () => {
  assert.deepEqual(parsePoolInfo(fixture('pool-info-running.txt')), {
    name: 'vit-fcap',
    uuid: '73f76c5c-93ee-4466-a169-cb23e430085b',
    state: 'running',
    persistent: true,
    autostart: true,
    capacity: 41942016,
    allocation: 41942016,
    available: 0,
  });
  assert.deepEqual(parsePoolInfo(fixture('pool-info-inactive.txt')), {
    name: 'vit-fcap-chap',
    uuid: '4a8b5ca6-48a9-4d5d-b1d2-2651090de526',
    state: 'inactive',
    persistent: true,
    autostart: false,
  });
});

test('vol-list --details and vol-info --bytes', () => {
  const vols = parseVolList(fixture('vol-list-details.txt'));
  assert.deepEqual(
    vols.map((v) => [v.name, v.type, v.capacityText]),
    [
      ['unit:0:0:0', 'network', '0.00 B'],
      ['unit:0:0:1', 'network', '32.00 MiB'],
      ['unit:0:0:2', 'network', '8.00 MiB'],
      ['unit:0:0:3', 'network', '0.00 B'],
    ],
  );
  assert.equal(vols[1]!.path, 'ip-127.0.0.1:39261-iscsi-iqn.2024-01.dev.virt-iscsi:fcap-lun-1');
  // 32 MiB less one block: libvirt multiplies the last LBA, not the block count.
  assert.deepEqual(parseVolInfo(fixture('vol-info.txt')), { name: 'unit:0:0:1', type: 'network', capacity: 33553920, allocation: 33553920 });
});

test('secret-list: UUID, usage type and usage name', () => {
  assert.deepEqual(parseSecretList(fixture('secret-list.txt')), [
    { uuid: '5bb598f7-6eee-4419-aca6-a705eefa4f71', usageType: 'iscsi', usage: 'vit-fcap-chap2' },
    { uuid: 'c9196e00-b4b5-49d0-9284-571df8bba1e3', usageType: 'iscsi', usage: 'vit-fcap-chap' },
  ]);
});

test('domstate with and without --reason', () => {
  assert.deepEqual(parseDomState(fixture('domstate-reason-running.txt')), { state: 'running', reason: 'booted' });
  assert.equal(parseDomPersistent(fixture('dominfo-running.txt')), true);
  assert.equal(parseDomPersistent(fixture('dominfo-running.txt').replace(/Persistent:\s+yes/, 'Persistent:     no')), false);
  assert.throws(() => parseDomPersistent('Name: x\n'), /Persistent/);
  assert.deepEqual(parseDomState(fixture('domstate-reason-shutoff.txt')), { state: 'shut off', reason: 'unknown' });
  assert.deepEqual(parseDomState(fixture('domstate-running.txt')), { state: 'running' });
  assert.deepEqual(parseDomState(fixture('domstate-shutoff.txt')), { state: 'shut off' });
  assert.throws(() => parseDomState('exploded\n'), ValidationError);
});

test('domblklist --details and domblkinfo', () => {
  assert.deepEqual(parseBlkList(fixture('domblklist-details.txt')), [
    { type: 'file', device: 'cdrom', target: 'hdc' },
    { type: 'volume', device: 'disk', target: 'sdb', source: 'unit:0:0:2' },
    { type: 'network', device: 'cdrom', target: 'sdc', source: 'iqn.2024-01.dev.virt-iscsi:fcap/3' },
    { type: 'network', device: 'disk', target: 'sdh', source: 'iqn.2024-01.dev.virt-iscsi:fcap-chap/1' },
  ]);
  assert.deepEqual(parseBlkInfo(fixture('domblkinfo.txt')), { capacity: 8388608, allocation: 8388608, physical: 8388608 });
});

test('a table without its line of dashes is refused, not misread', () => {
  assert.throws(() => parseTable(' Name   State\n vit-x  running\n', 'pool-list'), /not in the expected form/);
  assert.throws(() => parseBlkInfo('Capacity: lots\n'), ValidationError);
});

test('every captured virsh failure is classified, with the object it names', () => {
  const expected: Record<string, [VirshFailure, string?]> = {
    'auth-disk': ['iscsi-auth'],
    'auth-pool': ['iscsi-auth'],
    'blkinfo-no-dev': ['no-device', 'sdz'],
    'connect-refused': ['iscsi-connect'],
    'device-missing': ['no-device', 'sda'],
    'disk-missing': ['no-device', 'sdz'],
    'domain-unknown': ['no-domain', 'vit-nonexistent'],
    'ide-hotplug': ['no-hotplug', 'ide.1'],
    'iscsi-pool-start': ['no-iscsiadm'],
    'media-none': ['no-media', 'hdc'],
    'no-hotplug-pci': ['no-hotplug', 'pci.0'],
    'not-running': ['not-running'],
    'pool-active': ['pool-active', 'vit-fcap'],
    'pool-exists': ['pool-exists', 'vit-fcap'],
    'pool-inactive': ['pool-inactive', 'vit-fcap-chap'],
    'pool-unknown': ['no-pool', 'vit-nonexistent'],
    'secret-exists': ['secret-exists', 'vit-fcap-chap'],
    'secret-unknown': ['no-secret', '00000000-0000-4000-8000-000000000000'],
    'stale-label': ['stale-label', '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.2026-12.localdomain.lab:pooled-lun-1'],
    'target-duplicated': ['dev-taken', 'sdh'],
    'target-not-found': ['iscsi-no-target'],
    unreachable: ['unreachable'],
    'volume-unknown': ['no-volume', 'unit:0:0:9'],
  };
  const files = readdirSync(`${dir}errors`).map((f) => f.replace(/\.txt$/, '')).sort();
  assert.deepEqual(files, Object.keys(expected).sort(), 'a fixture without an expectation, or the reverse');
  for (const [name, [failure, objectName]] of Object.entries(expected)) {
    const info = classifyVirshError(fixture(`errors/${name}.txt`));
    assert.equal(info.failure, failure, name);
    assert.equal(info.name, objectName, name);
  }
  assert.match(classifyVirshError(fixture('errors/auth-disk.txt')).hint ?? '', /CHAP/);
  assert.equal(classifyVirshError('error: something new\n').failure, 'other');
});
