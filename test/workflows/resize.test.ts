// `virt-iscsi resize` for real: a private tgtd, the running libvirtd, a real Linux guest
// writing to the export's disk all along. Direct mode (an iscsi-direct pool's volume) and
// network mode (QEMU's own initiator); a sparse and a fully allocated image. Checked with
// tools we did not write: the guest kernel's /sys/block, tgtadm --op show, libiscsi's
// iscsi-readcapacity16, virsh domblkinfo/vol-info/domstate, stat on the image.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/cli/session.js';
import { resizeExport, targetSize } from '../../src/workflows/resize.js';
import { asIscsi, type IscsiExportRecord } from '../../src/workflows/records.js';
import { failedWith } from '../helpers/cli.js';
import { checkPattern } from '../helpers/linux-guest.js';
import { capacity } from '../storage/tgt/initiator.js';
import { MiB, readHostBlocks, startGuestEnv, until, virsh, type GuestEnv } from './guest-env.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('targetSize: absolute and +delta sizes; shrinking and bad sizes refused in one line', () => {
  assert.equal(targetSize('128M', 64 * MiB), 128 * MiB);
  assert.equal(targetSize('+32M', 64 * MiB), 96 * MiB);
  assert.equal(targetSize('64M', 64 * MiB), 64 * MiB, 'the same size is not a shrink (a rerun finishes)');
  assert.throws(() => targetSize('32M', 64 * MiB, 'export web1'), /^ValidationError: size "32M" \(32 MiB\) is smaller than export web1 \(64 MiB\): shrinking destroys the data past the new end/);
  assert.throws(() => targetSize('-4M', 64 * MiB), /would shrink the export, which destroys the data past its new end/);
  assert.throws(() => targetSize('+1', 64 * MiB), /not a multiple of 512 bytes/);
  assert.throws(() => targetSize('big', 64 * MiB), /size "big" is not a size/);
});

describe('resize under a writing Linux guest (private tgtd, libvirtd, TCG)', { timeout: 900_000 }, () => {
  let env: GuestEnv;
  before(async () => {
    env = await startGuestEnv('rsz');
  });
  after(() => env?.close());

  const lunSizeMB = (target: string): number => {
    const block = env.tgtShow().split(/^Target \d+: /m).find((b) => b.startsWith(`${target}\n`)) ?? '';
    return Number(/LUN: 1\n[\s\S]*?Size: (\d+) MB/.exec(block)?.[1]);
  };
  const lunIdentity = (target: string): string => {
    const block = env.tgtShow().split(/^Target \d+: /m).find((b) => b.startsWith(`${target}\n`)) ?? '';
    const lun = block.split(/^\s+LUN: /m).find((b) => b.startsWith('1\n')) ?? '';
    return [...lun.matchAll(/^\s+(SCSI (?:ID|SN): .*)$/gm)].map((m) => m[1]!.trim()).join(' / ');
  };

  /** Export `image` in `mode`, write a marker, start the writer, resize through the CLI, check everything. */
  async function resizeUnderWriter(t: { diagnostic(s: string): void }, image: string, mode: 'direct' | 'network', from: number, delta: number): Promise<{ x: IscsiExportRecord; json: Record<string, unknown> }> {
    const x = asIscsi((await env.exportIt(image, { mode })).record);
    const login = { portal: env.tgtd.portal, iqn: x.target, lun: 1, initiator: x.hypervisors[0]!.initiator };
    const { dev } = await env.guest.waitForDisk({ serial: x.serial }, { timeoutMs: 120_000 });
    assert.equal(await env.guest.diskSize(dev), from);
    const identity = lunIdentity(x.target);
    const marker = `before-resize-${env.id}-${mode}`;
    await env.guest.sh(`printf '%s' ${marker} | dd of=/dev/${dev} bs=4096 seek=1000 conv=sync,fsync oflag=direct status=none`);
    await env.guest.startWriter(dev, { firstBlock: 0, blocks: 64 });
    await sleep(2000);

    const t0 = Date.now();
    const r = await env.cli(['resize', x.name, '--size', `+${delta / MiB}M`, '--host-records', env.hostRecordDir, '--json']);
    const ms = Date.now() - t0;
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as Record<string, unknown> & { pauses: Array<{ ms: number }>; told: Array<{ dev: string }> };
    const to = from + delta;
    assert.deepEqual([json.fromBytes, json.toBytes, json.changed], [from, to, true]);
    // QEMU told the guest: the kernel sees the new capacity without a rescan.
    const seenMs = await until(`the guest to see ${to} bytes on ${dev}`, async () => (await env.guest.diskSize(dev)) === to, 30_000);
    await sleep(1000);
    const w = await env.guest.stopWriter();
    t.diagnostic(`${mode}: resize ${ms} ms (CLI, TCG host), pause ${json.pauses.map((p) => p.ms).join(', ')} ms, guest saw it ${seenMs} ms after; writer ${w.blocksWritten} writes, longest ${w.maxWriteMs} ms, stalls ${w.stalls.length}`);
    assert.deepEqual(w.errors, [], 'no I/O error in the guest');
    assert.deepEqual(w.kernelWarnings, []);
    assert.deepEqual(w.mismatches, [], 'what the guest reads back is what it wrote');
    assert.ok(w.blocksWritten > 64, `the writer wrote only ${w.blocksWritten} blocks`);
    assert.deepEqual(checkPattern(readHostBlocks(image, w), w), [], 'the image file holds the last write of every block');
    assert.ok(readFileSync(image).subarray(1000 * 4096, 1000 * 4096 + marker.length).toString('latin1') === marker, 'data from before the resize is intact');
    assert.equal(await env.guest.sh(`dd if=/dev/${dev} bs=4096 skip=1000 count=1 iflag=direct status=none | head -c ${marker.length}`), marker);
    // The new space works end to end: the last block, written in the guest, read on the host.
    const last = to / 4096 - 1;
    await env.guest.sh(`printf 'tail-${env.id}' | dd of=/dev/${dev} bs=4096 seek=${last} conv=sync,fsync oflag=direct status=none`);
    assert.ok(readFileSync(image).subarray(last * 4096).toString('latin1').startsWith(`tail-${env.id}`));
    // The target, seen with tools we did not write.
    assert.equal(statSync(image).size, to);
    assert.equal(lunSizeMB(x.target), Math.round(to / 1e6), 'tgtadm --op show');
    assert.equal(capacity(login), to, 'iscsi-readcapacity16');
    assert.equal(lunIdentity(x.target), identity, 'the LUN keeps its SCSI ID and serial');
    assert.match(virsh(['domblkinfo', env.guest.domain, json.told[0]!.dev]), new RegExp(`Capacity:\\s+${to}\\n`));
    assert.equal(virsh(['domstate', env.guest.domain]).trim(), 'running');
    // Both records hold the new size; status is healthy.
    for (const f of [join(env.stateDir, `${x.name}.json`), join(env.hostRecordDir, `${x.name}.json`)]) assert.equal(JSON.parse(readFileSync(f, 'utf8')).sizeBytes, to, f);
    const st = await env.status(x.name);
    assert.equal(st.healthy, true, st.problems.join('; '));
    assert.equal(st.sizeBytes, to);
    // Again: nothing to do.
    const again = await env.cli(['resize', x.name, '--size', String(to), '--host-records', env.hostRecordDir]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`${x.name} is ${to / MiB} MiB already: nothing changed`));
    return { x, json };
  }

  test('direct mode, sparse image: grown with truncate (still sparse), tgt reopens it with the domain paused, the guest sees it; no I/O error, data intact', async (t) => {
    const image = env.image(`${env.id}-direct.img`, 64 * MiB);
    const { x, json } = await resizeUnderWriter(t, image, 'direct', 64 * MiB, 32 * MiB);
    assert.equal(json.image, 'sparse');
    assert.ok(statSync(image).blocks * 512 < 96 * MiB, 'the image is still sparse');
    assert.equal((json.pauses as unknown[]).length, 1, 'tgt closes the LUN to reopen it: the domain was paused once');
    // The pool's volume shows it too (libvirt's iscsi-direct volume is 512 bytes short: pitfall of libvirt 9.0).
    const vol = virsh(['vol-info', '--bytes', '--pool', `virt-iscsi-${x.name}`, '--vol', 'unit:0:0:1']);
    assert.ok(Math.abs(Number(/Capacity:\s+(\d+)/.exec(vol)?.[1]) - 96 * MiB) <= 512, vol);
  });

  test('network mode, fully allocated image: the new part is allocated too (fallocate); the guest sees it; no I/O error, data intact', async (t) => {
    const image = env.image(`${env.id}-net.img`, 32 * MiB, true);
    const { json } = await resizeUnderWriter(t, image, 'network', 32 * MiB, 16 * MiB);
    assert.equal(json.image, 'allocated');
    assert.ok(statSync(image).blocks * 512 >= 48 * MiB, `the image is fully allocated (${statSync(image).blocks * 512} bytes on disk)`);
  });

  test('refused in one line, nothing changed: shrink, -delta, unknown export, CD-ROM, read-only disk', async () => {
    const data = asIscsi((await env.exportIt(env.image(`${env.id}-keep.img`, 16 * MiB), { mode: 'network' })).record);
    const ro = asIscsi((await env.exportIt(env.image(`${env.id}-ro.img`, 8 * MiB), { mode: 'network', readonly: true })).record);
    const isoDir = join(env.dir, 'iso.d');
    mkdirSync(isoDir, { recursive: true });
    writeFileSync(join(isoDir, 'hello.txt'), 'hello\n');
    execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', join(env.dir, `${env.id}-cd.iso`), isoDir], { stdio: 'ignore' });
    const cd = asIscsi((await env.exportIt(join(env.dir, `${env.id}-cd.iso`), { mode: 'network' })).record);
    const before = { show: env.tgtShow(), size: statSync(data.image).size, records: readFileSync(join(env.stateDir, `${data.name}.json`), 'utf8') };
    const hr = ['--host-records', env.hostRecordDir];
    const cases: Array<[string[], RegExp]> = [
      [['resize', data.name, '--size', '8M', ...hr], /size "8M" \(8 MiB\) is smaller than export .* \(16 MiB\): shrinking destroys the data past the new end; virt-iscsi only grows disks$/],
      [['resize', data.name, '--size', '-4M', ...hr], /size "-4M" would shrink export .*, which destroys the data past its new end: virt-iscsi only grows disks$/],
      [['resize', `${env.id}-nosuch`, '--size', '+4M', ...hr], /no export named ".*-nosuch" is recorded in /],
      [['resize', cd.name, '--size', '+4M', ...hr], /export .* is a read-only CD-ROM: nothing writes past its end/],
      [['resize', ro.name, '--size', '+4M', ...hr], /export .* is a read-only disk: nothing writes past its end/],
      [['resize', data.name, '--size', '+1000', ...hr], /is not a multiple of 512 bytes/],
    ];
    for (const [args, re] of cases) {
      const r = await env.cli(args);
      assert.equal(failedWith(r, re), undefined, args.join(' '));
    }
    assert.deepEqual({ show: env.tgtShow(), size: statSync(data.image).size, records: readFileSync(join(env.stateDir, `${data.name}.json`), 'utf8') }, before, 'nothing changed');
    const usage = await env.cli(['resize', data.name]);
    assert.equal(usage.status, 2, 'no --size is a usage error');
  });

  test('--dry-run prints each step and its commands, and changes nothing', async () => {
    const x = asIscsi((await env.exportIt(env.image(`${env.id}-dry.img`, 16 * MiB), { mode: 'network' })).record);
    const before = { show: env.tgtShow(), size: statSync(x.image).size, blk: virsh(['domblkinfo', env.guest.domain, x.hypervisors[0]!.attachment!.dev]) };
    const r = await env.cli(['resize', x.name, '--size', '24M', '--host-records', env.hostRecordDir, '--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    const out = r.stdout;
    for (const re of [
      /# \[1\/\d+\] grow .* from 16 MiB to 24 MiB \(sparse, as it was made: truncate\)/,
      new RegExp(`truncate --no-create --size '>${24 * MiB}' -- `),
      new RegExp(`# \\[\\d+/\\d+\\] pause ${env.guest.domain} \\(QEMU drains its disk requests\\), make target .* report LUN 1 as 24 MiB \\(tgt\\), resume ${env.guest.domain}\n`),
      new RegExp(`virsh -c qemu:///system suspend --domain ${env.guest.domain}`),
      new RegExp(`tgtadm -C ${env.tgtd.controlPort} --lld iscsi --mode logicalunit --op update --tid \\d+ --lun 1 --params online=0,path=${x.image}\n`),
      new RegExp(`virsh -c qemu:///system resume --domain ${env.guest.domain}`),
      new RegExp(`virsh -c qemu:///system blockresize --domain ${env.guest.domain} --path ${x.hypervisors[0]!.attachment!.dev} --size ${24 * MiB}B`),
      /record the new size in /,
      /would resize .* from 16 MiB to 24 MiB/,
    ]) {
      assert.match(out, re);
    }
    assert.deepEqual({ show: env.tgtShow(), size: statSync(x.image).size, blk: virsh(['domblkinfo', env.guest.domain, x.hypervisors[0]!.attachment!.dev]) }, before, 'nothing changed');
    assert.equal(virsh(['domstate', env.guest.domain]).trim(), 'running');
  });

  test('kill -9 while the domain is paused: status names the interrupted resize and the command; that command resumes the domain and finishes; the writer saw no error', async (t) => {
    const image = env.image(`${env.id}-kill.img`, 16 * MiB);
    const x = asIscsi((await env.exportIt(image, { mode: 'network' })).record);
    const { dev } = await env.guest.waitForDisk({ serial: x.serial }, { timeoutMs: 120_000 });
    await env.guest.startWriter(dev, { firstBlock: 0, blocks: 32 });
    await sleep(1000);
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'resize', x.name, '--size', '+8M', '--host-records', env.hostRecordDir], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, XDG_STATE_HOME: env.xdg, VIRT_ISCSI_TEST_PAUSE: 'paused:after' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/test pause after paused#1/.test(err)) resolve();
      });
      void exited.then((code) => reject(new Error(`resize ended (exit ${code}) before pausing:\n${err}`)));
    });
    child.kill('SIGKILL');
    assert.equal(await exited, null);
    const killedAt = Date.now();
    assert.equal(virsh(['domstate', env.guest.domain]).trim(), 'paused', 'killed between the pause and the reopen: the domain is left paused');
    const st = await env.status(x.name);
    assert.equal(st.state, 'interrupted');
    assert.match(st.problems[0]!, new RegExp(`^a resize of export ${x.name} was interrupted during: pause ${env.guest.domain} \\(QEMU drains its disk requests\\), make target .* report LUN 1 as 24 MiB \\(tgt\\), resume ${env.guest.domain}$`));
    assert.equal(st.fix, `virt-iscsi resize ${x.name} --size ${24 * MiB} --host-records ${env.hostRecordDir}   (runs the resize again to finish it)`);
    const again = await env.cli(st.fix!.split('   ')[0]!.split(' ').slice(1).concat('--json'));
    assert.equal(again.status, 0, again.stderr);
    const json = JSON.parse(again.stdout) as { pauses: unknown[]; toBytes: number };
    assert.equal(json.toBytes, 24 * MiB);
    assert.equal(virsh(['domstate', env.guest.domain]).trim(), 'running', 'the rerun resumed the domain the killed run paused');
    await until('the guest to see 24 MiB', async () => (await env.guest.diskSize(dev)) === 24 * MiB);
    const w = await env.guest.stopWriter();
    t.diagnostic(`paused by the killed run for ${Date.now() - killedAt} ms or more; longest write ${w.maxWriteMs} ms`);
    assert.deepEqual([w.errors, w.mismatches], [[], []]);
    const healthy = await env.status(x.name);
    assert.deepEqual([healthy.state, healthy.healthy, healthy.sizeBytes], ['ok', true, 24 * MiB], healthy.problems.join('; '));
  });

  test('a failure at the target step rolls back: the domain runs; the grown image stays (longer loses nothing); a rerun finishes', async () => {
    const x = asIscsi((await env.exportIt(env.image(`${env.id}-fail.img`, 16 * MiB), { mode: 'network' })).record);
    const s = new Session();
    try {
      await assert.rejects(
        resizeExport(s, {
          name: x.name,
          size: '32M',
          stateDir: env.stateDir,
          hostRecordDir: env.hostRecordDir,
          hooks: {
            beforeApply: (id) => {
              if (id === 'target') throw new Error('injected failure at the target step');
            },
          },
        }),
        /injected failure at the target step/,
      );
    } finally {
      await s.close();
    }
    assert.equal(virsh(['domstate', env.guest.domain]).trim(), 'running');
    assert.equal(statSync(x.image).size, 32 * MiB);
    assert.equal(JSON.parse(readFileSync(join(env.stateDir, `${x.name}.json`), 'utf8')).sizeBytes, 16 * MiB);
    const r = await env.cli(['resize', x.name, '--size', '32M', '--host-records', env.hostRecordDir, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { fromBytes: number; toBytes: number; applied: number };
    assert.deepEqual([json.fromBytes, json.toBytes], [32 * MiB, 32 * MiB]);
    assert.ok(json.applied > 0, 'the rerun made the target, QEMU and the records catch up');
    assert.match(virsh(['domblkinfo', env.guest.domain, x.hypervisors[0]!.attachment!.dev]), new RegExp(`Capacity:\\s+${32 * MiB}\\n`));
  });
});
