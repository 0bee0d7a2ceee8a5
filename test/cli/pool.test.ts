// `virt-iscsi pool create|delete|list|volumes` through the real CLI, against the real
// libvirtd and a private tgtd; checked with virsh. Exit codes 0/1/2, --json, --dry-run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, failedWith } from '../helpers/cli.js';
import { removePool, startEnv, virsh, virshStatus } from '../hypervisor/env.js';

test('pool commands', async (t) => {
  const env = await startEnv('clipool');
  t.after(() => env.close());
  const portal = `127.0.0.1:${env.tgtd.port}`;
  const name = `vit-clipool-${env.id}`;
  const usage = `virt-iscsi-pool-${name}`;
  env.cleanup(() => removePool(name));
  const secretFile = join(env.dir, 'chap.secret');
  writeFileSync(secretFile, `${env.chapPassword}\n`, { mode: 0o600 });
  const create = ['pool', 'create', name, '--type', 'iscsi-direct', '--portal', portal, '--target', env.chapIqn, '--initiator', env.initiator('cli'), '--chap', env.chapUser, '--chap-secret-file', secretFile];

  await t.test('--dry-run prints every command and XML, the CHAP password as ********, and creates nothing', async () => {
    const r = await cli(...create, '--dry-run');
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.stdout.includes(env.chapPassword));
    assert.match(r.stdout, /^would create pool /m);
    assert.match(r.stdout, /virsh -c qemu:\/\/\/system secret-set-value --secret \S+ --file \/dev\/stdin --plain <<'EOF'\n\*{8}\nEOF/);
    assert.match(r.stdout, new RegExp(`<pool type="iscsi-direct">\\n  <name>${name}</name>`));
    assert.match(r.stdout, new RegExp(`virsh -c qemu:///system pool-start --pool ${name}\\nvirsh -c qemu:///system pool-autostart --pool ${name}\\nvirsh -c qemu:///system pool-refresh --pool ${name}`));
    assert.equal(virshStatus(['pool-info', name]).status, 1);
    assert.ok(!virsh(['secret-list']).includes(usage));
  });

  await t.test('create --json: running, autostarted, the CHAP LUN listed with its size; list and volumes agree', async () => {
    const r = await cli(...create, '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.volumes.map((v: { name: string; capacity: number }) => [v.name, v.capacity]), [
      ['unit:0:0:0', 0],
      ['unit:0:0:1', env.chapSize - 512],
    ]);
    assert.match(virsh(['pool-info', name]), /State:\s+running[^]*Autostart:\s+yes/);
    assert.match(virsh(['secret-list']), new RegExp(`iscsi ${usage}`));
    const [list, vols, again] = await Promise.all([cli('pool', 'list', '--json'), cli('pool', 'volumes', name), cli(...create)]);
    assert.deepEqual(
      JSON.parse(list.stdout).find((p: { name: string }) => p.name === name),
      { name, state: 'running', autostart: true, persistent: true, capacity: env.chapSize - 512 },
    );
    assert.match(vols.stdout, new RegExp(`^unit:0:0:1  16\\.0 MiB  ip-127\\.0\\.0\\.1:${env.tgtd.port}-iscsi-${env.chapIqn}-lun-1$`, 'm'));
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /already done: define iscsi-direct pool/);
  });

  await t.test('bad input: one line on stderr, exit 1 (2 for usage), nothing changed', async () => {
    const before = virsh(['pool-dumpxml', name]);
    const results = await Promise.all([
      cli('pool', 'create', name, '--type', 'iscsi-direct', '--portal', portal, '--target', env.iqn, '--initiator', env.initiator('x')),
      cli('pool', 'create', `${name}-x`, '--type', 'iscsi-direct', '--portal', portal, '--target', env.iqn),
      cli('pool', 'create', `${name}-x`, '--portal', portal, '--target', env.iqn, '--chap', 'someone'),
      cli('pool', 'create', `${name}-x`, '--portal', '256.1.1.1', '--target', env.iqn),
      cli('pool', 'volumes', `${name}-nope`),
      cli('pool', 'list', '--connect', 'qemu+unix:///system?socket=/run/libvirt/virt-iscsi-test-no-such-sock'),
      cli('pool', 'create', `${name}-x`, '--target', env.iqn),
    ]);
    const expected = [
      new RegExp(`pool name "${name}" is already used on qemu:///system by an iscsi-direct pool of ${env.chapIqn}`),
      /--type iscsi-direct needs --initiator IQN/,
      /--chap "someone" needs --chap-secret-file FILE/,
      /portal "256\.1\.1\.1" has an invalid host/,
      new RegExp(`^virt-iscsi: no pool "${name}-nope" on qemu:///system$`),
      /cannot connect to libvirt at qemu\+unix:\/\/\/system\?socket=\/run\/libvirt\/virt-iscsi-test-no-such-sock: Failed to connect socket .*; is libvirtd running there\?/,
    ];
    expected.forEach((pattern, i) => assert.equal(failedWith(results[i]!, pattern), undefined));
    assert.equal(results[6]!.status, 2, 'a missing required option is a usage error');
    assert.equal(virsh(['pool-dumpxml', name]), before);
    assert.equal(virshStatus(['pool-info', `${name}-x`]).status, 1);
  });

  await t.test('delete removes the pool and its secret; deleting again is fine', async () => {
    const r = await cli('pool', 'delete', name);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /done: stop pool[^]*done: undefine pool[^]*done: undefine libvirt secret/);
    assert.equal(virshStatus(['pool-info', name]).status, 1);
    assert.ok(!virsh(['secret-list']).includes(usage));
    const again = await cli('pool', 'delete', name);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /is not there \(nothing to do\)/);
  });
});
