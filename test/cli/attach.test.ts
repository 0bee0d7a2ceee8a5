// `virt-iscsi attach|detach|media` through the real CLI, against a running QEMU domain and
// a private tgtd; checked with virsh and tgtadm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, failedWith } from '../helpers/cli.js';
import { startEnv, virsh } from '../hypervisor/env.js';
import { waitFor } from '../helpers/daemon.js';

test('attach, detach and media commands', async (t) => {
  const env = await startEnv('cliatt');
  t.after(() => env.close());
  const vm = env.domain('vm', { ideCdrom: true });
  const off = env.domain('off', { start: false });
  const portal = `127.0.0.1:${env.tgtd.port}`;
  const lun = (n: number, tag: string): string[] => ['--portal', portal, '--target', env.iqn, '--lun', String(n), '--initiator', env.initiator(tag)];
  const row = (dev: string, inactive = false): string | undefined =>
    virsh(['domblklist', '--details', ...(inactive ? ['--inactive'] : []), vm])
      .split('\n')
      .map((l) => l.trim().replace(/\s+/g, ' '))
      .find((l) => l.split(' ')[2] === dev);

  await t.test('attach --json: a network disk live and persistent; detach removes it and QEMU logs out', async () => {
    const dry = await cli('attach', vm, ...lun(1, 'disk'), '--dry-run');
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /attach-device --domain \S+ --file \/dev\/stdin --live --config <<'EOF'\n<disk type="network" device="disk">[^]*<target dev="sda" bus="scsi"\/>/);
    assert.equal(row('sda'), undefined, 'the dry run attached nothing');

    const r = await cli('attach', vm, ...lun(1, 'disk'), '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual([out.dev, out.bus, out.device, out.live, out.config, out.how], ['sda', 'scsi', 'disk', true, true, 'attached']);
    assert.equal(row('sda'), `network disk sda ${env.iqn}/1`);
    assert.equal(row('sda', true), `network disk sda ${env.iqn}/1`);
    assert.match(virsh(['domblkinfo', vm, 'sda']), new RegExp(`Capacity:\\s+${env.sizes[1]}\\n`));
    assert.ok(env.sessions(env.iqn).includes(env.initiator('disk')));

    const d = await cli('detach', vm, '--dev', 'sda');
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, new RegExp(`^detached sda \\(LUN 1 of ${env.iqn} at ${portal}\\) from domain ${vm}$`, 'm'));
    assert.equal(row('sda'), undefined);
    await waitFor('QEMU to log out of the detached disk', () => !env.sessions(env.iqn).includes(env.initiator('disk')), 15000);
  });

  await t.test('an ISO as a cdrom: over SCSI live, or into the empty IDE drive; media eject and insert', async () => {
    const scsi = await cli('attach', vm, ...lun(3, 'cd'), '--cdrom');
    assert.equal(scsi.status, 0, scsi.stderr);
    assert.match(scsi.stdout, new RegExp(`domain ${vm} has LUN 3 of ${env.iqn} at ${portal} as cdrom sd[a-z] \\(bus scsi; attached`));
    const ide = await cli('attach', vm, ...lun(3, 'ide'), '--cdrom', '--bus', 'ide', '--json');
    assert.equal(ide.status, 0, ide.stderr);
    assert.deepEqual([JSON.parse(ide.stdout).dev, JSON.parse(ide.stdout).how], ['hdc', 'media inserted into an existing drive']);
    assert.equal(row('hdc'), `network cdrom hdc ${env.iqn}/3`);

    const [busy, eject] = [await cli('media', 'insert', vm, '--dev', 'hdc', ...lun(2, 'x')), await cli('media', 'eject', vm, '--dev', 'hdc')];
    assert.equal(failedWith(busy, new RegExp(`cdrom drive "hdc" of domain "${vm}" already holds LUN 3 of .*; eject it first \\(virt-iscsi media eject\\) or give --replace`)), undefined);
    assert.equal(eject.status, 0, eject.stderr);
    assert.match(eject.stdout, /^ejected LUN 3 of .* from hdc of domain /m);
    assert.equal(row('hdc'), 'file cdrom hdc -');
    assert.equal(row('hdc', true), 'file cdrom hdc -');
    const empty = await cli('media', 'eject', vm, '--dev', 'hdc');
    assert.match(empty.stdout, /hdc of domain .* was already empty/);

    const ins = await cli('media', 'insert', vm, '--dev', 'hdc', ...lun(3, 'ins'));
    assert.equal(ins.status, 0, ins.stderr);
    assert.equal(row('hdc'), `network cdrom hdc ${env.iqn}/3`);
    assert.ok(env.sessions(env.iqn).includes(env.initiator('ins')));
  });

  await t.test('a shut-off domain gets the disk in its definition', async () => {
    const r = await cli('attach', off, ...lun(2, 'off'), '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual([JSON.parse(r.stdout).live, JSON.parse(r.stdout).config], [false, true]);
    assert.match(virsh(['dumpxml', '--inactive', off]), new RegExp(`<source protocol='iscsi' name='${env.iqn}/2'>`));
  });

  await t.test('bad input: one line, exit 1, nothing changed', async () => {
    const before = virsh(['dumpxml', vm]) + virsh(['dumpxml', '--inactive', vm]);
    const results = await Promise.all([
      cli('attach', `vit-cliatt-nope-${env.id}`, ...lun(1, 'x')),
      cli('attach', vm, ...lun(1, 'x'), '--dev', 'hdc'),
      cli('attach', vm, ...lun(1, 'x'), '--live', '--config'),
      cli('attach', vm, '--by-path', `ip-127.0.0.1:${env.tgtd.port}-iscsi-${env.iqn}-lun-1`),
      cli('attach', off, ...lun(1, 'x'), '--live'),
      cli('attach', vm, ...lun(1, 'x'), '--bus', 'ide'),
      cli('attach', vm, '--pool', `vit-cliatt-nopool-${env.id}`, '--volume', 'unit:0:0:1'),
      cli('detach', vm, '--dev', 'hdc'),
      cli('media', 'insert', vm, '--dev', 'sdz', ...lun(3, 'x')),
    ]);
    const expected = [
      new RegExp(`^virt-iscsi: no domain "vit-cliatt-nope-${env.id}" on qemu:///system$`),
      /target dev "hdc" is already taken on domain .*; eject its media first/,
      /--live and --config exclude each other/,
      /block device "\/dev\/disk\/by-path\/ip-127\.0\.0\.1:\d+-iscsi-.*-lun-1" does not exist on local; log in to its target first/,
      /is not running; --live needs a running domain \(use --config\)/,
      /bus ide cannot take a live attach .*; use --bus scsi, or --config to attach it at the next start/,
      new RegExp(`no pool "vit-cliatt-nopool-${env.id}" on qemu:///system`),
      /disk "hdc" of domain .* is on bus ide, which QEMU cannot hot-unplug; eject its media instead \(virt-iscsi media eject\), or --config/,
      /no disk "sdz" on domain /,
    ];
    expected.forEach((pattern, i) => assert.equal(failedWith(results[i]!, pattern), undefined, `case ${i}`));
    assert.equal(virsh(['dumpxml', vm]) + virsh(['dumpxml', '--inactive', vm]), before);
  });
});
