// A transient domain (started with `virsh create`, never defined) has no definition: an
// export gives it the disk live only, status does not ask for the definition's copy, and
// unexport takes the disk away live only. Real private tgtd, the running libvirtd, QEMU;
// checked with virsh (dominfo, domblklist) and tgtadm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/runner/session.js';
import { exportStatus } from '../../src/workflows/status.js';
import { minimalDomainXml } from '../helpers/libvirt.js';
import { MiB, startEnv, virsh } from './env.js';

test('a transient domain: the disk goes in and out live only; status is healthy', { timeout: 300_000 }, async () => {
  const env = await startEnv('tr');
  try {
    const vm = `vit-${env.id}-tr`;
    const xml = join(env.dir, 'transient.xml');
    writeFileSync(xml, minimalDomainXml(vm));
    virsh(['create', xml]);
    env.cleanup(() => void virsh(['destroy', vm]));
    assert.match(virsh(['dominfo', vm]), /Persistent:\s+no/);

    const x = await env.exportIt(env.image(`${env.id}-t.img`, 8 * MiB), { mode: 'network', vm });
    const att = x.record.hypervisors[0]!.attachment!;
    assert.deepEqual([att.live, att.config], [true, false], 'live only: there is no definition');
    const rows = virsh(['domblklist', '--details', vm]).split('\n').filter((l) => l.includes(att.dev));
    assert.equal(rows.length, 1, 'the running domain holds the disk');

    const s = new Session({});
    try {
      const [st] = await exportStatus(s, { names: [x.record.name], stateDir: env.stateDir, hostRecordDir: env.hostRecordDir });
      assert.equal(st!.healthy, true, st!.problems.join('; '));
      assert.equal(st!.persistent, false);
    } finally {
      await s.close();
    }

    await env.unexportIt(x.record.name);
    assert.ok(!virsh(['domblklist', '--details', vm]).includes(att.dev), 'the disk is gone from the running domain');
    assert.ok(!env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']).includes(env.id), 'the target is gone');
  } finally {
    await env.close();
  }
});
