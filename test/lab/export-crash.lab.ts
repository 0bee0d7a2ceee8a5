// kill -9 at the steps of an export that only a real kernel runs, in pool and block mode
// (with CHAP): the host's login (pool start, login), the device it makes, and the disk on
// it (the main suite kills every step of the other modes; a lab round trip costs half a
// minute to minutes under TCG, so the steps the main suite already covers are left to it).
// The CLI runs here and reaches the guest over SSH as storage host and
// hypervisor; VIRT_ISCSI_TEST_PAUSE stops it right after a step's change and SIGKILL ends
// it there (its SSH connection goes with it). Then `unexport NAME` must leave the guest
// exactly as before: open-iscsi's sessions, node records and ifaces, libvirt's pools,
// secrets and the domain, tgtd's targets and accounts, conf.d, the records and the journal.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cliEntry } from '../helpers/cli.js';
import { labCli, labCliOk, labDomain, removeDomain, unique, useLab, type Lab } from './lab.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const id = unique();
const VM = `lab-kvm-${id}`;
const DIR = `/var/lib/lab-crash-${id}`;
const RECORDS = `${DIR}/records`;

describe('kill -9 at each step of a pool and a block export in the lab guest, then unexport', () => {
  let lab: Lab;
  let state: string;
  let env: Record<string, string>;
  let hosts: string[];
  let startedTgt = false;
  const killed: string[] = [];

  async function snapshot(): Promise<Record<string, string>> {
    const out = async (argv: string[]): Promise<string> => {
      const r = await lab.runner.run(argv);
      return `${r.exitCode} ${r.stdout}${r.stderr}`;
    };
    const [sessions, nodes, ifaces, pools, secrets, vm, live, targets, accounts, conf, records] = await Promise.all([
      out(['iscsiadm', '-m', 'session']),
      out(['iscsiadm', '-m', 'node']),
      out(['iscsiadm', '-m', 'iface']),
      out(['virsh', 'pool-list', '--all']),
      out(['virsh', 'secret-list']),
      out(['virsh', 'dumpxml', '--inactive', VM]),
      out(['virsh', 'dumpxml', VM]),
      out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target']),
      out(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'account']),
      out(['ls', '-A', '/etc/tgt/conf.d']),
      out(['ls', '-A', RECORDS]),
    ]);
    // Files only: the state directories virt-iscsi made stay, empty, as they would after any export and unexport.
    const local = existsSync(join(state, 'virt-iscsi'))
      ? readdirSync(join(state, 'virt-iscsi'), { recursive: true, withFileTypes: true })
          .filter((d) => !d.isDirectory())
          .map((d) => join(d.parentPath ?? d.path, d.name))
          .sort()
          .join(' ')
      : '';
    return { sessions, nodes, ifaces, pools, secrets, vm, live, targets, accounts, conf, records, local };
  }

  /** The export, stopped right after `step`'s change and killed there. */
  async function killAt(step: string, args: string[]): Promise<void> {
    const child = spawn(process.execPath, [...cliEntry(), ...args, ...hosts, '--host-records', RECORDS, '--identity', lab.ssh.identity!, '--known-hosts', lab.ssh.knownHosts!], {
      cwd: ROOT,
      env: { ...process.env, ...env, VIRT_ISCSI_TEST_PAUSE: `${step}:after` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/test pause/.test(err)) resolve();
      });
      void exited.then((c) => reject(new Error(`export ended (exit ${c}) before pausing after ${step}: ${err}`)));
    });
    child.kill('SIGKILL');
    await exited;
  }

  before(async () => {
    lab = await useLab();
    hosts = ['--storage', lab.uri, '--hypervisor', lab.uri];
    state = mkdtempSync(join(tmpdir(), 'lab-crash-'));
    env = { XDG_STATE_HOME: state };
    await lab.sh(['mkdir', '-p', DIR, RECORDS]);
    await labDomain(lab, VM);
    startedTgt = (await lab.runner.run(['systemctl', 'is-active', '--quiet', 'tgt'])).exitCode !== 0;
    if (startedTgt) await lab.sh(['systemctl', 'start', 'tgt']);
  });

  after(async () => {
    if (!lab) return;
    try {
      for (const f of (await lab.runner.run(['ls', RECORDS])).stdout.split('\n').filter((x) => x.endsWith('.json'))) {
        await labCli(lab, ['unexport', f.replace(/\.json$/, ''), '--storage', lab.uri, '--host-records', RECORDS, '--force'], env);
      }
      await removeDomain(lab, VM);
      await lab.sh(['rm', '-rf', DIR]);
      if (startedTgt) await lab.sh(['systemctl', 'stop', 'tgt']);
      rmSync(state, { recursive: true, force: true });
    } finally {
      await lab.release();
    }
  });

  const cases = [
    { mode: 'pool', extra: [], steps: ['pool-start', 'volume'] },
    { mode: 'block', extra: ['--chap'], steps: ['node-chap', 'login', 'attach'] },
  ];
  for (const c of cases) {
    test(`${c.mode}${c.extra.length ? ' with CHAP' : ''}: killed right after each step's change; unexport leaves the guest as before`, async () => {
      for (const step of c.steps) {
        const before0 = await snapshot();
        const name = `k${id}-${c.mode}-${step}`;
        const image = `${DIR}/${name}.img`;
        await lab.sh(['truncate', '-s', '16M', image]);
        await killAt(step, ['export', image, '--vm', VM, '--mode', c.mode, ...c.extra]);
        killed.push(`${c.mode}/${step}`);
        await labCliOk(lab, ['unexport', name, '--storage', lab.uri, '--host-records', RECORDS], env);
        await lab.sh(['rm', '-f', image]);
        assert.deepEqual(await snapshot(), before0, `the guest as before, after a kill after ${step} (${c.mode})`);
      }
    });
  }

  test('every kill point was reached', () => {
    assert.equal(killed.length, cases.reduce((n, c) => n + c.steps.length, 0), killed.join(', '));
  });
});
