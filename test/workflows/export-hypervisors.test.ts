// Several hypervisors on one machine, as far as one machine can have them: this host's
// libvirtd reached as `local` and as `ssh://root@127.0.0.1:PORT` (a real sshd) is one host
// with one initiator name, which is exactly what must be refused. The real two-hypervisor
// runs (export to both, live migration back and forth) are in the lab (test/lab/migrate-export.lab.ts).
// Here: bad input (a hypervisor twice, a shared initiator, no domain on any), and an export
// extended with --add-hypervisor and narrowed with --remove-hypervisor, its ACL followed by
// tgtd, each step idempotent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session } from '../../src/runner/session.js';
import { addHypervisor, removeHypervisor } from '../../src/workflows/membership.js';
import { asIscsi } from '../../src/workflows/records.js';
import { startSshd } from '../helpers/sshd.js';
import { MiB, startEnv } from './env.js';

test('several hypervisors: bad input refused in one line, --add-hypervisor / --remove-hypervisor', async (t) => {
  const env = await startEnv('hv');
  t.after(() => env.close());
  const sshd = await startSshd();
  env.cleanup(() => sshd.stop());
  env.session = { identity: sshd.identity, knownHosts: sshd.knownHosts, sshConfig: 'none' };

  await t.test('a hypervisor given twice; two URIs of one host (one initiator name); no domain on any: nothing made', async () => {
    const before = env.snapshot();
    const image = env.image(`${env.id}-bad.img`, 4 * MiB);
    await assert.rejects(env.exportIt(image, { hypervisors: ['local', 'local'], mode: 'network' }), /^ValidationError: hypervisor "local" is given twice; give each hypervisor once$/);
    await assert.rejects(
      env.exportIt(image, { hypervisors: ['local', sshd.uri], mode: 'network' }),
      new RegExp(`hypervisors local and ${sshd.uri.replace(/[.]/g, '\\.')} both log in as iqn\\.\\S+; each needs its own initiator name`),
    );
    await assert.rejects(env.exportIt(image, { vm: `vit-${env.id}-nowhere`, hypervisors: ['local', sshd.uri], mode: 'network' }), /no domain "vit-\S+-nowhere" on any of qemu:\/\/\/system, qemu:\/\/\/system on ssh:\/\/root@127\.0\.0\.1:\d+/);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('--add-hypervisor of one already there changes nothing; --remove-hypervisor of the only one is refused; the ACL follows', async () => {
    const before = env.snapshot();
    const r = await env.exportIt(env.image(`${env.id}-m.img`, 4 * MiB), { mode: 'network' });
    const name = r.record.name;
    const s = new Session(env.session);
    try {
      const again = await addHypervisor(s, { name, hypervisor: 'local', stateDir: env.stateDir, hostRecordDir: env.hostRecordDir });
      assert.equal(again.applied, 0, 'already its hypervisor: nothing to do');
      await assert.rejects(
        addHypervisor(s, { name, hypervisor: sshd.uri, stateDir: env.stateDir, hostRecordDir: env.hostRecordDir }),
        /both log in as iqn\.\S+; each needs its own initiator name/,
        'this host over SSH is the same initiator: refused before anything changes',
      );
      await assert.rejects(
        removeHypervisor(s, { name, hypervisor: 'local', stateDir: env.stateDir, hostRecordDir: env.hostRecordDir }),
        /local is the only hypervisor of export \S+: unexport it instead/,
      );
      await assert.rejects(removeHypervisor(s, { name, hypervisor: 'ssh://root@kvm9', stateDir: env.stateDir, hostRecordDir: env.hostRecordDir }), /is not one of export \S+'s: local/);
      await assert.rejects(addHypervisor(s, { name: `${env.id}-nope`, hypervisor: sshd.uri, stateDir: env.stateDir, hostRecordDir: env.hostRecordDir }), /no export named "\S+-nope" is recorded/);
    } finally {
      await s.close();
    }
    // tgtd's view: exactly the one initiator allowed.
    const shown = env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
    const block = shown.split(/^Target \d+: /m).find((b) => b.startsWith(`${asIscsi(r.record).target}\n`))!;
    assert.equal([...block.matchAll(/^\s+(iqn\.\S+)$/gm)].length, 1);
    await env.unexportIt(name);
    assert.deepEqual(env.snapshot(), before);
  });
});
