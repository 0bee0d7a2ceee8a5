// Session recovery settings (replacement_timeout, noop-out) on the sessions the
// hypervisor's host holds: which modes take them, their defaults, the steps that put them
// on the node record and the live session, and status's reading of both. open-iscsi cannot
// log in here (no iscsi_tcp): iscsiadm's answers are replayed from the lab guest's own
// output (test/fixtures/iscsiadm: a node record, a session tree with SID 7); the lab runs
// them for real (test/lab/lifecycle.lab.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { nodeSettings, sessionSettingsDrift, sessionSettingsSteps, SINGLE_PATH_SESSION } from '../../src/hypervisor/session-settings.js';
import { Iscsiadm } from '../../src/hypervisor/iscsiadm.js';
import { runPlan } from '../../src/plan/plan.js';
import { MODES } from '../../src/workflows/modes.js';
import { parseRecord, renderRecord } from '../../src/workflows/records.js';
import { sessionSettingsFor } from '../../src/workflows/resolve.js';
import { fixture, ReplayRunner } from '../storage/lio-replay-runner.js';
import { sampleRecord } from '../helpers/records.js';

const T = 'iqn.2024-01.test.lab:disk1';
const P = { host: '127.0.0.1', port: 3260 };
const TMO = '/sys/class/iscsi_session/session7/recovery_tmo';

/** The lab guest's iscsiadm, logged in to T (session 7), its node record as iscsiadm made it. */
function labHost(recoveryTmo = '120\n'): ReplayRunner {
  return new ReplayRunner(
    [
      { match: `iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default --op`, replies: [{}] },
      { match: `iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260`, replies: [{ stdout: fixture('iscsiadm/node-record-new.txt') }] },
      { match: 'iscsiadm --mode node', replies: [{ stdout: `127.0.0.1:3260,1 ${T}\n` }] },
      { match: 'iscsiadm --mode session -P 3', replies: [{ stdout: fixture('iscsiadm/session-p3-one.txt') }] },
    ],
    new Map([[TMO, recoveryTmo]]),
    'ssh://root@kvm1.test',
  );
}

test('the modes whose host logs in get single-path defaults (120, 5, 5); the others refuse the flags in one line', () => {
  assert.deepEqual(SINGLE_PATH_SESSION, { replacementTimeout: 120, noopOutInterval: 5, noopOutTimeout: 5 });
  assert.deepEqual(sessionSettingsFor(MODES.pool, {}), SINGLE_PATH_SESSION);
  assert.deepEqual(sessionSettingsFor(MODES.block, { replacementTimeout: 30 }), { replacementTimeout: 30, noopOutInterval: 5, noopOutTimeout: 5 });
  // An earlier run's settings stand unless given again.
  assert.deepEqual(sessionSettingsFor(MODES.block, { noopOutTimeout: 9 }, { replacementTimeout: 30, noopOutInterval: 10, noopOutTimeout: 15 }), { replacementTimeout: 30, noopOutInterval: 10, noopOutTimeout: 9 });
  assert.deepEqual(sessionSettingsFor(MODES.multipath, {}), { replacementTimeout: 5, noopOutInterval: 5, noopOutTimeout: 5 }, 'multipath: a dead path fails over fast');
  assert.equal(sessionSettingsFor(MODES.network, {}), undefined);
  assert.equal(sessionSettingsFor(MODES.direct, {}), undefined);
  assert.throws(
    () => sessionSettingsFor(MODES.network, { noopOutInterval: 10 }),
    (e: unknown) =>
      e instanceof ValidationError && e.message === "--noop-out-interval sets open-iscsi's sessions on the hypervisor, but in mode network QEMU logs in itself; it applies to the modes whose host logs in (pool, block, multipath)",
  );
  assert.throws(() => sessionSettingsFor(MODES.pool, { replacementTimeout: 0 }), /^ValidationError: --replacement-timeout 0 is not a whole number of seconds, 1 or more$/);
  assert.deepEqual(nodeSettings({ replacementTimeout: 30, noopOutInterval: 10, noopOutTimeout: 15 }), {
    'node.session.timeo.replacement_timeout': '30',
    'node.conn[0].timeo.noop_out_interval': '10',
    'node.conn[0].timeo.noop_out_timeout': '15',
  });
});

test('records hold the settings and read them back checked; a bad value is refused naming the file', () => {
  const r = sampleRecord({ session: { replacementTimeout: 30, noopOutInterval: 10, noopOutTimeout: 15 }, mode: 'block' });
  assert.deepEqual(parseRecord('/r/data.json', renderRecord(r)), r);
  const bad = (session: unknown): string => JSON.stringify({ ...r, session });
  assert.throws(() => parseRecord('/r/data.json', bad({ replacementTimeout: -1, noopOutInterval: 5, noopOutTimeout: 5 })), /^ValidationError: export record \/r\/data\.json has a bad session: --replacement-timeout -1 is not a whole number/);
  assert.throws(() => parseRecord('/r/data.json', bad({ replacementTimeout: 30, noopOutInterval: 5 })), /has a bad session: noopOutTimeout is not a number/);
  assert.throws(() => parseRecord('/r/data.json', bad({ replacementTimeout: 30, noopOutInterval: 5, noopOutTimeout: 5, command: 'x' })), /has a bad session: unknown key "command"/);
});

test('plan-only: [no iscsi_tcp here] after libvirt logged in: the node record updated, then the live session through sysfs; done, they are skipped', async () => {
  const host = labHost();
  const ia = new Iscsiadm(host);
  const want = { replacementTimeout: 30, noopOutInterval: 10, noopOutTimeout: 15 };
  const drift = await sessionSettingsDrift(ia, T, P, want);
  assert.deepEqual(drift, [
    `the node record of ${T} on ssh://root@kvm1.test has node.session.timeo.replacement_timeout = 120, not 30`,
    `the node record of ${T} on ssh://root@kvm1.test has node.conn[0].timeo.noop_out_interval = 5, not 10`,
    `the node record of ${T} on ssh://root@kvm1.test has node.conn[0].timeo.noop_out_timeout = 5, not 15`,
    `the session of ${T} on ssh://root@kvm1.test waits 120 s for a lost connection (recovery_tmo), not 30`,
  ]);
  const steps = sessionSettingsSteps(ia, T, P, want, { nodeRecord: true });
  assert.deepEqual(steps.map((s) => s.id), ['node-settings', 'session-timeout']);
  const r = await runPlan(steps);
  assert.deepEqual(r, { applied: 2, skipped: 0 });
  const changes = host.calls.filter((c) => !c.options.query).map((c) => c.argv.join(' '));
  assert.deepEqual(changes, [
    `iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default --op update --name node.session.timeo.replacement_timeout --value 30`,
    `iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default --op update --name node.conn[0].timeo.noop_out_interval --value 10`,
    `iscsiadm --mode node --targetname ${T} --portal 127.0.0.1:3260 --interface default --op update --name node.conn[0].timeo.noop_out_timeout --value 15`,
    `sh -c printf "%s\\n" "$1" > "$2" sh 30 ${TMO}`,
  ]);
  // As they are (the defaults here): nothing to do, nothing to report.
  const same = labHost();
  assert.deepEqual(await runPlan(sessionSettingsSteps(new Iscsiadm(same), T, P, SINGLE_PATH_SESSION, { nodeRecord: true })), { applied: 0, skipped: 2 });
  assert.deepEqual(await sessionSettingsDrift(new Iscsiadm(same), T, P, SINGLE_PATH_SESSION), []);
  // Only the live session differs (an earlier value written there): status names it.
  assert.deepEqual(await sessionSettingsDrift(new Iscsiadm(labHost('60\n')), T, P, SINGLE_PATH_SESSION), [`the session of ${T} on ssh://root@kvm1.test waits 60 s for a lost connection (recovery_tmo), not 120`]);
});
