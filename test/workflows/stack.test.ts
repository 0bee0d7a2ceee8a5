// apply/destroy of stack files end to end on this machine: a private tgtd, the running
// libvirtd, a running QEMU domain (with an empty IDE cdrom drive). What apply did is read
// back with virsh (domblklist, pool-list, pool-info, secret-list, vol-list) and
// tgtadm --op show; "as before" is the same snapshot of both, taken before the first apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/cli/session.js';
import { LocalRunner } from '../../src/runner/local.js';
import { TgtBackend } from '../../src/storage/tgt/backend.js';
import { parseStack } from '../../src/workflows/stack-file.js';
import { applyStack, destroyStack, planStack, StackError, type StackOptions } from '../../src/workflows/stack.js';
import { MiB, startEnv, virsh, type Env } from './env.js';

const actions = (changes: ReadonlyArray<{ kind: string; name: string; action: string }>): string[] => changes.map((c) => `${c.action} ${c.kind} ${c.name}`);

function stackFile(env: Env, file: string, body: string[]): string {
  const path = join(env.dir, file);
  const head = [
    `stack: ${env.id}`,
    'defaults:',
    `  vm: ${env.domain}`,
    `  control-port: ${env.tgtd.controlPort}`,
    `  portal: ${env.tgtd.portal}`,
    `  conf-dir: ${env.confDir}`,
    `  host-records: ${env.hostRecordDir}`,
  ];
  writeFileSync(path, [...head, ...body, ''].join('\n'));
  return path;
}

async function withStack<T>(file: string, fn: (s: Session, spec: ReturnType<typeof parseStack>) => Promise<T>, dryRun = false): Promise<T> {
  const s = new Session({ dryRun });
  try {
    return await fn(s, parseStack(readFileSync(file, 'utf8'), file));
  } finally {
    await s.close();
  }
}

test('apply and destroy: create, unchanged, change, remove, dry run, a failing export; as before at the end', async (t) => {
  const env = await startEnv('st');
  t.after(() => env.close());
  const o: StackOptions = { stateDir: env.stateDir };
  const before = env.snapshot();
  const data = env.image(`${env.id}-data.img`, 16 * MiB);
  const iso = env.iso(`${env.id}-cd`);
  const data2 = env.image(`${env.id}-data2.img`, 8 * MiB);
  const v1 = stackFile(env, 'v1.yaml', ['exports:', `  - image: ${data}`, `  - image: ${iso}`]);
  const names = { data: `${env.id}-data`, cd: `${env.id}-cd`, data2: `${env.id}-data2`, bad: `${env.id}-bad` };

  await t.test('--dry-run: the plan says what it would create, and nothing changes', async () => {
    const plan = await withStack(v1, (s, spec) => planStack(s, spec, o));
    assert.deepEqual(actions(plan), [`create export ${names.data}`, `create export ${names.cd}`]);
    const recorded = await withStack(
      v1,
      async (s, spec) => {
        const r = await applyStack(s, spec, o);
        assert.equal(r.dryRun, true);
        return s.renderPlan();
      },
      true,
    );
    assert.match(recorded, /tgtadm -C \d+ --lld iscsi --mode target --op new .*:[a-z0-9]+-data\n/);
    assert.match(recorded, /virsh -c qemu:\/\/\/system pool-start --pool virt-iscsi-st[0-9a-f]+-cd/);
    assert.deepEqual(env.snapshot(), before, 'nothing changed');
  });

  await t.test('apply creates both, labelled with the stack; a second apply changes nothing', async () => {
    const r = await withStack(v1, (s, spec) => applyStack(s, spec, o));
    assert.deepEqual(actions(r.changes), [`create export ${names.data}`, `create export ${names.cd}`]);
    const blk = env.blk();
    assert.ok(blk.some((b) => b[0] === 'volume' && b[1] === 'disk'), JSON.stringify(blk));
    assert.deepEqual(blk.find((b) => b[2] === 'hdc'), ['volume', 'cdrom', 'hdc', 'unit:0:0:1'], 'the ISO went into the empty drive');
    const shown = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
    for (const n of [names.data, names.cd]) {
      assert.match(shown, new RegExp(`Target \\d+: iqn\\.[^\\n]*:${n}\\n`));
      for (const dir of [env.stateDir, env.hostRecordDir]) assert.equal(JSON.parse(readFileSync(join(dir, `${n}.json`), 'utf8')).stack, env.id);
    }
    const again = await withStack(v1, (s, spec) => applyStack(s, spec, o));
    assert.deepEqual(actions(again.changes), [`unchanged export ${names.data}`, `unchanged export ${names.cd}`]);
    assert.deepEqual(
      again.changes.map((c) => c.applied),
      [0, 0],
      'every step found in place',
    );
  });

  const v2 = stackFile(env, 'v2.yaml', ['exports:', `  - image: ${data}`, '    mode: network', `  - image: ${data2}`]);

  await t.test('a changed export is re-done, a dropped one removed, a new one created', async () => {
    const dry = await withStack(v2, (s, spec) => planStack(s, spec, o));
    assert.deepEqual(actions(dry), [`remove export ${names.cd}`, `change export ${names.data}`, `create export ${names.data2}`]);
    assert.deepEqual(dry[1]!.details, ['mode "direct" -> "network"', 'unexport, then export again']);
    const r = await withStack(v2, (s, spec) => applyStack(s, spec, o));
    assert.deepEqual(actions(r.changes), actions(dry));
    const blk = env.blk();
    assert.ok(blk.some((b) => b[0] === 'network' && b[3]!.endsWith(`:${names.data}/1`)), `data is a network disk now: ${JSON.stringify(blk)}`);
    assert.deepEqual(blk.find((b) => b[2] === 'hdc'), ['file', 'cdrom', 'hdc', '-'], 'the ISO is out of the drive');
    assert.equal(blk.filter((b) => b[0] === 'volume').length, 1, 'data2 is the one volume disk');
    assert.ok(!readdirSync(env.stateDir).includes(`${names.cd}.json`));
    assert.doesNotMatch(virsh(['pool-list', '--all']), new RegExp(`virt-iscsi-${names.cd}\\b`));
  });

  await t.test('a failing export is rolled back, the ones before it stay, and the error names it', async () => {
    const bad = env.image(`${env.id}-bad.img`, 4 * MiB);
    const v3 = stackFile(env, 'v3.yaml', ['exports:', `  - image: ${data}`, '    mode: network', `  - image: ${data2}`, `  - image: ${bad}`]);
    const mid = env.snapshot();
    const failing: StackOptions = {
      ...o,
      hooks: (name) =>
        name === names.bad
          ? {
              beforeApply: (id) => {
                if (id === 'attach') throw new Error('injected failure at attach');
              },
            }
          : undefined,
    };
    await assert.rejects(
      withStack(v3, (s, spec) => applyStack(s, spec, failing)),
      (e: unknown) =>
        e instanceof StackError &&
        e.change.name === names.bad &&
        e.done.length === 2 &&
        /could not create export ".*-bad" \(exports\[3\]\): injected failure at attach; what it had done was rolled back/.test(e.message),
    );
    assert.deepEqual(env.snapshot(), mid, 'the two that were there are as they were; the failed one left nothing');
    assert.ok(!readdirSync(env.hostRecordDir).includes(`${names.bad}.json`));
  });

  await t.test('destroy takes every export away; the hosts are as before the first apply', async () => {
    const r = await withStack(v2, (s, spec) => destroyStack(s, spec, o));
    assert.deepEqual(actions(r.changes), [`remove export ${names.data2}`, `remove export ${names.data}`]);
    assert.deepEqual(env.snapshot(), before);
    assert.deepEqual(readdirSync(env.stateDir), []);
    assert.deepEqual(readdirSync(env.hostRecordDir), []);
    const twice = await withStack(v2, (s, spec) => destroyStack(s, spec, o));
    assert.deepEqual(twice.changes, [], 'destroy twice is fine');
  });
});

test('apply and destroy: libvirt pools over existing targets, with CHAP and autostart', async (t) => {
  const env = await startEnv('sp');
  t.after(() => env.close());
  const o: StackOptions = { stateDir: env.stateDir };
  const before = env.snapshot();
  const initiator = `iqn.2024-01.dev.virt-iscsi:${env.id}-hv`;
  const target = `iqn.2024-01.dev.virt-iscsi:${env.id}-nas`;
  const backend = new TgtBackend(new LocalRunner(), { controlPort: env.tgtd.controlPort, confDir: env.confDir });
  await backend.create({ iqn: target, luns: [{ lun: 1, path: env.image(`${env.id}-nas.img`, 8 * MiB) }], allow: [initiator], chap: { user: `${env.id}-hv`, secret: 'Fir5tSecretPass' }, persist: true });
  env.cleanup(() => backend.delete(target, { force: true }));
  const secretFile = join(env.dir, 'nas.secret');
  writeFileSync(secretFile, 'Fir5tSecretPass\n', { mode: 0o600 });
  const pool = `${env.id}-nas`;
  const body = (autostart: boolean): string[] => [
    'pools:',
    `  - name: ${pool}`,
    '    type: iscsi-direct',
    `    portal: ${env.tgtd.portal}`,
    `    target: ${target}`,
    `    initiator: ${initiator}`,
    `    chap-user: ${env.id}-hv`,
    '    chap-secret-file: nas.secret',
    `    autostart: ${autostart}`,
  ];
  const file = stackFile(env, 'pools.yaml', body(true));

  const r = await withStack(file, (s, spec) => applyStack(s, spec, o));
  assert.deepEqual(actions(r.changes), [`create pool ${pool}`]);
  assert.match(virsh(['pool-info', pool]), /State:\s+running[\s\S]*Autostart:\s+yes/);
  assert.match(virsh(['vol-list', pool]), /unit:0:0:1/, 'libvirt logged in with CHAP and lists the LUN');
  assert.match(virsh(['secret-list']), new RegExp(`iscsi +virt-iscsi-pool-${pool}\\b`));
  assert.doesNotMatch(readFileSync(join(env.dir, 'stacks', `${env.id}.json`), 'utf8'), /Fir5tSecretPass/, 'the stack record holds no secret');

  const again = await withStack(file, (s, spec) => applyStack(s, spec, o));
  assert.deepEqual(actions(again.changes), [`unchanged pool ${pool}`]);

  // A new CHAP secret: on the target's account (tgtadm has no account update) and in the file.
  const tid = /Target (\d+): /.exec(env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']).split(/^(?=Target )/m).find((x) => x.includes(target))!)![1]!;
  for (const args of [
    ['--op', 'delete', '--mode', 'account', '--user', `${env.id}-hv`],
    ['--op', 'new', '--mode', 'account', '--user', `${env.id}-hv`, '--password', 'N3wSecretPasswd'],
    ['--op', 'bind', '--mode', 'account', '--tid', tid, '--user', `${env.id}-hv`],
  ]) {
    env.tgtd.tgtadm(['--lld', 'iscsi', ...args]);
  }
  writeFileSync(secretFile, 'N3wSecretPasswd\n');
  stackFile(env, 'pools.yaml', body(false));
  const changed = await withStack(file, (s, spec) => planStack(s, spec, o));
  assert.deepEqual(actions(changed), [`change pool ${pool}`]);
  assert.deepEqual(changed[0]!.details, ['autostart on -> off', 'chap-secret-file holds another secret: set it again']);
  await withStack(file, (s, spec) => applyStack(s, spec, o));
  assert.match(virsh(['pool-info', pool]), /Autostart:\s+no/);
  assert.deepEqual(actions(await withStack(file, (s, spec) => planStack(s, spec, o))), [`unchanged pool ${pool}`]);

  // Dropped from the file: the pool this stack made goes, with its secret.
  const empty = stackFile(env, 'pools.yaml', ['pools:']);
  const removed = await withStack(empty, (s, spec) => applyStack(s, spec, o));
  assert.deepEqual(actions(removed.changes), [`remove pool ${pool}`]);
  assert.deepEqual(env.snapshot().pools, before.pools);
  assert.deepEqual(env.snapshot().secrets, before.secrets);
  stackFile(env, 'pools.yaml', body(true));
  await withStack(file, (s, spec) => applyStack(s, spec, o));
  const gone = await withStack(file, (s, spec) => destroyStack(s, spec, o));
  assert.deepEqual(actions(gone.changes), [`remove pool ${pool}`]);
  assert.deepEqual([env.snapshot().pools, env.snapshot().secrets], [before.pools, before.secrets]);
  assert.deepEqual(readdirSync(join(env.dir, 'stacks')), [], 'the stack record is gone with the last pool');
});
