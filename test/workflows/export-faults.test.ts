// Rollback and concurrency of the export workflow, against the real private tgtd, libvirtd
// and a running QEMU domain. Each step is made to fail in turn (through the library-only
// hook); afterwards `tgtadm --op show`, `virsh pool-list --all`, `virsh secret-list` and
// `virsh dumpxml --inactive` must read exactly as before. Then five exports of different
// images to one storage host and one domain run at the same moment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { MiB, startEnv } from './env.js';
import { asIscsi } from '../../src/workflows/records.js';

class Injected extends Error {}

test('a failure at any step, or an abort, undoes the steps before it; five exports at once all succeed', async (t) => {
  const env = await startEnv('fx');
  t.after(() => env.close());
  const quiet = (dir: string): string[] => readdirSync(dir).filter((f) => !f.startsWith('.'));

  await t.test('direct mode with CHAP: each applied step fails in turn', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-f.img`, 8 * MiB);
    // The steps a full run applies (the daemon is running, so that one is skipped).
    const applied: string[] = [];
    const full = await env.exportIt(image, { chap: true, hooks: { beforeApply: (id) => void applied.push(id) } });
    await env.unexportIt(full.record.name);
    assert.deepEqual(env.snapshot(), before);
    assert.deepEqual(applied, ['storage-record', 'target', 'secret', 'pool-define', 'pool-start', 'pool-autostart', 'volume', 'attach', 'local-record']);

    for (const failing of applied) {
      await assert.rejects(
        env.exportIt(image, {
          chap: true,
          hooks: {
            beforeApply: (id) => {
              if (id === failing) throw new Injected(`injected failure before ${id}`);
            },
          },
        }),
        (e: unknown) => e instanceof Injected,
        `the failure at ${failing} is what the caller sees`,
      );
      assert.deepEqual(env.snapshot(), before, `after a failure at ${failing}, every host is as it was`);
      assert.deepEqual(quiet(env.hostRecordDir), [], `no storage record after a failure at ${failing}`);
      assert.deepEqual(quiet(env.confDir), [], `no tgt record after a failure at ${failing}`);
    }
  });

  await t.test('an ISO put into the empty IDE drive is ejected again when the last step fails', async () => {
    const before = env.snapshot();
    await assert.rejects(
      env.exportIt(env.iso(`${env.id}-fcd`), {
        mode: 'network',
        hooks: {
          beforeApply: (id) => {
            if (id === 'local-record') throw new Injected('injected failure before local-record');
          },
        },
      }),
      Injected,
    );
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('an abort (what SIGINT/SIGTERM do through withInterrupts) after the target step rolls back', async () => {
    const before = env.snapshot();
    const controller = new AbortController();
    await assert.rejects(
      env.exportIt(env.image(`${env.id}-abort.img`, 8 * MiB), {
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'done' && e.step.title.startsWith('create target')) controller.abort();
        },
      }),
      /interrupted \(aborted\); undid the steps already done/,
    );
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('five exports of different images to one storage host and one domain at the same moment', async () => {
    const before = env.snapshot();
    const images = [1, 2, 3, 4, 5].map((n) => env.image(`${env.id}-c${n}.img`, n * MiB));
    const results = await Promise.all(images.map((img) => env.exportIt(img)));
    const devs = results.map((r) => r.record.hypervisors[0]!.attachment!.dev);
    assert.equal(new Set(devs).size, 5, `each on its own dev: ${devs.join(' ')}`);
    const shown = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
    const tids = [...shown.matchAll(/^Target (\d+): /gm)].map((m) => m[1]);
    assert.equal(new Set(tids).size, 5, 'five targets, five tids');
    for (const [i, r] of results.entries()) {
      assert.equal(env.capacity(r.record.hypervisors[0]!.attachment!.dev), (i + 1) * MiB, `${r.record.name} is the right image`);
      assert.ok(env.sessions(asIscsi(r.record).target).includes(r.record.hypervisors[0]!.initiator));
    }
    const gone = await Promise.all(results.map((r) => env.unexportIt(r.record.name)));
    assert.ok(gone.every((u) => u.found));
    assert.deepEqual(env.snapshot(), before);
  });
});
