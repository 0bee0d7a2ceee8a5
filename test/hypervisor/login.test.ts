// Login and logout plans over the iscsiadm driver. plan-only: this kernel has no iscsi_tcp
// (and the machine no open-iscsi), so iscsiadm cannot run here. The plans are built and
// recorded with the RecordingRunner; the read-only iscsiadm calls they make are answered
// with real open-iscsi 2.1.8 output (test/fixtures/iscsiadm, captured in the lab guest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../../src/errors.js';
import { Iscsiadm } from '../../src/hypervisor/iscsiadm.js';
import { planLogin, planLogout } from '../../src/hypervisor/login.js';
import { runPlan } from '../../src/plan/plan.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import type { RunResult, Runner } from '../../src/runner/types.js';

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../fixtures/iscsiadm/${name}`, import.meta.url)), 'utf8');

type Answer = [prefix: string, result: Partial<RunResult>];

/** Answers the read-only commands a plan makes with captured output; anything else is a test failure. */
class Replay implements Runner {
  readonly host = 'local';
  readonly asked: string[] = [];
  constructor(private readonly answers: readonly Answer[]) {}
  async run(argv: readonly string[]): Promise<RunResult> {
    const line = argv.join(' ');
    this.asked.push(line);
    const a = this.answers.find(([prefix]) => line.startsWith(prefix));
    if (!a) throw new Error(`the plan ran a query nobody expected: ${line}`);
    return { stdout: '', stderr: '', exitCode: 0, ...a[1] };
  }
  async writeFile(): Promise<void> {
    throw new Error('a dry run writes no file');
  }
  async readFile(): Promise<string | undefined> {
    return undefined; // no node record yet
  }
  async removeFile(): Promise<void> {
    throw new Error('a dry run removes no file');
  }
  async close(): Promise<void> {}
}

const IQN = 'iqn.2024-01.test.lab:disk1';
const NO_RECORDS: Partial<RunResult> = { exitCode: 21, stderr: 'iscsiadm: No records found\n' };
const NO_SESSIONS: Partial<RunResult> = { exitCode: 21, stderr: 'iscsiadm: No active sessions.\n' };
const discovery: Answer = ['iscsiadm --mode discovery --type sendtargets --portal 127.0.0.1:3260 --op nonpersistent', { stdout: fixture('discovery-lio.txt') }];
const localhost: Answer = ['getent ahosts localhost', { stdout: fixture('getent-ahosts-localhost.txt') }];

test('plan-only: [no iscsi_tcp, no open-iscsi here] login on a fresh host: record, CHAP in the record file, login, wait for the by-path device', async () => {
  const replay = new Replay([
    discovery,
    localhost,
    ['iscsiadm --mode node', NO_RECORDS],
    ['iscsiadm --mode session -P 3', NO_SESSIONS],
    [`test -d /etc/iscsi/nodes/${IQN}`, { exitCode: 1 }],
    [`test -d /var/lib/iscsi/nodes/${IQN}`, { exitCode: 1 }],
    ['test -d /etc/iscsi/nodes', { exitCode: 0 }],
  ]);
  const rec = new RecordingRunner(replay);
  const secret = 'sekrit-chap-123';
  const plan = await planLogin(new Iscsiadm(rec), { portal: { host: 'localhost', port: 3260 }, target: IQN.toUpperCase(), chap: { user: 'labuser', secret }, luns: [1] });
  assert.deepEqual(plan.portal, { host: '127.0.0.1', port: 3260 }, 'the host name resolved on the hypervisor (by-path names carry the IP)');
  assert.deepEqual(await runPlan(plan.steps), { applied: 4, skipped: 0 });
  const shell = rec.render();
  assert.ok(!shell.includes(secret), 'the CHAP secret appears nowhere');
  const lines = shell.split('\n');
  const at = (prefix: string): number => lines.findIndex((l) => l.startsWith(prefix));
  const order = [
    `iscsiadm --mode node --targetname ${IQN} --portal 127.0.0.1:3260,1 --interface default --op new`,
    `install -m 0600 /dev/stdin /etc/iscsi/nodes/${IQN}/127.0.0.1,3260,1/default`,
    `iscsiadm --mode node --targetname ${IQN} --portal 127.0.0.1:3260 --interface default --login`,
    'udevadm settle',
    `test -e /dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-1`,
  ].map(at);
  assert.ok(order.every((i, n) => i >= 0 && (n === 0 || i > order[n - 1]!)), shell);
  assert.equal(lines[order[1]! + 1], '********', 'the record file, which holds the secret, is shown masked');
  assert.deepEqual(plan.devices, [`/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-1`]);
});

test('plan-only: [no iscsi_tcp, no open-iscsi here] already logged in: record and login are done; the LUNs come from the session', async () => {
  const rec = new RecordingRunner(
    new Replay([discovery, ['iscsiadm --mode node', { stdout: '127.0.0.1:3260,1 iqn.2024-01.test.lab:disk1\n' }], ['iscsiadm --mode session -P 3', { stdout: fixture('session-p3-one.txt') }]]),
  );
  const plan = await planLogin(new Iscsiadm(rec), { portal: { host: '127.0.0.1', port: 3260 }, target: IQN });
  assert.deepEqual(await runPlan(plan.steps), { applied: 1, skipped: 2 });
  assert.ok(!rec.render().includes('--login') && !rec.render().includes('--op new'), rec.render());
  assert.deepEqual(plan.devices, [`/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-1`, `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${IQN}-lun-2`]);
});

test('plan-only: [no iscsi_tcp, no open-iscsi here] a target the portal does not offer is named, with what it offers', async () => {
  const rec = new RecordingRunner(new Replay([discovery]));
  await assert.rejects(
    planLogin(new Iscsiadm(rec), { portal: { host: '127.0.0.1', port: 3260 }, target: 'iqn.2024-01.test.lab:nope' }),
    (e: Error) => e instanceof ValidationError && /does not offer target iqn\.2024-01\.test\.lab:nope; discovery found iqn\.2024-01\.test\.lab:disk1 at 127\.0\.0\.1:3260, .*noacl3/.test(e.message),
  );
  assert.deepEqual(rec.steps, []);
});

test('plan-only: [no iscsi_tcp, no open-iscsi here] logout then delete the record; nothing there is already done', async () => {
  const logged = new RecordingRunner(new Replay([['iscsiadm --mode session -P 3', { stdout: fixture('session-p3-one.txt') }], ['iscsiadm --mode node', { stdout: '127.0.0.1:3260,1 iqn.2024-01.test.lab:disk1\n' }]]));
  await runPlan(await planLogout(new Iscsiadm(logged), { portal: { host: '127.0.0.1', port: 3260 }, target: IQN }));
  assert.deepEqual(
    logged.steps.map((s) => s.shell),
    [
      `iscsiadm --mode node --targetname ${IQN} --portal 127.0.0.1:3260 --interface default --logout`,
      `iscsiadm --mode node --targetname ${IQN} --portal 127.0.0.1:3260 --interface default --op delete`,
    ],
  );
  const gone = new RecordingRunner(new Replay([['iscsiadm --mode session -P 3', NO_SESSIONS], ['iscsiadm --mode node', NO_RECORDS]]));
  assert.deepEqual(await runPlan(await planLogout(new Iscsiadm(gone), { portal: { host: '127.0.0.1', port: 3260 }, target: IQN })), { applied: 0, skipped: 2 });
  assert.deepEqual(gone.steps, []);
});
