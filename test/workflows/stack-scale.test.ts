// A stack of many exports to few domains, end to end on this machine (a private tgtd, the
// running libvirtd, two running QEMU domains of its own): every export gets its own target (no tid
// twice), its LUN serving its own image, and its own disk (no target dev twice), as
// tgtadm --op show and virsh dumpxml print them. Applying it again changes nothing: its
// dry run records no command, and the real run (traced with VIRT_ISCSI_TRACE=1) runs no
// changing command and asks the hosts fewer questions than there are exports (one read of
// each host, not one per export). Destroy leaves the hosts as they were.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/cli/session.js';
import { parseStack } from '../../src/workflows/stack-file.js';
import { applyStack, destroyStack, type StackOptions, type StackResult } from '../../src/workflows/stack.js';
import { minimalDomainXml } from '../helpers/libvirt.js';
import { MiB, startEnv, virsh } from './env.js';

const N = 20;

/** Each disk of the domain as its XML says: target dev, and the pool (iscsi-direct volume) or network target it comes from. */
function disks(domain: string, inactive = false): Array<{ dev: string; from: string }> {
  const xml = virsh(['dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', domain]);
  return [...xml.matchAll(/<disk\b[\s\S]*?<\/disk>/g)].flatMap(([d]) => {
    const dev = /<target dev='([^']+)'/.exec(d)?.[1];
    const from = /<source pool='([^']+)'/.exec(d)?.[1] ?? /<source protocol='iscsi' name='([^']+)'/.exec(d)?.[1];
    return dev && from ? [{ dev, from }] : [];
  });
}

/** `tgtadm --op show` per target: its tid, name, and each LUN's backing store. */
function targets(shown: string): Array<{ tid: number; iqn: string; luns: Map<number, string>; acl: string[] }> {
  return shown
    .split(/^(?=Target \d+: )/m)
    .filter((b) => b.startsWith('Target '))
    .map((b) => {
      const [, tid, iqn] = /^Target (\d+): (\S+)/.exec(b)!;
      const luns = new Map<number, string>();
      for (const m of b.matchAll(/LUN: (\d+)\n[\s\S]*?Backing store path: (\S+)/g)) luns.set(Number(m[1]), m[2]!);
      const acl = /ACL information:\n([\s\S]*)$/.exec(b)?.[1]?.split('\n').map((l) => l.trim()).filter(Boolean) ?? [];
      return { tid: Number(tid), iqn: iqn!, luns, acl };
    });
}

test(`a stack of ${N} exports over 2 domains: one target and one disk each, none twice; applied again nothing runs; destroyed, as before`, async (t) => {
  const env = await startEnv('sk');
  t.after(() => env.close());
  // Two domains of their own, each with two virtio-scsi controllers: libvirt puts seven SCSI
  // disks on one, and adds a controller of its own choosing for the eighth.
  const quietly = (args: string[]) => (): void => {
    try {
      virsh(args);
    } catch {
      /* already gone */
    }
  };
  const domains = [`vit-${env.id}-a`, `vit-${env.id}-b`];
  for (const vm of domains) {
    const xml = join(env.dir, `${vm}.xml`);
    writeFileSync(xml, minimalDomainXml(vm, { scsiControllers: 2 }));
    virsh(['define', xml]);
    env.cleanup(quietly(['undefine', vm]));
    virsh(['start', vm]);
    env.cleanup(quietly(['destroy', vm]));
  }
  const definitions = (): string[] => domains.map((vm) => virsh(['dumpxml', '--inactive', '--domain', vm]));

  const o: StackOptions = { stateDir: env.stateDir, waitTimeoutMs: 120_000 };
  const before = { ...env.snapshot(), definitions: definitions() };
  const exports = Array.from({ length: N }, (_, i) => ({ name: `${env.id}-x${i}`, image: env.image(`${env.id}-x${i}.img`, 4 * MiB), vm: domains[i % 2]! }));
  const file = join(env.dir, 'many.yaml');
  writeFileSync(
    file,
    [
      `stack: ${env.id}`,
      'defaults:',
      `  control-port: ${env.tgtd.controlPort}`,
      `  portal: ${env.tgtd.portal}`,
      `  conf-dir: ${env.confDir}`,
      `  host-records: ${env.hostRecordDir}`,
      'exports:',
      ...exports.flatMap((x) => [`  - image: ${x.image}`, `    vm: ${x.vm}`, `    name: ${x.name}`]),
      '',
    ].join('\n'),
  );
  const run = async (dryRun: boolean, fn: (s: Session) => Promise<StackResult>): Promise<{ result: StackResult; session: Session }> => {
    const s = new Session({ dryRun });
    try {
      return { result: await fn(s), session: s };
    } finally {
      await s.close();
    }
  };
  const spec = () => parseStack(readFileSync(file, 'utf8'), file);

  await t.test('apply: one target per export, its own LUN and ACL; one disk per export, no target dev twice', async () => {
    const { result } = await run(false, (s) => applyStack(s, spec(), o));
    assert.deepEqual(
      result.changes.map((c) => `${c.action} ${c.name}`),
      exports.map((x) => `create ${x.name}`),
    );
    const shown = targets(env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']));
    const ours = shown.filter((x) => x.iqn.includes(env.id));
    assert.equal(ours.length, N, 'a target per export');
    assert.equal(new Set(shown.map((x) => x.tid)).size, shown.length, `no tid twice: ${shown.map((x) => x.tid).join(',')}`);
    for (const x of exports) {
      const tg = ours.filter((g) => g.iqn.endsWith(`:${x.name}`));
      assert.equal(tg.length, 1, `one target for ${x.name}`);
      assert.equal(tg[0]!.luns.get(1), x.image, `LUN 1 of ${x.name} serves its own image`);
      assert.ok(tg[0]!.acl.some((a) => a.startsWith('iqn.')), `${x.name} allows its initiator: ${tg[0]!.acl.join(', ')}`);
    }
    for (const vm of domains) {
      const want = exports.filter((x) => x.vm === vm).map((x) => `virt-iscsi-${x.name}`).sort();
      for (const inactive of [false, true]) {
        const ds = disks(vm, inactive);
        assert.deepEqual(ds.map((d) => d.from).filter((f) => f.includes(env.id)).sort(), want, `${vm} (${inactive ? 'definition' : 'running'}) holds a disk from each of its exports' pools, each once`);
        assert.equal(new Set(ds.map((d) => d.dev)).size, ds.length, `no target dev twice in ${vm}: ${ds.map((d) => d.dev).join(',')}`);
      }
    }
    const pools = virsh(['pool-list', '--all', '--name']);
    for (const x of exports) assert.match(pools, new RegExp(`^\\s*virt-iscsi-${x.name}$`, 'm'));
  });

  await t.test('applied again: the dry run records no command; the real run changes nothing and asks fewer questions than there are exports', async () => {
    const dry = await run(true, (s) => applyStack(s, spec(), o));
    assert.deepEqual(dry.session.recorded, [], 'nothing would run');
    assert.ok(dry.result.changes.every((c) => c.action === 'unchanged' && c.applied === 0));
    const mid = { ...env.snapshot(), definitions: definitions(), live: domains.map((vm) => disks(vm)) };
    // VIRT_ISCSI_TRACE=1: every command, file read and write on stderr as it ends.
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.env.VIRT_ISCSI_TRACE = '1';
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      if (typeof chunk === 'string' && chunk.startsWith('trace ')) {
        lines.push(chunk.trimEnd());
        return true;
      }
      return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
    let again: StackResult;
    try {
      again = (await run(false, (s) => applyStack(s, spec(), o))).result;
    } finally {
      process.stderr.write = write;
      delete process.env.VIRT_ISCSI_TRACE;
    }
    assert.ok(again.changes.every((c) => c.action === 'unchanged' && c.applied === 0), JSON.stringify(again.changes.filter((c) => c.applied !== 0)));
    const commands = lines.filter((l) => / exit \d+: /.test(l)).map((l) => l.replace(/^.*? exit \d+: /, ''));
    const writes = lines.filter((l) => / ok: (write|remove) /.test(l));
    assert.deepEqual(writes, [], 'no file written or removed');
    const changing = commands.filter((c) => /--op (new|delete|bind|unbind|update)\b|virsh .* (attach-device|detach-device|change-media|pool-define|pool-start|pool-destroy|pool-undefine|pool-autostart|pool-refresh|secret-define|secret-set-value|secret-undefine)\b/.test(c));
    assert.deepEqual(changing, [], 'no changing command');
    assert.ok(commands.length < N, `the hosts were asked ${commands.length} questions for ${N} exports:\n${commands.join('\n')}`);
    assert.deepEqual({ ...env.snapshot(), definitions: definitions(), live: domains.map((vm) => disks(vm)) }, mid, 'the hosts as they were');
  });

  await t.test('destroy: every export gone, the hosts as before the first apply', async () => {
    const { result } = await run(false, (s) => destroyStack(s, spec(), o));
    assert.equal(result.changes.filter((c) => c.action === 'remove').length, N);
    assert.deepEqual({ ...env.snapshot(), definitions: definitions() }, before);
    assert.deepEqual(targets(env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target'])).filter((x) => x.iqn.includes(env.id)), []);
  });
});
