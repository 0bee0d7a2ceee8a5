// Stack files read into typed specs: defaults, per-export overrides, relative paths, pools,
// the round-2 keys, and one-line errors `FILE:LINE:COL: ENTRY: why` naming the bad value.
// The "read as YAML" cases are files people wrote that the earlier hand-written reader
// misread or refused (a `...` line, `a: b: c`, `__proto__`, a BOM, flow maps, anchors,
// deep nesting, a FIFO given as -f).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../../src/errors.js';
import { nearestKey } from '../../src/workflows/stack-keys.js';
import { MAX_STACK_FILE_BYTES, parseStack, readPoolSecret, readStackFile } from '../../src/workflows/stack-file.js';
import { EXPORT_MODES } from '../../src/workflows/records.js';
import { cli, failedWith } from '../helpers/cli.js';

const FILE = '/srv/stacks/lab.yaml';

/** The one-line ValidationError `text` gives, checked to start with FILE:LINE:COL. */
function problem(text: string, file = FILE): string {
  try {
    parseStack(text, file);
  } catch (e) {
    assert.ok(e instanceof ValidationError, `${JSON.stringify(text)}: ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    assert.match(e.message, /^.+:\d+:\d+: /, 'file, line and column');
    return e.message;
  }
  assert.fail(`${JSON.stringify(text)} was accepted`);
}

test('stack file: defaults fill every export, an export overrides them, names and CD-ROMs default from the image', () => {
  const spec = parseStack(
    [
      'stack: lab',
      'defaults:',
      '  storage: ssh://root@stor1',
      '  vm: web1',
      '  mode: direct',
      '  chap: true',
      '  host-records: /var/lib/virt-iscsi/exports',
      'exports:',
      '  - image: /srv/iscsi/web1-data.img',
      '  - image: /srv/iso/Debian 12.iso',
      '    vm: web2',
      '    mode: network',
      '    portal: "[fe80::1]:3261"',
      '  - image: /srv/iscsi/logs.img',
      '    name: web1-logs',
      '    storage: local',
      '    readonly: true',
      '    persist: false',
      '    control-port: 3333',
      '    conf-dir: tgt',
    ].join('\n'),
    FILE,
  );
  assert.equal(spec.name, 'lab');
  assert.deepEqual(spec.defaults, { storage: 'ssh://root@stor1', hostRecordDir: '/var/lib/virt-iscsi/exports' });
  assert.deepEqual(
    spec.exports.map((x) => x.entry),
    ['exports[1] (web1-data)', 'exports[2] (debian-12)', 'exports[3] (web1-logs)'],
  );
  const [data, iso, logs] = spec.exports.map((x) => x.settings);
  assert.deepEqual(data, {
    image: '/srv/iscsi/web1-data.img',
    vm: 'web1',
    name: 'web1-data',
    storage: 'ssh://root@stor1',
    hypervisor: 'local',
    hypervisors: ['local'],
    connect: 'qemu:///system',
    cdrom: false,
    readonly: false,
    chap: true,
    persist: true,
    mode: 'direct',
    hostRecordDir: '/var/lib/virt-iscsi/exports',
  });
  assert.deepEqual([iso!.cdrom, iso!.readonly, iso!.vm, iso!.mode, iso!.portal], [true, true, 'web2', 'network', '[fe80::1]:3261']);
  assert.deepEqual([logs!.storage, logs!.readonly, logs!.persist, logs!.controlPort, logs!.confDir], ['local', true, false, 3333, '/srv/stacks/tgt']);
  assert.deepEqual(spec.pools, []);
});

test("stack file: relative image paths are the stack file directory's; JSON works the same", () => {
  const yaml = parseStack('stack: a\nexports:\n  - image: img/disk.img\n    vm: v\n', FILE);
  assert.equal(yaml.exports[0]!.settings.image, '/srv/stacks/img/disk.img');
  const json = parseStack('{"stack": "a", "exports": [{"image": "img/disk.img", "vm": "v"}]}', FILE);
  assert.deepEqual(json, yaml);
  // JSON on several lines, with the positions of its own lines in errors.
  assert.match(problem('{\n  "stack": "a",\n  "exports": [{"image": "/a.img", "vm": "v", "mode": "tape"}]\n}\n'), /^\/srv\/stacks\/lab\.yaml:3:54: exports\[1\] \(a\): mode "tape" is not one of/);
});

test('stack file: pools with CHAP and autostart; the secret file is found beside the stack file', () => {
  const spec = parseStack(
    [
      'stack: pools',
      'pools:',
      '  - name: nas-vol1',
      '    type: iscsi-direct',
      '    portal: 192.0.2.10',
      '    target: IQN.2004-04.com.example:NAS.vol1',
      '    initiator: iqn.2024-01.com.example:kvm1',
      '    chap-user: kvm1',
      '    chap-secret-file: secrets/nas.secret',
      '  - name: nas-vol2',
      '    hypervisor: ssh://root@kvm2',
      '    portal: 192.0.2.10:3261',
      '    target: iqn.2004-04.com.example:nas.vol2',
      '    autostart: false',
    ].join('\n'),
    FILE,
  );
  assert.deepEqual(spec.pools, [
    {
      entry: 'pools[1] (nas-vol1)',
      name: 'nas-vol1',
      hypervisor: 'local',
      connect: 'qemu:///system',
      type: 'iscsi-direct',
      portal: '192.0.2.10:3260',
      target: 'iqn.2004-04.com.example:nas.vol1',
      initiator: 'iqn.2024-01.com.example:kvm1',
      chap: { user: 'kvm1', secretFile: '/srv/stacks/secrets/nas.secret' },
      autostart: true,
    },
    {
      entry: 'pools[2] (nas-vol2)',
      name: 'nas-vol2',
      hypervisor: 'ssh://root@kvm2',
      connect: 'qemu:///system',
      type: 'iscsi',
      portal: '192.0.2.10:3261',
      target: 'iqn.2004-04.com.example:nas.vol2',
      autostart: false,
    },
  ]);
});

test('stack file: round-2 keys: several hypervisors, multipath portals, session timeouts, Ceph rbd images', () => {
  const spec = parseStack(
    [
      'stack: r2',
      'defaults:',
      '  vm: web1',
      '  hypervisors: [ssh://root@kvm1, ssh://root@kvm2]',
      '  replacement-timeout: 15',
      'exports:',
      '  - image: /srv/iscsi/mp.img',
      '    mode: multipath',
      '    portals: [192.0.2.10, "[2001:db8::10]:3261"]',
      '    min-paths: 2',
      '    noop-out-interval: 5',
      '    noop-out-timeout: 10',
      '  - image: rbd:vms/web1-root',
      '    mode: rbd',
      '    ceph-conf: ceph.conf',
      '    ceph-id: libvirt',
      '    hypervisor: local',
      '    storage: local',
      '  - image: /srv/iscsi/one.img',
      '    portal: 192.0.2.11',
    ].join('\n'),
    FILE,
  );
  const [mp, rbd, one] = spec.exports.map((x) => x.settings);
  assert.deepEqual(mp, {
    image: '/srv/iscsi/mp.img',
    vm: 'web1',
    name: 'mp',
    storage: 'local',
    hypervisor: 'ssh://root@kvm1',
    hypervisors: ['ssh://root@kvm1', 'ssh://root@kvm2'],
    connect: 'qemu:///system',
    cdrom: false,
    readonly: false,
    chap: false,
    persist: true,
    mode: 'multipath',
    portals: ['192.0.2.10:3260', '[2001:db8::10]:3261'],
    minPaths: 2,
    replacementTimeout: 15,
    noopOutInterval: 5,
    noopOutTimeout: 10,
  });
  // An export's hypervisor replaces the defaults' hypervisors; an rbd image is not a path.
  assert.deepEqual([rbd!.image, rbd!.name, rbd!.hypervisor, rbd!.hypervisors, rbd!.mode, rbd!.cephConf, rbd!.cephId], ['rbd:vms/web1-root', 'web1-root', 'local', ['local'], 'rbd', '/srv/stacks/ceph.conf', 'libvirt']);
  assert.deepEqual([one!.portal, one!.portals, one!.hypervisors], ['192.0.2.11:3260', undefined, ['ssh://root@kvm1', 'ssh://root@kvm2']]);
});

test('stack file: read as YAML 1.2: what the earlier reader misread or refused now means what it says', () => {
  // A BOM (Windows editors write one) is not indentation.
  assert.equal(parseStack('\uFEFFstack: bom\n', FILE).name, 'bom');
  // Flow mappings, anchors and aliases, block scalars, quoted keys.
  const spec = parseStack(
    [
      'stack: flow',
      'defaults: &d {vm: web1, storage: local}',
      'exports:',
      '  - {image: /a.img, name: a}',
      '  - image: &img /b.img',
      '    "vm": >-',
      '      web2',
      'pools: []',
    ].join('\n'),
    FILE,
  );
  assert.deepEqual(
    spec.exports.map((x) => [x.settings.name, x.settings.vm, x.settings.image]),
    [
      ['a', 'web1', '/a.img'],
      ['b', 'web2', '/b.img'],
    ],
  );
  // A `...` line ended the file for the earlier reader: 2 exports declared, 1 planned (and apply removed the other).
  assert.match(problem('stack: a\nexports:\n  - image: /a.img\n    vm: v\n...\n  - image: /b.img\n    vm: v\n'), /:6:1: a second YAML document/);
  assert.match(problem('stack: a\n---\nstack: b\n'), /:2:1: a second YAML document/);
  // `a: b: c` was the string "b: c".
  assert.match(problem('stack: a\ndefaults:\n  vm: web1: web2\n'), /^\/srv\/stacks\/lab\.yaml:3:\d+: Nested mappings are not allowed/);
  // __proto__ disappeared (and skipped the unknown-key check).
  assert.match(problem('stack: a\n__proto__: x\n'), /:2:1: key "__proto__" is not known; expected one of stack, defaults, exports, pools$/);
  assert.match(problem('stack: a\nexports:\n  - image: /a.img\n    vm: v\n    __proto__: {mode: pool}\n'), /:5:5: exports\[1\] \(a\): key "__proto__" is not known/);
  // Keys given twice, tabs, unclosed flow lists: YAML's own errors, at their place.
  assert.match(problem('stack: a\nstack: b\n'), /:2:1: key "stack" is given twice \(first on line 1\)$/);
  assert.match(problem('stack: a\nexports:\n\t- image: /a.img\n'), /:3:1: Tabs are not allowed as indentation/);
  assert.match(problem('stack: a\nexports: [\n'), /^\/srv\/stacks\/lab\.yaml:\d+:\d+: /);
  // An alias to nothing, a tag nobody knows.
  assert.match(problem('stack: a\ndefaults: *nope\n'), /:2:11: alias \*nope names no anchor before it/);
  assert.match(problem('stack: a\ndefaults:\n  vm: !secret web1\n'), /:3:7: .*tag/i);
});

test('stack file: limits: nesting depth, entry count; duplicates are found in one pass', () => {
  // 5,000 levels: "Maximum call stack size exceeded" before; now the depth limit, at its line.
  const deepFlow = `stack: a\nextra: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
  assert.match(problem(deepFlow), /:2:\d+: nested more than 32 levels deep$/);
  let deepBlock = 'stack: a\n';
  for (let i = 0; i < 200; i++) deepBlock += `${' '.repeat(i)}k${i}:\n`;
  assert.match(problem(deepBlock), /nested more than 32 levels deep$/);

  const entries = (n: number, dup?: number): string => {
    const lines = ['stack: big', 'defaults: {vm: web1}', 'exports:'];
    for (let i = 0; i < n; i++) lines.push(`  - image: /srv/d${i === dup ? 0 : i}.img`);
    return lines.join('\n');
  };
  // (bench/stack-parse.ts times 10,000 exports: the duplicate checks are a Map each, not a scan.)
  assert.equal(parseStack(entries(2_000), FILE).exports.length, 2_000);
  assert.match(problem(entries(2_000, 1_999)), /:2003:5: exports\[2000\] \(d0\): export name "d0" is declared twice \(also exports\[1\] \(d0\)\)$/);
  assert.match(problem(entries(20_001)), /:3:1: 20001 exports and 0 pools: a stack file declares at most 20000; split it$/);
  // Image reuse, under another name.
  assert.match(problem('stack: a\nexports:\n  - image: /a.img\n    vm: v\n  - image: /a.img\n    vm: w\n    name: b\n'), /:5:5: exports\[2\] \(b\): image "\/a.img" on local is already exported by exports\[1\] \(a\)$/);
});

test('stack file: unknown keys name the key, its line, and the nearest known key', () => {
  assert.match(problem('stack: a\nexports:\n  - image: /a.img\n    vn: v\n'), /^\/srv\/stacks\/lab\.yaml:4:5: exports\[1\] \(a\): key "vn" is not known; did you mean vm\?$/);
  assert.match(problem('stack: a\nexports:\n  - image: /a.img\n    vm: v\n    moed: network\n'), /:5:5: .*key "moed" is not known; did you mean mode\?$/);
  assert.match(problem('stack: a\nexprots: []\n'), /:2:1: key "exprots" is not known; did you mean exports\?$/);
  assert.match(problem('stack: a\ndefaults:\n  readOnly: true\n'), /:3:3: defaults: key "readOnly" is not known; did you mean readonly\?$/);
  assert.match(problem('stack: a\npools:\n  - name: p\n    chap-secret: x\n'), /:4:5: pools\[1\] \(p\): key "chap-secret" is not known; did you mean chap-secret-file\?$/);
  // Nothing near: the list of keys.
  assert.match(problem('stack: a\ndefaults:\n  colour: blue\n'), /defaults: key "colour" is not known; expected one of vm, storage,/);
  assert.match(problem('stack: a\ndefaults:\n  image: /a.img\n'), /:3:3: defaults: key "image" is not known here; /);
  assert.match(problem('stack: a\nexports:\n  - image: /a.img\n    vm: v\n    <<: {mode: pool}\n'), /key "<<" is not known; YAML merge keys are not read: put shared settings in defaults$/);
  assert.equal(nearestKey('hypervisor-uri', ['hypervisor', 'hypervisors']), undefined);
  assert.equal(nearestKey('hypervisr', ['hypervisor', 'hypervisors']), 'hypervisor');
  assert.equal(nearestKey('x'.repeat(100_000), ['vm']), undefined);
});

test('stack file: every mistake is one line naming the file, line, column, the entry and the bad value', () => {
  const head = 'stack: lab\nexports:\n';
  const cases: Array<[string, string]> = [
    ['exports:\n  - image: /a.img\n    vm: v\n', `${FILE}:1:1: stack null is not a stack name`],
    ['stack: Lab_1\n', `${FILE}:1:8: stack "Lab_1" is not a stack name`],
    ['', `${FILE}:1:1: expected a mapping with stack, defaults, exports and pools, got null`],
    [`${head}  - image: /a.img\n    vm: v\n    mode: floppy\n`, `${FILE}:5:11: exports[1] (a): mode "floppy" is not one of ${EXPORT_MODES.join(', ')}`],
    [`${head}  - image: /a.img\n    vm: v\n    readonly: yes\n`, `${FILE}:5:15: exports[1] (a): readonly "yes" is not true or false`],
    [`${head}  - image: /a.img\n    vm: v\n    control-port: 70000\n`, `${FILE}:5:19: exports[1] (a): control-port 70000 is not a port number (1-65535)`],
    [`${head}  - image: /a.img\n    vm: v\n    control-port: "3261"\n`, `${FILE}:5:19: exports[1] (a): control-port "3261" is not a port number (1-65535)`],
    [`${head}  - image: /a.img\n    vm: v\n    storage: ftp://x\n`, `${FILE}:5:14: exports[1] (a): host "ftp://x" is not a host URI`],
    [`${head}  - image: /a.img\n    vm: v\n    portal: 256.1.1.1\n`, `${FILE}:5:13: exports[1] (a): portal "256.1.1.1" has an invalid host`],
    [`${head}  - image: /a.img\n    vm: v\n    portal: fe80::1:3261\n`, `${FILE}:5:13: exports[1] (a): portal "fe80::1:3261" looks like an IPv6 address with a port: write [fe80::1]:3261`],
    [`${head}  - image: /a.img\n    vm: v\n    name: Bad_Name\n`, `${FILE}:5:11: exports[1] (Bad_Name): export name "Bad_Name" is not allowed`],
    [`${head}  - image: /a.iso\n    vm: v\n    readonly: false\n`, `${FILE}:5:15: exports[1] (a): readonly false with a CD-ROM`],
    [`${head}  - vm: v\n`, `${FILE}:3:5: exports[1]: has no image`],
    [`${head}  - image: /a.img\n`, `${FILE}:3:5: exports[1] (a): has no vm`],
    [`${head}  - image: /a.img\n    vm:\n`, `${FILE}:4:8: exports[1] (a): vm has no value; give one, or leave the key out`],
    [`${head}  - image: /a.img\n    vm: [a, b]\n`, `${FILE}:4:9: exports[1] (a): vm is a list, not a string`],
    [`${head}  - image: "/a\\0.img"\n    vm: v\n`, `${FILE}:3:12: exports[1] (a): image "/a\\u0000.img" is not a non-empty string without control characters`],
    [`${head}  - image: a.img\n    vm: v\n    storage: ssh://stor1\n`, `${FILE}:3:12: exports[1] (a): image "a.img" is a relative path; give its absolute path on ssh://stor1`],
    [`${head}  - image: /a.img\n    vm: v\n    storage: ssh://stor1\n    conf-dir: tgt\n`, `${FILE}:6:15: exports[1] (a): conf-dir "tgt" is a relative path; give an absolute path on ssh://stor1`],
    [`${head}  - image: /x/a.img\n    vm: v\n  - image: /y/a.img\n    vm: w\n`, `${FILE}:5:5: exports[2] (a): export name "a" is declared twice (also exports[1] (a))`],
    [`${head}  - image: "/x/###.img"\n    vm: v\n`, `${FILE}:3:12: exports[1]: export name "" (from the image's file name) is not allowed: expected 1 to 48 of a-z, 0-9, '.' and '-', starting with a letter or digit; give name`],
    [`${head}  - just-text\n`, `${FILE}:3:5: exports[1]: expected a mapping of key: value lines, got "just-text"`],
    ['stack: lab\nexports: /a.img\n', `${FILE}:2:10: exports: expected a list ("- " items), got "/a.img"`],
    [`${head}  - image: /a.img\n    vm: v\n    connect: qemu+ext:///system?command=/bin/sh\n`, `${FILE}:5:14: exports[1] (a): libvirt URI "qemu+ext:///system?command=/bin/sh" uses the ext transport, which runs a program`],
    [`${head}  - image: /a.img\n    vm: v\n    connect: qemu:///system?socket=/x\n`, `${FILE}:5:14: exports[1] (a): libvirt URI "qemu:///system?socket=/x" has socket="/x", which is not allowed`],
    // Round-2 keys.
    [`${head}  - image: /a.img\n    vm: v\n    hypervisor: local\n    hypervisors: [local]\n`, `${FILE}:6:18: exports[1] (a): hypervisor and hypervisors exclude each other; give one`],
    [`${head}  - image: /a.img\n    vm: v\n    portal: a\n    portals: [b]\n`, `${FILE}:6:14: exports[1] (a): portal and portals exclude each other; give one`],
    [`${head}  - image: /a.img\n    vm: v\n    hypervisors: []\n`, `${FILE}:5:18: exports[1] (a): hypervisors is an empty list; give at least one host URI`],
    [`${head}  - image: /a.img\n    vm: v\n    hypervisors: ssh://kvm1\n`, `${FILE}:5:18: exports[1] (a): hypervisors is "ssh://kvm1", not a list of host URIs`],
    [`${head}  - image: /a.img\n    vm: v\n    hypervisors: [local, ssh://kvm1, local]\n`, `${FILE}:5:38: exports[1] (a): hypervisors[3] "local" is given twice`],
    [`${head}  - image: /a.img\n    vm: v\n    portals: [a, "a:3260"]\n`, `${FILE}:5:18: exports[1] (a): portals[2] "a:3260" is given twice`],
    [`${head}  - image: /a.img\n    vm: v\n    portals: [a, 999.1.1.1]\n`, `${FILE}:5:18: exports[1] (a): portal "999.1.1.1" has an invalid host`],
    [`${head}  - image: /a.img\n    vm: v\n    min-paths: 0\n`, `${FILE}:5:16: exports[1] (a): min-paths 0 is not a number of paths from 1 to 64`],
    [`${head}  - image: /a.img\n    vm: v\n    portals: [a, b]\n    min-paths: 3\n`, `${FILE}:6:16: exports[1] (a): min-paths 3 is more than the 2 portals given; list them in portals`],
    [`${head}  - image: /a.img\n    vm: v\n    replacement-timeout: 0\n`, `${FILE}:5:26: exports[1] (a): replacement-timeout 0 is not a whole number of seconds, 1 or more`],
    [`${head}  - image: /a.img\n    vm: v\n    noop-out-interval: 2.5\n`, `${FILE}:5:24: exports[1] (a): noop-out-interval 2.5 is not a whole number of seconds, 1 or more`],
    [`${head}  - image: /a.img\n    vm: v\n    noop-out-timeout: -1\n`, `${FILE}:5:23: exports[1] (a): noop-out-timeout -1 is not a whole number of seconds, 1 or more`],
    [`${head}  - image: rbd:vms/a@snap\n    vm: v\n`, `${FILE}:3:12: exports[1] (a-snap): image "rbd:vms/a@snap" is not rbd:POOL/IMAGE: pool and image names are A-Z, a-z, 0-9, '_', '.' and '-' (no @snapshot)`],
    [`${head}  - image: rbd:vms\n    vm: v\n`, `${FILE}:3:12: exports[1] (rbd:vms): image "rbd:vms" is not rbd:POOL/IMAGE`],
    [`${head}  - image: rbd:../etc\n    vm: v\n`, `${FILE}:3:12: exports[1] (etc): image "rbd:../etc" is not rbd:POOL/IMAGE`],
    [`${head}  - image: /a.img\n    vm: v\n    mode: rbd\n`, `${FILE}:5:11: exports[1] (a): mode rbd needs an image rbd:POOL/IMAGE, not "/a.img"`],
    [`${head}  - image: /a.img\n    vm: v\n    ceph-id: admin\n`, `${FILE}:5:14: exports[1] (a): ceph-id is for an image rbd:POOL/IMAGE, not "/a.img"`],
    [`${head}  - image: rbd:p/a\n    vm: v\n    ceph-id: client.admin x\n`, `${FILE}:5:14: exports[1] (a): ceph-id "client.admin x" is not a Ceph user name`],
    [`${head}  - image: rbd:p/a\n    vm: v\n    hypervisor: ssh://kvm1\n    ceph-conf: ceph.conf\n`, `${FILE}:6:16: exports[1] (a): ceph-conf "ceph.conf" is a relative path; give an absolute path on ssh://kvm1`],
    // Defaults and pools.
    ['stack: lab\ndefaults: [vm]\n', `${FILE}:2:11: defaults: expected a mapping of key: value lines, got a list`],
    ['stack: lab\ndefaults:\n  storage: ssh://s\n  host-records: recs\n', `${FILE}:4:17: defaults: host-records "recs" is a relative path; give an absolute path on ssh://s`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n', `${FILE}:3:5: pools[1] (p): has no target`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    type: rbd\n', `${FILE}:6:11: pools[1] (p): type "rbd" is not one of iscsi, iscsi-direct`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    type: iscsi-direct\n', `${FILE}:6:11: pools[1] (p): type iscsi-direct needs an initiator`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    chap-user: u\n', `${FILE}:6:16: pools[1] (p): chap-user and chap-secret-file go together: give both, or neither`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.bad\n', `${FILE}:5:13: pools[1] (p): target "iqn.bad" is not a valid iSCSI name: an iqn. name continues with the date`],
    ['stack: lab\npools:\n  - name: p q\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n', `${FILE}:3:11: pools[1] (p q): name "p q" is not a pool name`],
    ['stack: lab\npools:\n  - {name: p, portal: a, target: "iqn.2004-04.com.example:x"}\n  - {name: p, portal: b, target: "iqn.2004-04.com.example:y"}\n', `${FILE}:4:5: pools[2] (p): pool "p" on local is declared twice (also pools[1] (p))`],
  ];
  for (const [text, start] of cases) {
    const message = problem(text);
    assert.ok(message.startsWith(start), `${JSON.stringify(text)}\n  got:      ${message}\n  expected: ${start}...`);
  }
});

test('stack file on disk: regular files of at most 4 MiB; a FIFO, a directory or /dev/zero is one line, at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-stackfile-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'stack: disk\nexports:\n  - image: a.img\n    vm: v\n');
  assert.equal((await readStackFile(good)).exports[0]!.settings.image, join(dir, 'a.img'));
  const fifo = join(dir, 'fifo.yaml');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const big = join(dir, 'big.yaml');
  writeFileSync(big, 'stack: big\n');
  truncateSync(big, MAX_STACK_FILE_BYTES + 1);
  mkdirSync(join(dir, 'sub.yaml'));
  const cases: Array<[string, RegExp]> = [
    [fifo, /^stack file ".*fifo\.yaml" is a FIFO, not a regular file$/],
    [join(dir, 'sub.yaml'), /^stack file ".*sub\.yaml" is a directory, not a regular file$/],
    ['/dev/zero', /^stack file "\/dev\/zero" is a character device, not a regular file$/],
    [big, /^stack file ".*big\.yaml" is 4194305 bytes; the limit is 4 MiB$/],
    [join(dir, 'nope.yaml'), /^stack file ".*nope\.yaml" cannot be read: ENOENT$/],
  ];
  for (const [file, re] of cases) {
    await assert.rejects(readStackFile(file), (e: unknown) => e instanceof ValidationError && re.test(e.message), file);
  }
  // Through the CLI: exit 1, one line, for a FIFO (which used to hang) and a bad key.
  const r = await cli('apply', '-f', fifo);
  assert.equal(failedWith(r, /^virt-iscsi: stack file ".*fifo\.yaml" is a FIFO, not a regular file$/), undefined);
  const typo = join(dir, 'typo.yaml');
  writeFileSync(typo, 'stack: typo\nexports:\n  - image: a.img\n    vm: v\n    moed: block\n');
  const r2 = await cli('apply', '-f', typo, '--dry-run');
  assert.equal(failedWith(r2, /^virt-iscsi: .*typo\.yaml:5:5: exports\[1\] \(a\): key "moed" is not known; did you mean mode\?$/), undefined);
});

test('stack pools: chap-secret-file is read like every secret file: regular, at most 4 KiB, one line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-stacksecret-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spec = (file: string) => parseStack(`stack: s\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    chap-user: u\n    chap-secret-file: ${file}\n`, join(dir, 'stack.yaml'));
  writeFileSync(join(dir, 'ok.secret'), 'Secret123456\n');
  const ok = spec('ok.secret');
  assert.equal(await readPoolSecret(ok, ok.pools[0]!), 'Secret123456');
  writeFileSync(join(dir, 'big.secret'), 'x'.repeat(5000));
  writeFileSync(join(dir, 'empty.secret'), '\n');
  const cases: Array<[string, RegExp]> = [
    ['/dev/zero', /stack\.yaml: pools\[1\] \(p\): chap-secret-file "\/dev\/zero" is a character device, not a regular file$/],
    ['big.secret', /: chap-secret-file ".*big\.secret" is 5000 bytes; the limit is 4 KiB$/],
    ['empty.secret', /: chap-secret-file ".*empty\.secret" is empty$/],
    ['nope.secret', /: chap-secret-file ".*nope\.secret" cannot be read: ENOENT$/],
  ];
  for (const [file, re] of cases) {
    const s = spec(file);
    await assert.rejects(readPoolSecret(s, s.pools[0]!), (e: unknown) => e instanceof ValidationError && re.test(e.message), file);
  }
});
