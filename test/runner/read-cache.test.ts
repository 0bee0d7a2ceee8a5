// The Session's read cache on the real local runner (real files, real processes, the
// running libvirtd for virsh): a read is asked once until a change that may affect it; a
// change elsewhere keeps it; a wait drops every read; concurrent askers share one process;
// virsh reads batched in one process answer exactly what each asks alone, and a failed
// one is asked alone again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Virsh } from '../../src/hypervisor/virsh.js';
import { LocalRunner } from '../../src/runner/local.js';
import { CachingRunner, commandScopes, ReadCache, readsMayBeStale } from '../../src/runner/read-cache.js';
import { TracingRunner } from '../../src/runner/tracing.js';
import { ensureLibvirtd, LIBVIRT_URI } from '../helpers/libvirt.js';

function cached(): { runner: CachingRunner; asked: string[] } {
  const asked: string[] = [];
  return { runner: new CachingRunner(new TracingRunner(new LocalRunner(), (l) => void asked.push(l.replace(/^trace \S+ \S+ local /, '').trimEnd())), new ReadCache()), asked };
}

test('what a command reads or changes', () => {
  const v = (...args: string[]): string[] => ['virsh', '-c', 'qemu:///system', ...args];
  assert.deepEqual(commandScopes(v('pool-info', '--bytes', '--pool', 'p1'), true), ['virsh qemu:///system pool p1']);
  assert.deepEqual(commandScopes(v('dumpxml', '--inactive', '--domain', 'd1'), true), ['virsh qemu:///system domain d1']);
  assert.deepEqual(commandScopes(v('pool-start', '--pool', 'p1'), false), ['virsh qemu:///system pool p1', 'virsh qemu:///system pools', 'tgt']);
  assert.deepEqual(commandScopes(v('pool-define', '--file', '/dev/stdin'), false), ['virsh qemu:///system pool ', 'virsh qemu:///system pools'], 'every pool: its name is in the XML');
  assert.deepEqual(commandScopes(v('attach-device', '--domain', 'd1', '--file', '/dev/stdin', '--live'), false), ['virsh qemu:///system domain d1', 'virsh qemu:///system domains', 'tgt']);
  assert.deepEqual(commandScopes(v('migrate', '--live', '--domain', 'd1'), false), ['*'], 'not known to be narrow: everything');
  assert.deepEqual(commandScopes(v('dumpxml', 'd1'), true), ['*'], 'a read naming no --domain: no narrower scope');
  assert.deepEqual(commandScopes(['tgtadm', '-C', '1', '--lld', 'iscsi', '--mode', 'target', '--op', 'show'], true), ['tgt']);
  assert.deepEqual(commandScopes(['stat', '-L', '-c', '%s', '--', '/a', '/b'], true), ['file /a', 'file /b']);
  assert.deepEqual(commandScopes(['find', '/conf', '-maxdepth', '1'], true), ['dir /conf']);
  assert.deepEqual(commandScopes(['test', '-d', '/sys/module/iscsi_tcp'], true), ['host']);
  assert.deepEqual(commandScopes(['mkdir', '-p', '/x/y'], false), ['file /x/y', 'dir /x']);
  assert.deepEqual(commandScopes(['iscsiadm', '-m', 'session'], true), ['*']);
  assert.deepEqual(commandScopes(['udevadm', 'settle'], false), ['*']);
});

test('a read is asked once until a change of its scope; a change elsewhere keeps it; a wait drops it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-rc-'));
  try {
    const { runner, asked } = cached();
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    writeFileSync(a, 'one');
    assert.equal(await runner.readFile(a), 'one');
    writeFileSync(a, 'changed behind its back');
    assert.equal(await runner.readFile(a), 'one', 'asked once');
    await runner.writeFile(b, 'x');
    assert.equal(await runner.readFile(a), 'one', 'another file written: still the read from before');
    const ls = await runner.run(['find', dir, '-maxdepth', '1', '-type', 'f'], { query: true });
    assert.equal(ls.stdout.split('\n').filter(Boolean).length, 2);
    await runner.writeFile(a, 'two');
    assert.equal(await runner.readFile(a), 'two', 'written through the runner: read again');
    await runner.removeFile(b);
    const again = await runner.run(['find', dir, '-maxdepth', '1', '-type', 'f'], { query: true });
    assert.equal(again.stdout.split('\n').filter(Boolean).length, 1, 'a file removed: the listing of its directory is read again');
    // A read of no known scope (`cat`) is dropped by any change.
    const cat = async (): Promise<string> => (await runner.run(['cat', a], { query: true })).stdout;
    assert.equal(await cat(), 'two');
    writeFileSync(a, 'three');
    assert.equal(await cat(), 'two');
    await runner.run(['true']);
    assert.equal(await cat(), 'three', 'a command that is not a query changed something: read again');
    writeFileSync(a, 'four');
    readsMayBeStale();
    assert.equal(await runner.readFile(a), 'four', 'after a wait every read is asked again');
    const reads = asked.filter((l) => l.includes(`read ${a}`));
    assert.equal(reads.length, 3, asked.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('askers at the same moment share one process; a failure is not kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vit-rc-'));
  try {
    const { runner } = cached();
    const counter = join(dir, 'n');
    const argv = ['sh', '-c', 'echo x >> "$1"; sleep 0.2; wc -l < "$1"', 'sh', counter];
    const answers = await Promise.all([1, 2, 3].map(() => runner.run(argv, { query: true })));
    assert.deepEqual(answers.map((r) => r.stdout.trim()), ['1', '1', '1']);
    assert.equal(readFileSync(counter, 'utf8'), 'x\n', 'one process');
    const failing = new CachingRunner(new LocalRunner(), new ReadCache());
    await assert.rejects(failing.run([], { query: true }), TypeError);
    await assert.rejects(failing.run([], { query: true }), TypeError, 'asked again, not the kept failure');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('virsh reads batched in one process answer byte for byte what each asks alone; a failed one is asked alone', async (t) => {
  const stop = await ensureLibvirtd();
  t.after(stop);
  const alone = new Virsh(new LocalRunner(), LIBVIRT_URI);
  const { runner, asked } = cached();
  const virsh = new Virsh(runner, LIBVIRT_URI);
  const missing = `vit-rc-missing-${process.pid}`;
  await virsh.prefetch([['pool-list', '--all', '--details'], ['secret-list'], ['pool-info', '--bytes', '--pool', missing], ['pool-info', '--pool', "bad'word"]]);
  assert.equal(asked.length, 1, asked.join('\n'));
  assert.match(asked[0]!, /^exit 0: virsh -c qemu:\/\/\/system 'pool-list --all --details ; echo @@virt-iscsi-[0-9a-f]+-0 ; secret-list ; echo/);
  assert.ok(!asked[0]!.includes('bad'), 'a word virsh would parse otherwise is left out');
  const same = async (args: string[]): Promise<void> => {
    const mine = await virsh.run(args, { query: true });
    const theirs = await alone.run(args, { query: true });
    assert.equal(mine.stdout, theirs.stdout, args.join(' '));
  };
  await same(['pool-list', '--all', '--details']);
  await same(['secret-list']);
  assert.equal(asked.length, 1, 'both answered from the batch');
  assert.equal(await virsh.poolInfo(missing), undefined, 'not there: asked alone, with its own error');
  assert.equal(asked.length, 2);
  assert.match(asked[1]!, /^exit 1: virsh -c qemu:\/\/\/system pool-info --bytes --pool vit-rc-missing-/);
});
