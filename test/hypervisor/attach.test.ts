// Attach, detach and media plans against real libvirtd + QEMU (TCG) domains and a private
// tgtd on 127.0.0.1. Results are read back with virsh (domblklist, domblkinfo, dumpxml,
// QEMU's own `info block`) and tgtadm (which initiators hold a session).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { truncateSync, writeFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import { planAttach, planDetach, type AttachRequest } from '../../src/hypervisor/attach.js';
import { byPathSource, type SourceSpec } from '../../src/hypervisor/disks.js';
import { planEject, planInsert } from '../../src/hypervisor/media.js';
import { createPoolSteps } from '../../src/hypervisor/pools.js';
import { NotFoundError, VirshError } from '../../src/hypervisor/virsh-errors.js';
import { Virsh } from '../../src/hypervisor/virsh.js';
import { runPlan } from '../../src/plan/plan.js';
import { LocalRunner } from '../../src/runner/local.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import { iscsiChapSecret } from '../../src/xml/secret.js';
import { waitFor } from '../helpers/daemon.js';
import { quietly, removePool, startEnv, virsh, type Env } from './env.js';
import { randomUUID } from 'node:crypto';

/** The `virsh domblklist --details` row of a target dev: [type, device, target, source]. */
function blk(domain: string, dev: string, inactive = false): string[] | undefined {
  const out = virsh(['domblklist', '--details', ...(inactive ? ['--inactive'] : []), domain]);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols[2] === dev);
}

const capacity = (domain: string, dev: string): number => Number(/Capacity:\s+(\d+)/.exec(virsh(['domblkinfo', domain, dev]))?.[1]);

/** QEMU's own view of a block device (`info block`): the entry that logs in with `initiator`. */
function qemuBlock(domain: string, initiator: string): string | undefined {
  const out = virsh(['qemu-monitor-command', domain, '--hmp', 'info block']);
  return out.split(/\n\n/).find((entry) => entry.includes(`"initiator-name": "${initiator}"`));
}

test('attach, detach and media on running and shut-off QEMU domains', async (t) => {
  const env: Env = await startEnv('att');
  t.after(() => env.close());
  const v = new Virsh(new LocalRunner());
  const portal = { host: '127.0.0.1', port: env.tgtd.port };
  const main = env.domain('main', { ideCdrom: true });
  // no SCSI controller: the dry run, then a failed attach that rolls its controller back
  const spare = env.domain('spare', { scsi: false });
  const net = (lun: number, tag: string, extra: Partial<Extract<SourceSpec, { mode: 'network' }>> = {}): SourceSpec => ({
    mode: 'network',
    portal,
    target: env.iqn,
    lun,
    initiator: env.initiator(tag),
    ...extra,
  });
  const attach = async (req: AttachRequest) => {
    const plan = await planAttach(v, req);
    await runPlan(plan.steps);
    return plan;
  };

  await t.test('network disk live: QEMU logs in, domblkinfo shows the LUN size; detach ends the session', async () => {
    const plan = await attach({ domain: main, source: net(1, 'net') });
    assert.deepEqual(plan.placement && [plan.placement.kind, plan.placement.target, plan.placement.flags], ['attach', { dev: 'sda', bus: 'scsi' }, { live: true, config: true }]);
    assert.deepEqual(blk(main, 'sda'), ['network', 'disk', 'sda', `${env.iqn}/1`]);
    assert.deepEqual(blk(main, 'sda', true), ['network', 'disk', 'sda', `${env.iqn}/1`], 'and persistent');
    assert.equal(capacity(main, 'sda'), env.sizes[1]);
    // the driver reads the same back
    assert.deepEqual((await v.blkList(main)).find((b) => b.target === 'sda'), { type: 'network', device: 'disk', target: 'sda', source: `${env.iqn}/1` });
    assert.equal((await v.blkInfo(main, 'sda')).capacity, env.sizes[1]);
    assert.ok(env.sessions(env.iqn).includes(env.initiator('net')), 'tgtd shows QEMU logged in with our initiator name');
    // the same request again is already done
    assert.deepEqual((await planAttach(v, { domain: main, source: net(1, 'net'), dev: 'sda' })).steps, []);

    await runPlan((await planDetach(v, { domain: main, dev: 'sda' })).steps);
    assert.equal(blk(main, 'sda'), undefined);
    assert.equal(blk(main, 'sda', true), undefined);
    await waitFor('tgtd to drop the detached disk session', () => !env.sessions(env.iqn).includes(env.initiator('net')), 15000);
  });

  await t.test('volume disk from an iscsi-direct pool, and a cdrom over SCSI, attached live (the cdrom read-only)', async () => {
    const pool = `vit-att-pool-${env.id}`;
    env.cleanup(() => removePool(pool));
    await runPlan(createPoolSteps(v, { name: pool, type: 'iscsi-direct', portal, target: env.iqn, initiator: env.initiator('pool'), autostart: false }));
    const vol = await attach({ domain: main, source: { mode: 'volume', pool, volume: 'unit:0:0:2' } });
    const dev = vol.disk.target.dev;
    assert.deepEqual(blk(main, dev), ['volume', 'disk', dev, 'unit:0:0:2']);
    assert.equal(capacity(main, dev), env.sizes[2]);

    const cd = await attach({ domain: main, source: net(3, 'cd'), cdrom: true });
    assert.deepEqual([cd.disk.device, cd.disk.target.bus, cd.disk.readonly], ['cdrom', 'scsi', true]);
    const cdDev = cd.disk.target.dev;
    assert.deepEqual(blk(main, cdDev), ['network', 'cdrom', cdDev, `${env.iqn}/3`]);
    assert.match(qemuBlock(main, env.initiator('cd')) ?? '', /\(raw, read-only\)/, 'QEMU opened it read-only');
    assert.equal(capacity(main, cdDev), env.sizes[3]);
    for (const d of [dev, cdDev]) await runPlan((await planDetach(v, { domain: main, dev: d })).steps);
    assert.equal(blk(main, cdDev), undefined);
  });

  await t.test('a cdrom on IDE goes into the existing empty drive (no live attach on ide); eject; insert a volume', async () => {
    const plan = await attach({ domain: main, source: net(3, 'ide'), cdrom: true, bus: 'ide' });
    assert.equal(plan.placement?.kind, 'media');
    assert.deepEqual(blk(main, 'hdc'), ['network', 'cdrom', 'hdc', `${env.iqn}/3`]);
    assert.deepEqual(blk(main, 'hdc', true), ['network', 'cdrom', 'hdc', `${env.iqn}/3`]);
    assert.match(qemuBlock(main, env.initiator('ide')) ?? '', /Attached to:\s+ide0-1-0/);
    assert.ok(env.sessions(env.iqn).includes(env.initiator('ide')));
    // a disk on IDE cannot go in live at all: refused before anything runs
    await assert.rejects(planAttach(v, { domain: main, source: net(1, 'x'), bus: 'ide' }), /bus ide cannot take a live attach.*--config/);

    await runPlan((await planEject(v, { domain: main, dev: 'hdc' })).steps);
    assert.deepEqual(blk(main, 'hdc'), ['file', 'cdrom', 'hdc', '-']);
    assert.deepEqual(blk(main, 'hdc', true), ['file', 'cdrom', 'hdc', '-']);
    assert.deepEqual((await planEject(v, { domain: main, dev: 'hdc' })).steps, [], 'an empty drive is already ejected');

    const pool = `vit-att-media-${env.id}`;
    env.cleanup(() => removePool(pool));
    await runPlan(createPoolSteps(v, { name: pool, type: 'iscsi-direct', portal, target: env.iqn, initiator: env.initiator('media'), autostart: false }));
    const ins = await planInsert(v, { domain: main, dev: 'hdc', source: { mode: 'volume', pool, volume: 'unit:0:0:3' } });
    await runPlan(ins.steps);
    assert.deepEqual(blk(main, 'hdc'), ['volume', 'cdrom', 'hdc', 'unit:0:0:3']);
    await assert.rejects(planInsert(v, { domain: main, dev: 'hdc', source: net(3, 'again') }), /already holds volume unit:0:0:3 of pool .*--replace/);
    // replacing media and undoing it (rollback) puts the volume back
    const replace = await planInsert(v, { domain: main, dev: 'hdc', source: net(3, 'again'), replace: true });
    await assert.rejects(runPlan([...replace.steps, { title: 'fail on purpose', apply: () => Promise.reject(new Error('later step failed')) }]), /later step failed/);
    assert.deepEqual(blk(main, 'hdc'), ['volume', 'cdrom', 'hdc', 'unit:0:0:3']);
    await runPlan((await planEject(v, { domain: main, dev: 'hdc' })).steps);
  });

  await t.test('a domain without a SCSI controller gets a virtio-scsi one, live and persistent', async () => {
    const bare = env.domain('bare', { scsi: false });
    const plan = await attach({ domain: bare, source: net(2, 'bare') });
    assert.equal(plan.steps.length, 1, 'one attach step, which adds the controller first');
    assert.match(plan.steps[0]!.title, /adding a virtio-scsi controller/);
    const controllers = (inactive: boolean) => virsh(['dumpxml', ...(inactive ? ['--inactive'] : []), bare]).match(/<controller type='scsi' index='0' model='virtio-scsi'>/g)?.length;
    assert.equal(controllers(false), 1);
    assert.equal(controllers(true), 1);
    assert.equal(capacity(bare, 'sda'), env.sizes[2]);
  });

  await t.test('attach to a shut-off domain lands in dumpxml --inactive; --live is refused', async () => {
    const off = env.domain('off', { start: false });
    const plan = await attach({ domain: off, source: net(1, 'off') });
    assert.deepEqual(plan.placement?.flags, { live: false, config: true });
    assert.match(virsh(['dumpxml', '--inactive', off]), new RegExp(`<source protocol='iscsi' name='${env.iqn}/1'>`));
    assert.deepEqual(blk(off, 'sda', true), ['network', 'disk', 'sda', `${env.iqn}/1`]);
    await assert.rejects(planAttach(v, { domain: off, source: net(2, 'off2'), flags: 'live' }), /is not running; --live needs a running domain \(use --config\)/);
    await runPlan((await planDetach(v, { domain: off, dev: 'sda' })).steps);
    assert.equal(blk(off, 'sda', true), undefined);
  });

  await t.test('dry run: the controller and the disk XML are printed in order, nothing changes', async () => {
    const rec = new RecordingRunner(new LocalRunner());
    const plan = await planAttach(new Virsh(rec), { domain: spare, source: net(1, 'dry'), cdrom: true });
    await runPlan(plan.steps);
    const shell = rec.render();
    assert.match(shell, /attach-device --domain vit-att-spare-\w+ --file \/dev\/stdin --live --config <<'EOF'\n<controller type="scsi" index="0" model="virtio-scsi"\/>\nEOF\n[^]*attach-device --domain vit-att-spare-\w+ --file \/dev\/stdin --live --config <<'EOF'\n<disk type="network" device="cdrom">[^]*<readonly\/>/);
    assert.doesNotMatch(virsh(['dumpxml', '--inactive', spare]), /<controller type='scsi'/);
  });

  await t.test('CHAP end to end: a libvirt secret logs QEMU in; a wrong one fails with a clear error and changes nothing', async () => {
    const secret = async (tag: string, value: string): Promise<string> => {
      const usage = `vit-att-${tag}-${env.id}`;
      const uuid = await v.secretDefine({ ...iscsiChapSecret({ usage }), uuid: randomUUID() });
      env.cleanup(() => quietly(['secret-undefine', uuid]));
      await v.secretSetValue(uuid, value);
      return usage;
    };
    const good = await secret('good', env.chapPassword);
    const chap = (usage: string, tag: string): SourceSpec => net(1, tag, { target: env.chapIqn, auth: { username: env.chapUser, secret: { usage } } });
    const plan = await attach({ domain: main, source: chap(good, 'chap') });
    assert.equal(capacity(main, plan.disk.target.dev), env.chapSize);
    assert.ok(env.sessions(env.chapIqn).includes(env.initiator('chap')));
    await runPlan((await planDetach(v, { domain: main, dev: plan.disk.target.dev })).steps);

    const bad = await secret('bad', 'wrong-password-1');
    const before = virsh(['domblklist', '--details', main]);
    await assert.rejects(attach({ domain: main, source: chap(bad, 'badchap') }), (e: Error) => {
      assert.ok(e instanceof VirshError && e.failure === 'iscsi-auth', String(e));
      assert.match(e.message, /attach-device .* failed on local \(exit 1\): .*Authentication failure.*\(the target refused the CHAP login/);
      return true;
    });
    assert.equal(virsh(['domblklist', '--details', main]), before);
    // the controller a failed attach had added is taken back out of the definition (a guest
    // without an OS never acknowledges a PCI unplug, so the running copy may keep it)
    const failing = await planAttach(v, { domain: spare, source: chap(bad, 'badchap2') });
    assert.deepEqual(failing.placement?.kind === 'attach' && failing.placement.controller?.flags, { live: true, config: true });
    await assert.rejects(runPlan(failing.steps), VirshError);
    assert.doesNotMatch(virsh(['dumpxml', '--inactive', spare]), /<controller type='scsi'/);
  });

  await t.test('block disk from a host block device (a loop device stands in for /dev/disk/by-path: no open-iscsi login here)', async (st) => {
    const image = join(env.dir, 'loop.img');
    writeFileSync(image, '');
    truncateSync(image, 6 * 1024 * 1024);
    const lo = spawnSync('losetup', ['--find', '--show', image], { encoding: 'utf8' });
    if (lo.status !== 0) return st.skip(`no loop device to stand in for a by-path device: ${lo.stderr.trim()}`);
    const dev = lo.stdout.trim();
    env.cleanup(() => execFileSync('losetup', ['-d', dev]));
    const plan = await attach({ domain: main, source: { mode: 'block', dev } });
    assert.deepEqual(blk(main, plan.disk.target.dev), ['block', 'disk', plan.disk.target.dev, dev]);
    assert.equal(capacity(main, plan.disk.target.dev), 6 * 1024 * 1024);
    await runPlan((await planDetach(v, { domain: main, dev: plan.disk.target.dev })).steps);
    // into the empty IDE drive: change-media --insert --block
    const media = await planInsert(v, { domain: main, dev: 'hdc', source: { mode: 'block', dev } });
    await runPlan(media.steps);
    assert.deepEqual(blk(main, 'hdc'), ['block', 'cdrom', 'hdc', dev]);
    assert.deepEqual(blk(main, 'hdc', true), ['block', 'cdrom', 'hdc', dev]);
    await runPlan((await planEject(v, { domain: main, dev: 'hdc' })).steps);
    assert.deepEqual(blk(main, 'hdc'), ['file', 'cdrom', 'hdc', '-'], 'libvirt makes an ejected drive a file drive again');
  });

  await t.test('bad input: one line naming the value, and nothing changed', async () => {
    const before = virsh(['dumpxml', '--inactive', main]) + virsh(['dumpxml', main]);
    const refused = async (req: Promise<unknown>, type: abstract new (...args: never[]) => ValidationError, pattern: RegExp): Promise<void> => {
      await assert.rejects(req, (e: Error) => {
        assert.ok(e instanceof type, `${e.constructor.name}: ${e.message}`);
        assert.match(e.message, pattern);
        assert.ok(!e.message.includes('\n'));
        return true;
      });
    };
    await refused(planAttach(v, { domain: `vit-att-nope-${env.id}`, source: net(1, 'x') }), NotFoundError, /^no domain "vit-att-nope-[0-9a-f]+" on qemu:\/\/\/system$/);
    await refused(planAttach(v, { domain: main, source: { mode: 'volume', pool: `vit-att-nopool-${env.id}`, volume: 'unit:0:0:1' } }), NotFoundError, /^no pool "vit-att-nopool-/);
    await refused(planAttach(v, { domain: main, source: net(1, 'x'), dev: 'hdc' }), ValidationError, /target dev "hdc" is already taken/);
    await refused(planAttach(v, { domain: main, source: net(1, 'x'), bus: 'sata' }), ValidationError, /bus sata cannot take a live attach.*--config/);
    await refused(planAttach(v, { domain: main, source: net(1, 'x', { auth: { username: 'u', secret: { usage: 'vit-no-such-secret' } } }) }), ValidationError, /no libvirt secret with usage "vit-no-such-secret"/);
    const byPath = await byPathSource(v, { host: 'localhost', port: env.tgtd.port }, env.iqn, 1);
    assert.deepEqual(byPath, { mode: 'block', dev: `/dev/disk/by-path/ip-127.0.0.1:${env.tgtd.port}-iscsi-${env.iqn}-lun-1` }, 'the portal name resolved to its IP');
    await refused(planAttach(v, { domain: main, source: byPath }), ValidationError, /block device "\/dev\/disk\/by-path\/ip-127\.0\.0\.1:.*-lun-1" does not exist on local; log in/);
    await refused(planDetach(v, { domain: main, dev: 'sdz' }), NotFoundError, /^no disk "sdz" on domain "vit-att-main-/);
    assert.equal(virsh(['dumpxml', '--inactive', main]) + virsh(['dumpxml', main]), before);

    const noAcpi = env.domain('noacpi', { acpi: false, scsi: false, ideCdrom: true });
    await refused(planAttach(v, { domain: noAcpi, source: net(1, 'x') }), ValidationError, /no SCSI controller, and no ACPI to hot-plug one/);
    await refused(planAttach(v, { domain: noAcpi, source: net(1, 'x'), bus: 'virtio' }), ValidationError, /no ACPI, so QEMU cannot hot-plug on PCI/);
    // but its empty cdrom drive takes media
    const cd = await attach({ domain: noAcpi, source: net(3, 'noacpi'), cdrom: true });
    assert.deepEqual([cd.placement?.kind, cd.disk.target.dev], ['media', 'hdc']);
    assert.deepEqual(blk(noAcpi, 'hdc'), ['network', 'cdrom', 'hdc', `${env.iqn}/3`]);
  });

});
