// `node --import tsx bench/profile.ts [ssh]`: one export + unexport like the benchmark's,
// with VIRT_ISCSI_TRACE=1, printing every command's start offset and time: where a
// cycle's time goes.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLibvirtd, LIBVIRT_URI, minimalDomainXml } from '../test/helpers/libvirt.js';
import { startSshd } from '../test/helpers/sshd.js';
import { startTgtd } from '../test/helpers/tgtd.js';
import { cleanupStack } from '../test/helpers/cleanups.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const sh = (file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ ms: number; stderr: string }> => {
  const start = performance.now();
  return new Promise((resolve, reject) =>
    execFile(file, args, { env, encoding: 'utf8' }, (err, _out, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve({ ms: performance.now() - start, stderr }))),
  );
};

const { cleanup, close } = cleanupStack();
try {
  cleanup(await ensureLibvirtd());
  const tgtd = await startTgtd();
  cleanup(() => tgtd.stop());
  const sshd = process.argv[2] === 'ssh' ? await startSshd() : undefined;
  if (sshd) cleanup(() => sshd.stop());
  const dir = mkdtempSync(join(tmpdir(), 'vit-prof-'));
  cleanup(() => rmSync(dir, { recursive: true, force: true }));
  const vm = `vit-prof-${randomBytes(3).toString('hex')}`;
  writeFileSync(join(dir, 'domain.xml'), minimalDomainXml(vm));
  await sh('virsh', ['-c', LIBVIRT_URI, 'define', join(dir, 'domain.xml')]);
  cleanup(() => sh('virsh', ['-c', LIBVIRT_URI, 'undefine', vm]));
  await sh('virsh', ['-c', LIBVIRT_URI, 'start', vm]);
  cleanup(() => sh('virsh', ['-c', LIBVIRT_URI, 'destroy', vm]));
  const img = join(dir, 'prof.img');
  writeFileSync(img, '');
  truncateSync(img, 64 << 20);
  const hosts = sshd ? ['--storage', sshd.uri, '--hypervisor', sshd.uri, '--identity', sshd.identity, '--known-hosts', sshd.knownHosts] : [];
  const records = ['--host-records', join(dir, 'records')];
  const env = { ...process.env, XDG_STATE_HOME: join(dir, 'state'), VIRT_ISCSI_TRACE: '1' };
  const cli = (args: string[]) => sh(process.execPath, [join(root, 'bin', 'virt-iscsi.js'), ...args], env);
  for (let i = 0; i < 2; i++) {
    const ex = await cli(['export', img, '--vm', vm, '--name', 'prof', '--portal', tgtd.portal, '--control-port', String(tgtd.controlPort), '--conf-dir', join(dir, 'tgt'), ...records, ...hosts]);
    const un = await cli(['unexport', 'prof', ...records, ...hosts]);
    if (i === 1) process.stdout.write(`export ${Math.round(ex.ms)} ms\n${ex.stderr}\nunexport ${Math.round(un.ms)} ms\n${un.stderr}`);
  }
} finally {
  await close();
}
