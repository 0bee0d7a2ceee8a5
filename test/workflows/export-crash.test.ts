// kill -9 at every step of an export, for real: the CLI (src/cli/run.ts, as users run it)
// is stopped by VIRT_ISCSI_TEST_PAUSE right before or right after a step's change and
// killed with SIGKILL there, so nothing of ours runs after. Then either `unexport NAME`
// must leave every host exactly as before (tgtd's targets and accounts, libvirt's pools,
// secrets and both configurations of the domains, conf.d, every record and journal file),
// or the same `export` run again must finish it, `status` saying healthy.
// Two modes run here (this host has no iscsi_tcp: pool and block run in the lab): direct
// with CHAP into a shut-off domain without a SCSI controller (the export adds one: the
// piece only the journal knows of), and network into the running domain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliEntry, cliWith, type CliResult } from '../helpers/cli.js';
import { LIBVIRT_URI, minimalDomainXml } from '../helpers/libvirt.js';
import { MiB, startEnv, virsh } from './env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Every file under `dir`, with its size: records, journals, tgt conf records. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(`${p.slice(dir.length)} ${statSync(p).size}`);
    }
  };
  walk(dir);
  return out;
}

test('kill -9 at each step of an export: unexport, or the same export again, leaves nothing behind', async (t) => {
  const env = await startEnv('kc');
  t.after(() => env.close());
  const xdg = join(env.dir, 'xdg');
  const off = `vit-${env.id}-off`;
  const xml = join(env.dir, 'off.xml');
  writeFileSync(xml, minimalDomainXml(off, { scsi: false }));
  virsh(['define', xml]);
  env.cleanup(() => spawnSync('virsh', ['-c', LIBVIRT_URI, 'undefine', off], { stdio: 'ignore' }));

  const snapshot = (): Record<string, unknown> => ({
    ...env.snapshot(),
    off: virsh(['dumpxml', '--inactive', off]),
    live: virsh(['dumpxml', env.domain]),
    conf: files(env.confDir),
    hostRecords: files(env.hostRecordDir),
    state: files(xdg),
  });
  const hostArgs = ['--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir, '--host-records', env.hostRecordDir];
  const cli = (args: string[]): Promise<CliResult> => cliWith(args, { XDG_STATE_HOME: xdg });

  /** Starts the export, waits until it pauses at `point`, kills it with SIGKILL. */
  async function killAt(point: string, args: string[]): Promise<void> {
    const child = spawn(process.execPath, [...cliEntry(), ...args], {
      cwd: root,
      env: { ...process.env, XDG_STATE_HOME: xdg, VIRT_ISCSI_TEST_PAUSE: point },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const paused = new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/test pause/.test(err)) resolve();
      });
      void exited.then((code) => reject(new Error(`export ended (exit ${code}) before pausing at ${point}:\n${out}${err}`)));
      setTimeout(() => reject(new Error(`export did not pause at ${point} within 120 s:\n${out}${err}`)), 120_000).unref();
    });
    await paused;
    child.kill('SIGKILL');
    assert.equal(await exited, null, 'killed by the signal');
  }

  const modes = [
    {
      mode: 'direct',
      args: (image: string) => ['export', image, '--vm', off, '--mode', 'direct', '--chap', '--portal', env.tgtd.portal, ...hostArgs],
      steps: ['storage-record', 'target', 'secret', 'pool-define', 'pool-start', 'pool-autostart', 'volume', 'controller', 'attach', 'local-record'],
    },
    {
      mode: 'network',
      args: (image: string) => ['export', image, '--vm', env.domain, '--mode', 'network', '--portal', env.tgtd.portal, ...hostArgs],
      steps: ['storage-record', 'target', 'attach', 'local-record'],
    },
  ];

  const killed: string[] = [];
  for (const m of modes) {
    await t.test(`${m.mode}: killed right after each step's change, then unexport`, async () => {
      for (const step of m.steps) {
        const before = snapshot();
        const image = env.image(`${env.id}-${m.mode}-${step}.img`, 4 * MiB);
        const name = `${env.id}-${m.mode}-${step}`;
        await killAt(`${step}:after`, m.args(image));
        killed.push(`${m.mode}/${step}`);
        const st = await cli(['status', '--json', name]);
        assert.equal(st.status, 0, st.stderr);
        const doc = JSON.parse(st.stdout) as { exports: Array<{ state: string; fix?: string; problems: string[] }> };
        assert.equal(doc.exports[0]?.state, 'interrupted', `status after a kill at ${step}: ${st.stdout}`);
        assert.match(doc.exports[0]!.fix!, new RegExp(`^virt-iscsi unexport ${name} `));
        const u = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
        assert.equal(u.status, 0, `unexport after a kill at ${step}: ${u.stderr}${u.stdout}`);
        assert.deepEqual(snapshot(), before, `every host as before, after a kill at ${step}`);
      }
    });
  }

  await t.test('direct: killed right before a change (its intent written, nothing made), then unexport', async () => {
    const m = modes[0]!;
    for (const step of ['target', 'controller']) {
      const before = snapshot();
      const name = `${env.id}-b-${step}`;
      await killAt(`${step}:before`, m.args(env.image(`${name}.img`, 4 * MiB)));
      killed.push(`direct/${step}:before`);
      const u = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
      assert.equal(u.status, 0, u.stderr);
      assert.deepEqual(snapshot(), before, `every host as before, after a kill before ${step}`);
    }
  });

  // Finishing by running the export again: every step of the network mode, and the direct
  // mode's steps that leave the most half-made (a target without its ACL users' logins, a
  // secret, a started pool, a controller without its disk).
  const again: Record<string, readonly string[]> = { direct: ['target', 'secret', 'pool-start', 'controller', 'attach'], network: modes[1]!.steps };
  for (const m of modes) {
    await t.test(`${m.mode}: killed at a step, the same export again finishes it: status healthy`, async () => {
      for (const step of again[m.mode]!) {
        const before = snapshot();
        const name = `${env.id}-r${m.mode[0]}-${step}`;
        const args = m.args(env.image(`${name}.img`, 4 * MiB));
        await killAt(`${step}:after`, args);
        killed.push(`${m.mode}/${step} (again)`);
        const rerun = await cli([...args, '--json']);
        assert.equal(rerun.status, 0, `export again after a kill at ${step}: ${rerun.stderr}`);
        const st = JSON.parse((await cli(['status', '--json', name])).stdout) as { exports: Array<{ state: string; healthy: boolean; problems: string[] }> };
        assert.deepEqual([st.exports[0]!.state, st.exports[0]!.healthy], ['ok', true], `status after re-running a kill at ${step}: ${st.exports[0]!.problems.join('; ')}`);
        const u = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
        assert.equal(u.status, 0, u.stderr);
        assert.deepEqual(snapshot(), before, `every host as before, after re-running a kill at ${step} and unexporting`);
      }
    });
  }

  t.diagnostic(`killed at ${killed.length} points: ${killed.join(', ')}`);
  // tgtd's view, once more with its own tool: nothing of this test is left.
  assert.doesNotMatch(execFileSync('tgtadm', ['-C', String(env.tgtd.controlPort), '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], { encoding: 'utf8' }), new RegExp(env.id));
});
