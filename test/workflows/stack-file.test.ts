// Stack files read into typed specs: defaults, per-export overrides, relative paths, pools,
// and one-line errors that name the file, the entry and the bad value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { parseStack } from '../../src/workflows/stack-file.js';

const FILE = '/srv/stacks/lab.yaml';

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

test('stack file: relative image paths are the stack file directory\'s; JSON works the same', () => {
  const yaml = parseStack('stack: a\nexports:\n  - image: img/disk.img\n    vm: v\n', FILE);
  assert.equal(yaml.exports[0]!.settings.image, '/srv/stacks/img/disk.img');
  const json = parseStack('{"stack": "a", "exports": [{"image": "img/disk.img", "vm": "v"}]}', FILE);
  assert.deepEqual(json, yaml);
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

test('stack file: every mistake is one line naming the file, the entry and the bad value', () => {
  const head = 'stack: lab\nexports:\n';
  const cases: Array<[string, string]> = [
    ['exports:\n  - image: /a.img\n    vm: v\n', `${FILE}: stack null is not a stack name`],
    ['stack: Lab_1\n', `${FILE}: stack "Lab_1" is not a stack name`],
    ['stack: lab\nexport:\n  - image: /a.img\n', `${FILE}: key "export" is not known; expected one of stack, defaults, exports, pools`],
    [`${head}  - image: /a.img\n    vm: v\n    moed: network\n`, `${FILE}: exports[1] (a): key "moed" is not known; expected one of image, name, vm,`],
    [`${head}  - image: /a.img\n    vm: v\n    mode: floppy\n`, `${FILE}: exports[1] (a): mode "floppy" is not one of pool, direct, network, block`],
    [`${head}  - image: /a.img\n    vm: v\n    readonly: yes\n`, `${FILE}: exports[1] (a): readonly "yes" is not true or false`],
    [`${head}  - image: /a.img\n    vm: v\n    control-port: 70000\n`, `${FILE}: exports[1] (a): control-port 70000 is not a port number`],
    [`${head}  - image: /a.img\n    vm: v\n    storage: ftp://x\n`, `${FILE}: exports[1] (a): host "ftp://x" is not a host URI`],
    [`${head}  - image: /a.img\n    vm: v\n    portal: 256.1.1.1\n`, `${FILE}: exports[1] (a): portal "256.1.1.1" has an invalid host`],
    [`${head}  - image: /a.img\n    vm: v\n    name: Bad_Name\n`, `${FILE}: exports[1] (Bad_Name): export name "Bad_Name" is not allowed`],
    [`${head}  - image: /a.iso\n    vm: v\n    readonly: false\n`, `${FILE}: exports[1] (a): readonly false with a CD-ROM`],
    [`${head}  - vm: v\n`, `${FILE}: exports[1]: has no image`],
    [`${head}  - image: /a.img\n`, `${FILE}: exports[1] (a): has no vm`],
    [`${head}  - image: a.img\n    vm: v\n    storage: ssh://stor1\n`, `${FILE}: exports[1] (a): image "a.img" is a relative path; give its absolute path on ssh://stor1`],
    [`${head}  - image: /x/a.img\n    vm: v\n  - image: /y/a.img\n    vm: w\n`, `${FILE}: exports[2] (a): export name "a" is declared twice (also exports[1] (a))`],
    [`${head}  - image: /a.img\n    vm: v\n  - image: /a.img\n    vm: w\n    name: b\n`, `${FILE}: exports[2] (b): image "/a.img" on local is already exported by exports[1] (a)`],
    [`${head}  - just-text\n`, `${FILE}: exports[1]: expected a mapping of key: value lines, got "just-text"`],
    ['stack: lab\nexports: /a.img\n', `${FILE}: exports: expected a list ("- " items), got "/a.img"`],
    ['stack: lab\ndefaults:\n  image: /a.img\n', `${FILE}: defaults: key "image" is not known`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n', `${FILE}: pools[1] (p): has no target`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    type: rbd\n', `${FILE}: pools[1] (p): type "rbd" is not one of iscsi, iscsi-direct`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    type: iscsi-direct\n', `${FILE}: pools[1] (p): type iscsi-direct needs an initiator`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.2004-04.com.example:x\n    chap-user: u\n', `${FILE}: pools[1] (p): chap-user and chap-secret-file go together`],
    ['stack: lab\npools:\n  - name: p\n    portal: 192.0.2.1\n    target: iqn.bad\n', `${FILE}: pools[1] (p): `],
    ['stack: lab\nexports:\n  - image: &x /a.img\n', `${FILE} line 3: anchors and aliases`],
  ];
  for (const [text, start] of cases) {
    assert.throws(
      () => parseStack(text, FILE),
      (e: unknown) => e instanceof ValidationError && e.message.startsWith(start) && !e.message.includes('\n'),
      `${JSON.stringify(text)} -> ${start}`,
    );
  }
});
