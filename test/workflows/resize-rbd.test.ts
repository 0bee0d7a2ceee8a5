// `virt-iscsi resize` of rbd:POOL/IMAGE exports under a running Linux guest that keeps
// writing to the disk, against a real one-node Ceph cluster (scripts/ceph-dev.sh), a
// private tgtd with tgt's rbd backing store, and the running libvirtd:
// - native rbd: `rbd resize`, then virsh blockresize (QEMU keeps the size it opened the
//   image with until told); no pause;
// - the tgt-rbd gateway, network mode: `rbd resize`, tgtd reopens the image with the domain
//   paused, blockresize;
// - refused in one line and nothing changed: a shrink; --dry-run prints every step.
// Checked with tools we did not write: `rbd info`, `rbd export` (the image's bytes),
// `virsh domblkinfo`, the guest kernel's /sys/block, tgtadm --op show, libiscsi's
// iscsi-readcapacity16.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { asIscsi, type ExportRecord } from '../../src/workflows/records.js';
import { startCeph, type CephCluster } from '../helpers/ceph.js';
import { failedWith } from '../helpers/cli.js';
import { LIBVIRT_URI } from '../helpers/libvirt.js';
import { checkPattern } from '../helpers/linux-guest.js';
import { capacity } from '../storage/tgt/initiator.js';
import { MiB, readHostBlocks, startGuestEnv, until, virsh, type GuestEnv } from './guest-env.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('resize of rbd: exports under a writing Linux guest (Ceph, private tgtd, libvirtd, TCG)', { timeout: 1_200_000 }, () => {
  let env: GuestEnv;
  let ceph: CephCluster;
  before(async () => {
    env = await startGuestEnv('rzr');
    ceph = await startCeph();
    env.cleanup(() => ceph.stop());
    // Whatever a failed test left on libvirt: the ceph secrets of native exports carry the id.
    env.cleanup(() => {
      for (const line of virsh(['secret-list']).split('\n')) {
        const [uuid, , usage] = line.trim().split(/\s+/);
        if (usage?.includes(env.id)) spawnSync('virsh', ['-c', LIBVIRT_URI, 'secret-undefine', uuid!], { stdio: 'ignore' });
      }
    });
  });
  after(() => env?.close());

  /** The RBD image's size as `rbd info` shows it. */
  const rbdSize = async (image: string): Promise<number> => (JSON.parse(await ceph.tool('rbd', ['info', '--format', 'json', `${ceph.pool}/${image}`])) as { size: number }).size;
  /** The image's bytes, read from the cluster with `rbd export`. */
  const rbdBytes = async (image: string): Promise<string> => {
    const file = join(env.dir, `${image}.export`);
    rmSync(file, { force: true }); // rbd export refuses to overwrite a file
    await ceph.tool('rbd', ['export', '--no-progress', `${ceph.pool}/${image}`, file]);
    return file;
  };
  const exportRbd = async (image: string, mib: number, mode: 'rbd' | 'network'): Promise<ExportRecord> => {
    await ceph.tool('rbd', ['create', '--size', `${mib}M`, `${ceph.pool}/${image}`]);
    // Only conf and id: tgt's rbd store takes no keyring option (the conf names it).
    return (await env.exportIt(`rbd:${ceph.pool}/${image}`, { mode, ceph: { conf: ceph.conf, id: ceph.id } })).record;
  };

  /** Unexport through the CLI: the image stays, at its grown size, with no watcher; no secret is left. */
  const unexport = async (x: ExportRecord, image: string, bytes: number): Promise<void> => {
    const u = await env.cli(['unexport', x.name, '--host-records', env.hostRecordDir]);
    assert.equal(u.status, 0, u.stderr);
    assert.equal(await rbdSize(image), bytes, 'the image stays');
    assert.match(await ceph.tool('rbd', ['status', '--format', 'json', `${ceph.pool}/${image}`]), /"watchers":\[\]/, 'no watcher is left');
    assert.doesNotMatch(virsh(['secret-list']), new RegExp(`virt-iscsi-${x.name}\\b`));
  };

  /** Marker, writer, resize through the CLI, then every check both ways share. */
  async function resizeUnderWriter(t: { diagnostic(s: string): void }, x: ExportRecord, image: string, from: number, delta: number): Promise<Record<string, unknown> & { pauses: Array<{ ms: number }> }> {
    const dev0 = x.hypervisors[0]!.attachment!.dev;
    const { dev } = await env.guest.waitForDisk(dev0, { timeoutMs: 120_000 });
    assert.equal(await env.guest.diskSize(dev), from);
    const marker = `before-resize-${env.id}-${x.mode}`;
    await env.guest.sh(`printf '%s' ${marker} | dd of=/dev/${dev} bs=4096 seek=1000 conv=sync,fsync oflag=direct status=none`);
    await env.guest.startWriter(dev, { firstBlock: 0, blocks: 64 });
    await sleep(2000);

    const t0 = Date.now();
    const r = await env.cli(['resize', x.name, '--size', `+${delta / MiB}M`, '--host-records', env.hostRecordDir, '--json']);
    const ms = Date.now() - t0;
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as Record<string, unknown> & { pauses: Array<{ ms: number }>; told: Array<{ dev: string }> };
    const to = from + delta;
    assert.deepEqual([json.fromBytes, json.toBytes, json.changed, json.image], [from, to, true, 'rbd']);
    assert.deepEqual(json.told.map((d) => d.dev), [dev0], 'QEMU was told');
    const seenMs = await until(`the guest to see ${to} bytes on ${dev}`, async () => (await env.guest.diskSize(dev)) === to, 30_000);
    await sleep(1000);
    const w = await env.guest.stopWriter();
    t.diagnostic(`${x.mode}: resize ${ms} ms (CLI, TCG host), pause ${json.pauses.map((p) => p.ms).join(', ') || 'none'} ms, guest saw it ${seenMs} ms after; writer ${w.blocksWritten} writes, longest ${w.maxWriteMs} ms, stalls ${w.stalls.length}`);
    assert.deepEqual(w.errors, [], 'no I/O error in the guest');
    assert.deepEqual(w.kernelWarnings, []);
    assert.deepEqual(w.mismatches, [], 'what the guest reads back is what it wrote');
    assert.ok(w.blocksWritten > 64, `the writer wrote only ${w.blocksWritten} blocks`);

    // The cluster, with Ceph's own tools: the new size, the writer's last blocks and the marker.
    assert.equal(await rbdSize(image), to, 'rbd info');
    const bytes = await rbdBytes(image);
    assert.deepEqual(checkPattern(readHostBlocks(bytes, w), w), [], 'the RBD image holds the last write of every block');
    assert.equal(readFileSync(bytes).subarray(1000 * 4096, 1000 * 4096 + marker.length).toString('latin1'), marker, 'data from before the resize is intact');
    assert.equal(await env.guest.sh(`dd if=/dev/${dev} bs=4096 skip=1000 count=1 iflag=direct status=none | head -c ${marker.length}`), marker);
    // The new space works end to end: the last block, written in the guest, read from the cluster.
    const last = to / 4096 - 1;
    await env.guest.sh(`printf 'tail-${env.id}' | dd of=/dev/${dev} bs=4096 seek=${last} conv=sync,fsync oflag=direct status=none`);
    assert.ok(readFileSync(await rbdBytes(image)).subarray(last * 4096).toString('latin1').startsWith(`tail-${env.id}`), 'the last block is in the image');
    assert.match(virsh(['domblkinfo', env.guest.domain, dev0]), new RegExp(`Capacity:\\s+${to}\\n`));
    assert.equal(virsh(['domstate', env.guest.domain]).trim(), 'running');
    // Both records hold the new size; status is healthy and shows the image's size.
    for (const f of [join(env.stateDir, `${x.name}.json`), join(env.hostRecordDir, `${x.name}.json`)]) assert.equal(JSON.parse(readFileSync(f, 'utf8')).sizeBytes, to, f);
    const st = await env.status(x.name);
    assert.equal(st.healthy, true, st.problems.join('; '));
    assert.equal(st.rbd?.sizeBytes, to);
    // Again: nothing to do.
    const again = await env.cli(['resize', x.name, '--size', String(to), '--host-records', env.hostRecordDir]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`${x.name} is ${to / MiB} MiB already: nothing changed`));
    return json;
  }

  test('native rbd: rbd resize, then blockresize; no pause; the guest sees it, no I/O error, data intact', async (t) => {
    const image = `${env.id}-native`;
    const x = await exportRbd(image, 32, 'rbd');
    assert.equal(x.mode, 'rbd');
    const json = await resizeUnderWriter(t, x, image, 32 * MiB, 32 * MiB);
    assert.deepEqual(json.pauses, [], 'QEMU holds the image itself: nothing closes it, nothing is paused');
    assert.equal(json.target, undefined);
    await unexport(x, image, 64 * MiB);
  });

  test('the tgt-rbd gateway, network mode: rbd resize, tgtd reopens the image with the domain paused, blockresize; no I/O error, data intact', async (t) => {
    const image = `${env.id}-gw`;
    const x = asIscsi(await exportRbd(image, 32, 'network'));
    const lunBlock = (): string => {
      const block = env.tgtShow().split(/^Target \d+: /m).find((b) => b.startsWith(`${x.target}\n`)) ?? '';
      return block.split(/^\s+LUN: /m).find((b) => b.startsWith('1\n')) ?? '';
    };
    const identity = (): string => [...lunBlock().matchAll(/^\s+(SCSI (?:ID|SN): .*)$/gm)].map((m) => m[1]!.trim()).join(' / ');
    const before = identity();
    assert.match(lunBlock(), new RegExp(`Backing store type: rbd[\\s\\S]*Backing store path: ${ceph.pool}/${image}`));
    const json = await resizeUnderWriter(t, x, image, 32 * MiB, 16 * MiB);
    assert.equal(json.pauses.length, 1, 'tgt closes the LUN to reopen it: the domain was paused once');
    assert.equal(json.target, `tgtd reopened ${ceph.pool}/${image}`);
    assert.equal(Number(/Size: (\d+) MB/.exec(lunBlock())?.[1]), Math.round((48 * MiB) / 1e6), 'tgtadm --op show');
    assert.equal(capacity({ portal: env.tgtd.portal, iqn: x.target, lun: 1, initiator: x.hypervisors[0]!.initiator }), 48 * MiB, 'iscsi-readcapacity16');
    assert.equal(identity(), before, 'the LUN keeps its SCSI ID and serial');
    await unexport(x, image, 48 * MiB);
  });

  test('refused in one line, nothing changed: a shrink of an rbd: export; --dry-run prints each step and changes nothing', async () => {
    const image = `${env.id}-dry`;
    const x = await exportRbd(image, 16, 'rbd');
    const dev = x.hypervisors[0]!.attachment!.dev;
    const state = async (): Promise<unknown> => ({ size: await rbdSize(image), blk: virsh(['domblkinfo', env.guest.domain, dev]), record: readFileSync(join(env.stateDir, `${x.name}.json`), 'utf8') });
    const before = await state();
    const hr = ['--host-records', env.hostRecordDir];
    for (const [args, re] of [
      [['resize', x.name, '--size', '8M', ...hr], new RegExp(`size "8M" \\(8 MiB\\) is smaller than export ${x.name} \\(rbd:${ceph.pool}/${image}\\) \\(16 MiB\\): shrinking destroys the data past the new end; virt-iscsi only grows disks$`)],
      [['resize', x.name, '--size', '-4M', ...hr], /would shrink export .*, which destroys the data past its new end/],
    ] as Array<[string[], RegExp]>) {
      assert.equal(failedWith(await env.cli(args), re), undefined, args.join(' '));
    }
    const r = await env.cli(['resize', x.name, '--size', '24M', ...hr, '--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    for (const re of [
      new RegExp(`# \\[1/\\d+\\] grow RBD image rbd:${ceph.pool}/${image} from 16 MiB to 24 MiB \\(rbd resize, thin: nothing is allocated\\)\n`),
      new RegExp(`rbd --conf ${ceph.conf} --id ${ceph.id} .* resize --size ${24 * MiB}B ${ceph.pool}/${image}\n`),
      new RegExp(`virsh -c qemu:///system blockresize --domain ${env.guest.domain} --path ${dev} --size ${24 * MiB}B`),
      /record the new size in /,
      /would resize .* from 16 MiB to 24 MiB/,
    ]) {
      assert.match(r.stdout, re);
    }
    assert.doesNotMatch(r.stdout, /suspend|tgtadm/, 'native rbd: no target, no pause');
    assert.deepEqual(await state(), before, 'nothing changed');
    await unexport(x, image, 16 * MiB);
  });
});
