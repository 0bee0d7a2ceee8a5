// The export workflow with BOTH the storage host and the hypervisor reached through a real
// sshd on 127.0.0.1 (SshRunner: one connection per host, host key checked): every tgtadm,
// virsh, record and XML file goes over SSH. Checked with local virsh and tgtadm. Kept to
// one export: on this machine every SSH command costs about a second (root's ~/.bashrc
// runs `pyenv init`, which bash sources for commands sshd starts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { Session } from '../../src/cli/session.js';
import { exportStatus } from '../../src/workflows/status.js';
import { startSshd } from '../helpers/sshd.js';
import { MiB, startEnv } from './env.js';
import { asIscsi } from '../../src/workflows/records.js';

test('export, status after losing the local state, unexport: storage and hypervisor over SSH', async (t) => {
  const env = await startEnv('sx');
  t.after(() => env.close());
  const sshd = await startSshd();
  env.cleanup(() => sshd.stop());
  env.session = { identity: sshd.identity, knownHosts: sshd.knownHosts, sshConfig: 'none' };
  const remote = { storage: sshd.uri, hypervisor: sshd.uri };
  const before = env.snapshot();

  const image = env.image(`${env.id}-remote.img`, 24 * MiB);
  const r = await env.exportIt(image, remote);
  const x = asIscsi(r.record);
  const a = x.hypervisors[0]!.attachment!;
  assert.deepEqual([x.storage, x.hypervisors[0]!.uri, x.mode], [sshd.uri, sshd.uri, 'direct']);
  assert.deepEqual(env.blk().find((b) => b[2] === a.dev), ['volume', 'disk', a.dev, 'unit:0:0:1']);
  assert.equal(env.capacity(a.dev), 24 * MiB);
  assert.ok(env.sessions(x.target).includes(x.hypervisors[0]!.initiator));

  // From "another machine": no local state, the storage host's record found over SSH.
  rmSync(env.stateDir, { recursive: true });
  const s = new Session(env.session);
  try {
    const [far] = await exportStatus(s, { stateDir: env.stateDir, storage: sshd.uri, hostRecordDir: env.hostRecordDir });
    assert.deepEqual([far?.name, far?.records, far?.healthy, far?.dev], [x.name, ['storage'], true, a.dev]);
  } finally {
    await s.close();
  }
  const u = await env.unexportIt(x.name, { storage: sshd.uri });
  assert.equal(u.found, true);
  assert.deepEqual(env.snapshot(), before);
  assert.deepEqual(readdirSync(env.hostRecordDir), []);
});
