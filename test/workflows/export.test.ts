// The export workflow end to end on this machine: a private tgtd, the running libvirtd, a
// running QEMU domain. Results are read with tools we did not write: virsh (domblklist,
// domblkinfo, dumpxml, pool-list, secret-list), tgtadm --op show, and libiscsi's iscsi-inq
// logging in with the export's initiator name (and with another one, which the ACL refuses).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VirtIscsiError } from '../../src/errors.js';
import { Session } from '../../src/cli/session.js';
import { exportStatus } from '../../src/workflows/status.js';
import { minimalDomainXml } from '../helpers/libvirt.js';
import { inquiry } from '../storage/tgt/initiator.js';
import { MiB, startEnv, virsh, type Env } from './env.js';
import { recordPool, asIscsi } from '../../src/workflows/records.js';

/** The `<disk>` element of the domain's definition whose target dev is `dev`. */
function diskXml(env: Env, dev: string, inactive = true): string {
  const xml = virsh(['dumpxml', ...(inactive ? ['--inactive'] : []), env.domain]);
  return xml.split(/(?=<disk )/).find((d) => d.includes(`<target dev='${dev}'`))?.split('</disk>')[0] ?? '';
}

test('export, export again, status, unexport, unexport again: direct, network, CHAP, ISO, locally', async (t) => {
  const env = await startEnv('ex');
  t.after(() => env.close());

  await t.test('direct mode (the default here): iscsi-direct pool, volume disk, live and persistent, ACL for exactly one initiator', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-data.img`, 32 * MiB);
    const r = await env.exportIt(image);
    const x = asIscsi(r.record);
    const a = x.hypervisors[0]!.attachment!;
    assert.equal(x.name, `${env.id}-data`);
    assert.equal(x.mode, 'direct', 'no open-iscsi login here, libvirt has iscsi-direct');
    assert.match(x.target, new RegExp(`^iqn\\.\\d{4}-\\d{2}\\.[a-z0-9.-]+:${x.name}$`));
    assert.ok(r.applied > 5);
    assert.deepEqual(env.blk().find((b) => b[2] === a.dev), ['volume', 'disk', a.dev, 'unit:0:0:1']);
    assert.deepEqual(env.blk(true).find((b) => b[2] === a.dev), ['volume', 'disk', a.dev, 'unit:0:0:1'], 'and in the definition');
    assert.equal(env.capacity(a.dev), 32 * MiB, 'the VM sees the image size');
    assert.ok(env.sessions(x.target).includes(x.hypervisors[0]!.initiator), "QEMU's session uses the export's initiator name");
    const disk = diskXml(env, a.dev);
    assert.match(disk, new RegExp(`<alias name='ua-virt-iscsi-${x.name}'/>`));
    assert.match(disk, new RegExp(`<serial>${x.serial}</serial>`));
    const shown = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
    assert.match(shown, new RegExp(`SCSI SN: ${x.serial}`), 'the LUN carries the serial');
    assert.ok(virsh(['pool-list', '--all']).includes(`virt-iscsi-${x.name}`));
    // The ACL: exactly the export's initiator logs in; any other name is refused.
    const login = { portal: env.tgtd.portal, iqn: x.target, lun: 1 };
    assert.equal(inquiry({ ...login, initiator: x.hypervisors[0]!.initiator }).status, 0);
    assert.notEqual(inquiry({ ...login, initiator: `iqn.2024-01.dev.virt-iscsi:${env.id}-intruder` }).status, 0);
    // Records: on the storage host (0600, no attachment) and here (with it).
    const hostFile = join(env.hostRecordDir, `${x.name}.json`);
    assert.equal(statSync(hostFile).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(hostFile, 'utf8')).hypervisors[0].attachment, undefined);
    assert.deepEqual(JSON.parse(readFileSync(join(env.stateDir, `${x.name}.json`), 'utf8')).hypervisors[0].attachment, a);

    const again = await env.exportIt(image);
    assert.equal(again.applied, 0, 'the second run changes nothing');
    assert.deepEqual(again.record.hypervisors[0]!.attachment, a);

    const s = new Session();
    const [st] = await exportStatus(s, { stateDir: env.stateDir, names: [x.name] }).finally(() => s.close());
    assert.ok(st, 'status lists it');
    assert.equal(st.healthy, true, st.problems.join('; '));
    assert.deepEqual(st.health, { target: 'ok', lun: 'ok', acl: 'ok', chap: 'n/a', secret: 'n/a', pool: 'ok', volume: 'ok', disk: 'ok', session: 'ok', settings: 'n/a' });
    assert.equal(st.dev, a.dev);
    assert.ok(st.sessions.some((x2) => x2.initiator === x.hypervisors[0]!.initiator));

    const u = await env.unexportIt(x.name);
    assert.equal(u.found, true);
    assert.deepEqual(env.snapshot(), before, 'every host as it was');
    assert.equal(statSync(image).size, 32 * MiB, 'the image is untouched');
    assert.deepEqual(readdirSync(env.stateDir), []);
    const twice = await env.unexportIt(x.name);
    assert.deepEqual([twice.found, twice.applied], [false, 0], 'unexport twice is fine');
  });

  await t.test('network mode with CHAP: QEMU logs in with the libvirt secret; the secret is in no record', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-chap.img`, 16 * MiB);
    const r = await env.exportIt(image, { mode: 'network', chap: true });
    const x = asIscsi(r.record);
    const a = x.hypervisors[0]!.attachment!;
    assert.deepEqual(env.blk().find((b) => b[2] === a.dev), ['network', 'disk', a.dev, `${x.target}/1`]);
    assert.equal(env.capacity(a.dev), 16 * MiB);
    assert.ok(env.sessions(x.target).includes(x.hypervisors[0]!.initiator));
    assert.match(virsh(['secret-list']), new RegExp(`iscsi +virt-iscsi-${x.name}\\b`));
    const accounts = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'account']);
    assert.ok(accounts.includes(x.chapUser!), 'the CHAP account is on the target');
    // The secret is only in the backend's 0600 config (and libvirt): read it there to log in.
    const conf = readdirSync(env.confDir).find((f) => f.includes(x.name))!;
    assert.equal(statSync(join(env.confDir, conf)).mode & 0o777, 0o600);
    const secret = /incominguser \S+ (\S+)/.exec(readFileSync(join(env.confDir, conf), 'utf8'))![1]!;
    const login = { portal: env.tgtd.portal, iqn: x.target, lun: 1, initiator: x.hypervisors[0]!.initiator };
    assert.equal(inquiry({ ...login, chap: { user: x.chapUser!, secret } }).status, 0);
    assert.notEqual(inquiry(login).status, 0, 'without CHAP the target refuses');
    for (const file of [join(env.hostRecordDir, `${x.name}.json`), join(env.stateDir, `${x.name}.json`)]) {
      assert.ok(!readFileSync(file, 'utf8').includes(secret), `${file} holds no secret`);
    }
    assert.ok(!JSON.stringify(r).includes(secret));
    assert.equal((await env.exportIt(image, { mode: 'network', chap: true })).applied, 0);
    await env.unexportIt(x.name);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('ISO: media into the empty IDE cdrom drive of the running domain; a second one onto SCSI; both read-only', async () => {
    const before = env.snapshot();
    const first = await env.exportIt(env.iso(`${env.id}-cd1`));
    const second = await env.exportIt(env.iso(`${env.id}-cd2`));
    const a1 = first.record.hypervisors[0]!.attachment!;
    const a2 = second.record.hypervisors[0]!.attachment!;
    assert.deepEqual([a1.dev, a1.bus, a1.device, a1.media], ['hdc', 'ide', 'cdrom', true], 'the existing empty drive got the media');
    assert.deepEqual([a2.bus, a2.device, a2.media], ['scsi', 'cdrom', false], 'no empty drive left: a new SCSI cdrom');
    for (const [x, a] of [
      [first.record, a1],
      [second.record, a2],
    ] as const) {
      assert.deepEqual(env.blk().find((b) => b[2] === a.dev), ['volume', 'cdrom', a.dev, 'unit:0:0:1']);
      assert.match(diskXml(env, a.dev), /<readonly\/>/);
      assert.match(diskXml(env, a.dev, false), /<readonly\/>/);
      assert.equal(x.cdrom && x.readonly, true);
      assert.match(inquiry({ portal: env.tgtd.portal, iqn: asIscsi(x).target, lun: 1, initiator: x.hypervisors[0]!.initiator }).stdout, /Peripheral Device Type:\s*(5|MMC)/i);
    }
    await env.unexportIt(first.record.name);
    assert.deepEqual(env.blk().find((b) => b[2] === 'hdc'), ['file', 'cdrom', 'hdc', '-'], 'the drive stays, empty');
    await env.unexportIt(second.record.name);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('--no-persist: the running domain only, no autostart; a shut-off domain: its definition only', async () => {
    const before = env.snapshot();
    const live = await env.exportIt(env.image(`${env.id}-live.img`, 4 * MiB), { persist: false });
    const a = live.record.hypervisors[0]!.attachment!;
    assert.deepEqual([a.live, a.config], [true, false]);
    assert.ok(env.blk().some((b) => b[2] === a.dev));
    assert.ok(!env.blk(true).some((b) => b[2] === a.dev), 'not in the definition');
    assert.match(virsh(['pool-info', recordPool(live.record)!]), /Autostart:\s+no/);

    const off = `vit-${env.id}-off`;
    const xml = join(env.dir, 'off.xml');
    writeFileSync(xml, minimalDomainXml(off));
    virsh(['define', xml]);
    env.cleanup(() => spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', off], { stdio: 'ignore' }));
    const offBefore = virsh(['dumpxml', '--inactive', off]);
    await assert.rejects(env.exportIt(env.image(`${env.id}-nope.img`, MiB), { vm: off, persist: false }), /is not running; --no-persist attaches to a running domain only/);
    const cold = await env.exportIt(env.image(`${env.id}-cold.img`, 4 * MiB), { vm: off });
    assert.deepEqual([cold.record.hypervisors[0]!.attachment!.live, cold.record.hypervisors[0]!.attachment!.config], [false, true]);
    assert.match(virsh(['domblklist', '--details', off]), new RegExp(`volume +disk +${cold.record.hypervisors[0]!.attachment!.dev} +unit:0:0:1`));

    await env.unexportIt(cold.record.name);
    await env.unexportIt(live.record.name);
    assert.equal(virsh(['dumpxml', '--inactive', off]), offBefore);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('status and unexport from the storage host record after the local state is lost', async () => {
    const before = env.snapshot();
    const r = await env.exportIt(env.image(`${env.id}-lost.img`, 8 * MiB));
    const name = r.record.name;
    rmSync(env.stateDir, { recursive: true });
    const s = new Session();
    try {
      assert.deepEqual(await exportStatus(s, { stateDir: env.stateDir }), [], 'nothing recorded here any more');
      const [st] = await exportStatus(s, { stateDir: env.stateDir, storage: 'local', hostRecordDir: env.hostRecordDir });
      assert.equal(st?.name, name);
      assert.deepEqual(st?.records, ['storage']);
      assert.equal(st?.healthy, true, st?.problems.join('; '));
      assert.equal(st?.dev, r.record.hypervisors[0]!.attachment!.dev, 'the disk is found in the domain by its marks');
    } finally {
      await s.close();
    }
    const u = await env.unexportIt(name, { storage: 'local' });
    assert.equal(u.found, true);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('bad input and impossible requests fail before anything changes, naming the value', async () => {
    const before = env.snapshot();
    const good = env.image(`${env.id}-good.img`, 8 * MiB);
    const qcow = join(env.dir, 'vm.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '8M'], { stdio: 'ignore' });
    const cases: Array<[string, Parameters<Env['exportIt']>, RegExp]> = [
      ['missing image', [join(env.dir, 'nope.img')], /image ".*nope\.img" does not exist on local/],
      ['directory', [env.dir], /is a directory, not an image file/],
      ['qcow2', [qcow], /is qcow2, but tgt serves raw images only/],
      ['no such VM', [good, { vm: `vit-${env.id}-nope` }], /no domain "vit-.*-nope"/],
      ['bad name', [good, { name: 'Bad_Name' }], /export name "Bad_Name" is not allowed/],
      ['bad mode', [good, { mode: 'floppy' as never }], /mode "floppy" is not one of pool, direct, network, block/],
      ['pool needs open-iscsi', [good, { mode: 'pool' }], /mode pool needs open-iscsi to log in on local/],
      ['bad portal', [good, { portal: '256.1.1.1' }], /portal "256\.1\.1\.1" has an invalid host/],
    ];
    for (const [what, args, pattern] of cases) {
      await assert.rejects(env.exportIt(...args), (e: unknown) => e instanceof VirtIscsiError && pattern.test(e.message), what);
      assert.deepEqual(env.snapshot(), before, `${what}: nothing changed`);
    }
    // The image of an export cannot be served twice, and its name cannot be reused for another image.
    const r = await env.exportIt(good);
    const mid = env.snapshot();
    await assert.rejects(env.exportIt(good, { name: `${env.id}-other` }), /is already served by target .* as LUN 1/);
    await assert.rejects(env.exportIt(env.image(`${env.id}-x.img`, MiB), { name: r.record.name }), /already exists with image/);
    assert.deepEqual(env.snapshot(), mid);
    await env.unexportIt(r.record.name);
    assert.deepEqual(env.snapshot(), before);
  });
});

