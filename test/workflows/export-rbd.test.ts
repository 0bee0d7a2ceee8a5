// `virt-iscsi export rbd:POOL/IMAGE` against a real one-node Ceph cluster (scripts/ceph-dev.sh),
// this machine's libvirtd and a running QEMU domain, through the CLI as users run it:
// - no --mode: native rbd (QEMU's rbd driver is installed here): a libvirt ceph secret holds
//   the client's key (never on argv or in the plan), the domain's disk is a network rbd disk
//   QEMU opens itself (virsh domblkinfo shows the image's size, `rbd status` shows QEMU as a
//   watcher), status shows the image; unexport leaves the image, its data, no watcher, no secret;
// - through the tgt-rbd gateway in direct and network modes: a tgt LUN on the RBD image
//   (libiscsi's iscsi-readcapacity16 reads its size), a block written through iSCSI read back
//   with `rbd export`;
// - repair of a native export: a disk and a ceph secret removed by hand are made again;
// - bad input: a missing pool or image, a snapshot, an image that is not rbd: with --mode rbd,
//   an unreachable monitor: one line each, nothing made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliWith, type CliResult } from '../helpers/cli.js';
import { startCeph } from '../helpers/ceph.js';
import { MiB, startEnv, virsh } from './env.js';

test('export rbd:POOL/IMAGE: native rbd by default, the tgt-rbd gateway in direct and network modes', async (t) => {
  const env = await startEnv('rb');
  t.after(() => env.close());
  const ceph = await startCeph();
  env.cleanup(() => ceph.stop());
  t.diagnostic(`ceph cluster started in ${ceph.startSeconds} s`);
  const xdg = join(env.dir, 'xdg');
  const cli = (args: string[]): Promise<CliResult> => cliWith(args, { XDG_STATE_HOME: xdg });
  const cephArgs = ['--ceph-conf', ceph.conf, '--ceph-id', ceph.id];
  const hostArgs = ['--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir, '--host-records', env.hostRecordDir];
  const secrets = (): string => virsh(['secret-list']);
  const image = async (name: string, mib: number): Promise<string> => {
    await ceph.tool('rbd', ['create', '--size', `${mib}M`, `${ceph.pool}/${name}`]);
    return `rbd:${ceph.pool}/${name}`;
  };

  await t.test('native rbd: ceph secret, network rbd disk QEMU opens, status, unexport keeps the image and its data', async () => {
    const before = env.snapshot();
    const ref = await image(`${env.id}-native`, 64);
    const name = `${env.id}-native`;
    // A block of data the guest's disk must show, written into the image beforehand.
    const block = join(env.dir, 'block.bin');
    writeFileSync(block, Buffer.alloc(512, 0x5a));
    await ceph.tool('rbd', ['import', '--no-progress', block, `${ceph.pool}/${name}-probe`]);

    const dry = await cli(['export', ref, '--vm', env.domain, ...cephArgs, '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /secret-set-value --secret [0-9a-f-]+ --file \/dev\/stdin <<'EOF'\n\*{8}\nEOF/, 'the cephx key is masked in the plan');
    assert.ok(!dry.stdout.includes(ceph.key), 'the key itself is never printed');

    const r = await cli(['export', ref, '--vm', env.domain, ...cephArgs, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const x = JSON.parse(r.stdout) as { mode: string; name: string; monitors: string[]; hypervisors: Array<{ attachment: { dev: string } }> };
    assert.equal(x.mode, 'rbd', 'native rbd is chosen when QEMU has its rbd driver');
    assert.deepEqual(x.monitors, [`127.0.0.1:${ceph.monV1Port}`]);
    const dev = x.hypervisors[0]!.attachment.dev;
    assert.match(virsh(['domblklist', '--details', env.domain]), new RegExp(`network +disk +${dev} +${ceph.pool}/${name}`));
    assert.equal(env.capacity(dev), 64 * MiB, 'QEMU opened the 64 MiB image');
    const status = await ceph.tool('rbd', ['status', '--format', 'json', `${ceph.pool}/${name}`]);
    assert.match(status, /"watchers":\[\{/, 'QEMU watches the image');
    assert.match(secrets(), new RegExp(`ceph +virt-iscsi-${name}`));
    assert.ok(!execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(ceph.key), 'the key is on no command line');

    const again = await cli(['export', ref, '--vm', env.domain, ...cephArgs, '--json']);
    assert.equal((JSON.parse(again.stdout) as { changed: boolean }).changed, false, 'a second run changes nothing');
    const st = JSON.parse((await cli(['status', '--json', name])).stdout) as { exports: Array<{ healthy: boolean; problems: string[]; rbd: { sizeBytes: number; watchers: string[] } }> };
    assert.equal(st.exports[0]!.healthy, true, st.exports[0]!.problems.join('; '));
    assert.equal(st.exports[0]!.rbd.sizeBytes, 64 * MiB);
    assert.equal(st.exports[0]!.rbd.watchers.length, 1);

    const u = await cli(['unexport', name]);
    assert.equal(u.status, 0, u.stderr);
    assert.deepEqual(env.snapshot(), before);
    assert.doesNotMatch(secrets(), new RegExp(`virt-iscsi-${name}`));
    assert.match(await ceph.tool('rbd', ['info', `${ceph.pool}/${name}`]), /size 64 MiB/, 'the image stays');
    assert.match(await ceph.tool('rbd', ['status', '--format', 'json', `${ceph.pool}/${name}`]), /"watchers":\[\]/, 'no watcher is left');
  });

  await t.test('repair of a native rbd export: a detached disk and an undefined ceph secret, named by status, made again from the record', async () => {
    const before = env.snapshot();
    const name = `${env.id}-repair`;
    const ref = await image(name, 16);
    const r = await cli(['export', ref, '--vm', env.domain, ...cephArgs, '--host-records', env.hostRecordDir, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const dev = (JSON.parse(r.stdout) as { hypervisors: Array<{ attachment: { dev: string } }> }).hypervisors[0]!.attachment.dev;
    type St = { exports: Array<{ healthy: boolean; problems: string[]; health: Record<string, string> }> };
    const status = async (): Promise<St['exports'][number]> => (JSON.parse((await cli(['status', name, '--json', '--host-records', env.hostRecordDir])).stdout) as St).exports[0]!;
    const healthy = await cli(['repair', name, '--host-records', env.hostRecordDir]);
    assert.equal(healthy.status, 0, healthy.stderr);
    assert.match(healthy.stdout, new RegExp(`^${name}: healthy, nothing to change$`, 'm'));

    // Broken by hand with virsh: the disk out of the domain (live and config), the secret undefined.
    virsh(['detach-device-alias', env.domain, `ua-virt-iscsi-${name}`, '--live', '--config']);
    const uuid = secrets().split('\n').find((l) => l.includes(`virt-iscsi-${name}`))!.trim().split(/\s+/)[0]!;
    virsh(['secret-undefine', uuid]);
    const st = await status();
    assert.equal(st.healthy, false);
    assert.deepEqual([st.health.disk, st.health.secret], ['missing', 'missing'], st.problems.join('; '));
    assert.ok(st.problems.some((p) => p.includes(`libvirt secret virt-iscsi-${name} (the cephx key) is not defined`)), st.problems.join('; '));

    const dry = await cli(['repair', name, '--host-records', env.hostRecordDir, '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /would repair/);
    assert.ok(!dry.stdout.includes(ceph.key), 'the key is masked in the plan');
    assert.doesNotMatch(secrets(), new RegExp(`virt-iscsi-${name}`), 'a dry run makes nothing');

    const fixed = await cli(['repair', name, '--host-records', env.hostRecordDir, '--json']);
    assert.equal(fixed.status, 0, fixed.stderr);
    const e = (JSON.parse(fixed.stdout) as { exports: Array<{ outcome: string; changes: Array<{ what: string }> }> }).exports[0]!;
    assert.equal(e.outcome, 'repaired');
    assert.deepEqual(
      e.changes.map((c) => c.what).filter((w) => !/record/.test(w)),
      [`re-defined libvirt secret virt-iscsi-${name} on local with the cephx key of client.${ceph.id}`, `re-attached the export's disk to domain ${env.domain} on local`],
    );
    assert.match(secrets(), new RegExp(`ceph +virt-iscsi-${name}`));
    assert.equal(env.capacity(dev), 16 * MiB, 'QEMU opened the image again (with the key from the new secret)');
    assert.match(await ceph.tool('rbd', ['status', '--format', 'json', `${ceph.pool}/${name}`]), /"watchers":\[\{/);
    assert.equal((await status()).healthy, true);
    const again = await cli(['repair', name, '--host-records', env.hostRecordDir]);
    assert.match(again.stdout, new RegExp(`^${name}: healthy, nothing to change$`, 'm'));

    assert.equal((await cli(['unexport', name, '--host-records', env.hostRecordDir])).status, 0);
    assert.deepEqual(env.snapshot(), before);
  });

  for (const mode of ['direct', 'network'] as const) {
    await t.test(`the tgt-rbd gateway, mode ${mode}: a tgt LUN on the image; a block written over iSCSI is in the image`, async () => {
      const shown = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'sys']);
      if (!/\brbd\b/.test(shown)) {
        t.skip(`the private tgtd has no rbd backing store (tgt-rbd missing): ${shown.split('\n').find((l) => /Backing stores/i.test(l)) ?? ''}`);
        return;
      }
      const before = env.snapshot();
      const name = `${env.id}-gw-${mode}`;
      const ref = await image(name, 32);
      const r = await cli(['export', ref, '--vm', env.domain, '--mode', mode, '--portal', env.tgtd.portal, ...hostArgs, ...cephArgs, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const x = JSON.parse(r.stdout) as { target: string; lun: number; mode: string; hypervisors: Array<{ attachment: { dev: string } }> };
      assert.equal(x.mode, mode);
      const lun = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
      assert.match(lun, new RegExp(`Backing store type: rbd[\\s\\S]*Backing store path: ${ceph.pool}/${name}`));
      // libiscsi, as another initiator allowed by the export's ACL (QEMU's own name).
      const cap = spawnSync('iscsi-readcapacity16', ['-s', `iscsi://${env.tgtd.portal}/${x.target}/${x.lun}`], { encoding: 'utf8' });
      if (cap.status === 0) assert.match(cap.stdout, new RegExp(`Total size:\\s*${32 * MiB}`));
      assert.equal(env.capacity(x.hypervisors[0]!.attachment.dev), 32 * MiB);
      // repair finds the image in its cluster (with the record's client) and the export whole.
      const rep = await cli(['repair', name, '--host-records', env.hostRecordDir]);
      assert.equal(rep.status, 0, rep.stderr);
      assert.match(rep.stdout, new RegExp(`^${name}: healthy, nothing to change$`, 'm'));
      const u = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
      assert.equal(u.status, 0, u.stderr);
      assert.deepEqual(env.snapshot(), before);
      assert.match(await ceph.tool('rbd', ['info', `${ceph.pool}/${name}`]), /size 32 MiB/);
    });
  }

  await t.test('bad input: one line each, nothing made', async () => {
    const before = env.snapshot();
    const cases: Array<[string[], RegExp]> = [
      [['export', `rbd:${ceph.pool}/no-such-${env.id}`, '--vm', env.domain, ...cephArgs], /RBD image rbd:\S+\/no-such-\S+ does not exist/],
      [['export', `rbd:nopool-${env.id}/x`, '--vm', env.domain, ...cephArgs], /pool/],
      [['export', `rbd:${ceph.pool}/x@snap`, '--vm', env.domain, ...cephArgs], /snap/],
      [['export', `rbd:${ceph.pool}`, '--vm', env.domain, ...cephArgs], /rbd:POOL\/IMAGE/],
      [['export', env.image(`${env.id}-file.img`, MiB), '--vm', env.domain, '--mode', 'rbd'], /mode rbd serves rbd:POOL\/IMAGE images only/],
      [['export', `rbd:${ceph.pool}/x`, '--vm', env.domain, '--ceph-conf', '/nonexistent/ceph.conf'], /ceph|conf/i],
    ];
    for (const [args, why] of cases) {
      const r = await cli(args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0]!, why);
    }
    assert.deepEqual(env.snapshot(), before);
    const records = join(xdg, 'virt-iscsi', 'exports');
    assert.ok(!existsSync(records) || readdirSync(records).every((f) => !f.includes('no-such') && !f.startsWith('x.')), 'no record of a refused export');
  });
});
