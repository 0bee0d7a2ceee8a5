// The same plans through a real sshd on 127.0.0.1 (openRunner + SshRunner): the hypervisor
// is this machine's libvirtd reached over SSH, so every virsh call, XML file and secret
// file goes over the connection. Results checked with local virsh and tgtadm. Kept to one
// pool and one disk: every command is an SSH channel (about a second each on this machine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planAttach } from '../../src/hypervisor/attach.js';
import { createPoolSteps, deletePoolSteps, poolSecretUsage } from '../../src/hypervisor/pools.js';
import { Virsh } from '../../src/hypervisor/virsh.js';
import { runPlan } from '../../src/plan/plan.js';
import { openRunner } from '../../src/runner/open.js';
import { startSshd } from '../helpers/sshd.js';
import { removePool, startEnv, virsh, virshStatus } from './env.js';

test('pool with CHAP and a live network disk, on a hypervisor reached over SSH', async (t) => {
  const env = await startEnv('ssh');
  t.after(() => env.close());
  const sshd = await startSshd();
  env.cleanup(() => sshd.stop());
  const runner = await openRunner(sshd.uri, { identity: sshd.identity, knownHosts: sshd.knownHosts, sshConfig: 'none' });
  env.cleanup(() => runner.close());
  const v = new Virsh(runner);
  assert.equal(v.where, `qemu:///system on ${sshd.uri}`);
  const portal = { host: '127.0.0.1', port: env.tgtd.port };

  const pool = `vit-ssh-pool-${env.id}`;
  env.cleanup(() => removePool(pool));
  const spec = { name: pool, type: 'iscsi-direct' as const, portal, target: env.chapIqn, initiator: env.initiator('pool'), chap: { user: env.chapUser, secret: env.chapPassword }, autostart: false };
  await runPlan(createPoolSteps(v, spec));
  assert.match(virsh(['pool-info', pool]), /State:\s+running/);
  // the target demands CHAP: libvirt lists its LUN only with the password set over SSH
  assert.deepEqual((await v.volList(pool)).map((x) => x.name), ['unit:0:0:0', 'unit:0:0:1']);
  assert.match(virsh(['vol-info', '--bytes', '--pool', pool, 'unit:0:0:1']), new RegExp(`Capacity:\\s+${env.chapSize - 512} bytes`));

  const domain = env.domain('dom');
  const plan = await planAttach(v, { domain, source: { mode: 'network', portal, target: env.iqn, lun: 1, initiator: env.initiator('disk') } });
  await runPlan(plan.steps);
  assert.match(virsh(['domblkinfo', domain, plan.disk.target.dev]), new RegExp(`Capacity:\\s+${env.sizes[1]}\\n`));
  assert.ok(env.sessions(env.iqn).includes(env.initiator('disk')));

  await runPlan(await deletePoolSteps(v, pool));
  assert.equal(virshStatus(['pool-info', pool]).status, 1);
  assert.ok(!virsh(['secret-list']).includes(poolSecretUsage(pool)), 'no secret left behind');
});
