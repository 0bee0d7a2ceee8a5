// Pool plans against the real libvirtd and a private tgtd on 127.0.0.1; results checked
// with virsh itself, virt-xml-validate and libiscsi's iscsi-readcapacity16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TimeoutError, ValidationError } from '../../src/errors.js';
import { createPoolSteps, deletePoolSteps, poolDefFor, poolSecretUsage, waitForVolumes, type PoolSpec } from '../../src/hypervisor/pools.js';
import { VirshError } from '../../src/hypervisor/virsh-errors.js';
import { Virsh } from '../../src/hypervisor/virsh.js';
import { runPlan } from '../../src/plan/plan.js';
import { LocalRunner } from '../../src/runner/local.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import { buildPool, parsePool } from '../../src/xml/pool.js';
import { parseSecret } from '../../src/xml/secret.js';
import { virtXmlValidate } from '../helpers/xml-validate.js';
import { removePool, startEnv, virsh, virshStatus } from './env.js';

/** The LUN's size as libiscsi's READ CAPACITY(16) reports it ("Total size:33554432"). */
function readCapacity(portal: string, iqn: string, lun: number, initiator: string): number {
  const out = execFileSync('iscsi-readcapacity16', ['-i', initiator, `iscsi://${portal}/${iqn}/${lun}`], { encoding: 'utf8' });
  const m = /^Total size:(\d+)$/m.exec(out);
  assert.ok(m, out);
  return Number(m[1]);
}

const secretsWith = (usage: string): string[] => virsh(['secret-list']).split('\n').filter((l) => l.includes(` ${usage}`));

test('pool plans on the real libvirtd', async (t) => {
  const env = await startEnv('pool');
  t.after(() => env.close());
  const v = new Virsh(new LocalRunner());
  const portal = { host: '127.0.0.1', port: env.tgtd.port };
  const pool = (tag: string, extra: Partial<PoolSpec> = {}): PoolSpec => {
    const name = `vit-pool-${tag}-${env.id}`;
    env.cleanup(() => removePool(name));
    return { name, type: 'iscsi-direct', portal, target: env.iqn, initiator: env.initiator(tag), autostart: true, ...extra };
  };

  await t.test('iscsi-direct: create starts it with autostart, lists the LUNs with their sizes; delete leaves nothing', async () => {
    const spec = pool('direct');
    const result = await runPlan(createPoolSteps(v, spec));
    assert.deepEqual(result, { applied: 4, skipped: 0 });
    const info = virsh(['pool-info', spec.name]);
    assert.match(info, /State:\s+running/);
    assert.match(info, /Autostart:\s+yes/);
    const vols = await v.volumes(spec.name);
    assert.deepEqual(vols.map((x) => x.name), ['unit:0:0:0', 'unit:0:0:1', 'unit:0:0:2', 'unit:0:0:3']);
    for (const lun of [1, 2] as const) {
      const bytes = readCapacity(env.tgtd.portal, env.iqn, lun, env.initiator('check'));
      assert.equal(bytes, env.sizes[lun], 'libiscsi reads the LUN at its file size');
      // libvirt's iscsi-direct backend reports one 512-byte block less (it multiplies the last LBA)
      assert.equal(vols[lun]!.capacity, bytes - 512);
      assert.match(virsh(['vol-info', '--bytes', '--pool', spec.name, `unit:0:0:${lun}`]), new RegExp(`Capacity:\\s+${bytes - 512} bytes`));
    }
    assert.equal(vols[1]!.path, `ip-127.0.0.1:${env.tgtd.port}-iscsi-${env.iqn}-lun-1`);

    const again = await runPlan(createPoolSteps(v, spec));
    assert.deepEqual(again, { applied: 0, skipped: 4 }, 'define, start, autostart are done, and the running pool lists its LUNs');

    await runPlan(await deletePoolSteps(v, spec.name));
    assert.match(virshStatus(['pool-info', spec.name]).stderr, /Storage pool not found/);
    assert.deepEqual(await deletePoolSteps(v, spec.name), [], 'a pool already gone is deleted');
  });

  await t.test('CHAP: the secret is defined private, its value set from a 0600 file; delete removes pool and secret', async () => {
    const spec = pool('chap', { target: env.chapIqn, chap: { user: env.chapUser, secret: env.chapPassword } });
    // a dry run first: every command printed, the password nowhere, nothing created
    const rec = new RecordingRunner(new LocalRunner());
    await runPlan(createPoolSteps(new Virsh(rec), spec));
    const plan = rec.render();
    assert.ok(!plan.includes(env.chapPassword));
    // the value goes through a 0600 file, removed right after
    assert.match(plan, /virsh -c qemu:\/\/\/system secret-set-value --secret [0-9a-f-]{36} --file \/dev\/stdin --plain <<'EOF'\n\*{8}\nEOF\n/);
    assert.match(plan, /virsh -c qemu:\/\/\/system pool-define --file \/dev\/stdin <<'EOF'\n<pool type="iscsi-direct">[^]*\nEOF\n/);
    assert.match(plan, /pool-start --pool vit-pool-chap-/);
    assert.equal(virshStatus(['pool-info', spec.name]).status, 1, 'the dry run created nothing');
    assert.deepEqual(secretsWith(poolSecretUsage(spec.name)), []);

    await runPlan(createPoolSteps(v, spec));
    const [line] = secretsWith(poolSecretUsage(spec.name));
    const uuid = line!.trim().split(/\s+/)[0]!;
    const secret = parseSecret(virsh(['secret-dumpxml', uuid]));
    assert.deepEqual([secret.private, secret.ephemeral, secret.description], [true, false, `virt-iscsi: CHAP for pool ${spec.name}`]);
    assert.match(virshStatus(['secret-get-value', uuid]).stderr, /secret is private/);
    assert.deepEqual(parsePool(virsh(['pool-dumpxml', spec.name])).auth, { username: env.chapUser, secret: { usage: poolSecretUsage(spec.name) } });
    assert.deepEqual((await v.volumes(spec.name)).map((x) => [x.name, x.capacity]), [
      ['unit:0:0:0', 0],
      ['unit:0:0:1', env.chapSize - 512],
    ]);
    await runPlan(await deletePoolSteps(v, spec.name));
    assert.equal(virshStatus(['pool-info', spec.name]).status, 1);
    assert.deepEqual(secretsWith(poolSecretUsage(spec.name)), [], 'the secret went with the pool');
  });

  await t.test('CHAP with a wrong secret: one clear error, and the rollback leaves no pool and no secret', async () => {
    const spec = pool('badchap', { target: env.chapIqn, chap: { user: env.chapUser, secret: 'not-the-password' } });
    await assert.rejects(runPlan(createPoolSteps(v, spec)), (e: Error) => {
      assert.ok(e instanceof VirshError && e.failure === 'iscsi-auth', String(e));
      assert.match(e.message, /pool-start .* failed on local \(exit 1\): .*Authentication failure.*\(the target refused the CHAP login/);
      assert.ok(!e.message.includes('\n') && !e.message.includes('not-the-password'));
      return true;
    });
    assert.equal(virshStatus(['pool-info', spec.name]).status, 1);
    assert.deepEqual(secretsWith(poolSecretUsage(spec.name)), []);
  });

  await t.test('a pool name used by a different pool is refused and that pool is left alone', async () => {
    const spec = pool('taken');
    await runPlan(createPoolSteps(v, { ...spec, autostart: false }));
    const before = virsh(['pool-dumpxml', spec.name]);
    const other = { ...spec, target: env.chapIqn };
    await assert.rejects(runPlan(createPoolSteps(v, other)), (e: Error) => {
      assert.ok(e instanceof ValidationError);
      assert.match(e.message, new RegExp(`pool name "${spec.name}" is already used on qemu:///system by an iscsi-direct pool of ${env.iqn}`));
      return true;
    });
    assert.equal(virsh(['pool-dumpxml', spec.name]), before);
    assert.match(virsh(['pool-info', spec.name]), /State:\s+running/);
  });

  await t.test('waiting for volumes refreshes the pool, and a wait that runs out says what it waited for', async () => {
    // A dir pool over an empty directory lists no volumes: what an iscsi pool can show right after start.
    const name = `vit-pool-wait-${env.id}`;
    const path = join(env.dir, 'wait');
    mkdirSync(path);
    const xml = join(env.dir, 'wait.xml');
    writeFileSync(xml, `<pool type='dir'><name>${name}</name><target><path>${path}</path></target></pool>`);
    env.cleanup(() => removePool(name));
    virsh(['pool-define', xml]);
    virsh(['pool-start', name]);
    const started = Date.now();
    await assert.rejects(waitForVolumes(v, name, 'the test target', { timeoutMs: 1500, intervalMs: 200 }), (e: Error) => {
      assert.ok(e instanceof TimeoutError);
      assert.equal(e.message, `waited 2s on qemu:///system for pool "${name}" to list the LUNs of the test target (pool-refresh, vol-list); does the target map LUNs to this initiator?`);
      return true;
    });
    assert.ok(Date.now() - started >= 1500);
    // a volume appears only after a refresh: the wait sees it
    writeFileSync(join(path, 'lun.img'), 'x');
    assert.deepEqual((await waitForVolumes(v, name, 'the test target', { timeoutMs: 5000 })).map((x) => x.name), ['lun.img']);
  });

  await t.test('type iscsi: libvirt takes the definition; starting needs open-iscsi, so it rolls back with a clear error', async () => {
    const spec = pool('iscsi', { type: 'iscsi', initiator: undefined });
    const def = poolDefFor(spec);
    virtXmlValidate(buildPool(def), 'storagepool');
    // for real: libvirt takes the definition and prints it back the same
    await runPlan([createPoolSteps(v, spec)[0]!]);
    const { uuid: _u, capacity: _c, allocation: _a, available: _v, ...back } = parsePool(virsh(['pool-dumpxml', spec.name]));
    assert.deepEqual(back, def);
    await runPlan(await deletePoolSteps(v, spec.name));
    // the whole plan: start fails on the missing iscsiadm, and the define is undone
    await assert.rejects(runPlan(createPoolSteps(v, spec)), (e: Error) => e instanceof VirshError && e.failure === 'no-iscsiadm' && /use an iscsi-direct pool/.test(e.message));
    assert.equal(virshStatus(['pool-info', spec.name]).status, 1);
  });
});
