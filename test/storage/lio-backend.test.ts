// LioBackend's command plans and its read-back checks. LIO cannot run on this machine
// (no target kernel modules): plans are recorded, and targetcli/configfs answers are
// replayed from the lab guest, where this backend created exactly these targets for real
// over SSH (test/fixtures/lio/README.md: ls-created.txt, saveconfig-created.json).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError, ValidationError } from '../../src/errors.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import type { TargetSpec } from '../../src/storage/backend.js';
import { createBackend } from '../../src/storage/backends.js';
import { CONFIGFS_ISCSI, LioBackend, LioStateError } from '../../src/storage/lio/backend.js';
import { backstoreName, lioCreatePlan } from '../../src/storage/lio/plan.js';
import { fixture, ReplayRunner } from './lio-replay-runner.js';

const INIT = 'iqn.1993-08.org.debian:01:de888379e257';
const REAL1 = 'iqn.2024-01.test.lab:real1';
const OPEN1 = 'iqn.2024-01.test.lab:open1';
const PORTAL = [{ host: '127.0.0.1', port: 3260 }];
const SAVE = '/etc/rtslib-fb-target/saveconfig.json';
const real1: TargetSpec = {
  iqn: REAL1,
  luns: [
    { lun: 1, path: '/var/lib/r1.img', serial: 'RSER1' },
    { lun: 2, path: '/var/lib/r2.iso', cdrom: true },
  ],
  allow: [INIT],
  chap: { user: 'ruser', secret: 'rsecret123456', mutualUser: 'tuser', mutualSecret: 'tsecret123456' },
  persist: true,
};

/** targetcli and configfs as they answered in the lab: empty before the create, ls-created after. */
function labAfterCreate(extra: Map<string, string> = new Map()): ReplayRunner {
  const acl = `${CONFIGFS_ISCSI}/${REAL1}/tpgt_1/acls/${INIT}`;
  const files = new Map([
    [`${acl}/auth/userid`, 'ruser\n'],
    [`${acl}/auth/userid_mutual`, 'tuser\n'],
    [`${acl}/info`, fixture('lio/acl-info-none.txt')],
    [`${CONFIGFS_ISCSI}/${OPEN1}/tpgt_1/attrib/demo_mode_write_protect`, '1\n'],
    [`${CONFIGFS_ISCSI}/${OPEN1}/tpgt_1/auth/userid`, '\n'],
    [`${CONFIGFS_ISCSI}/${OPEN1}/tpgt_1/dynamic_sessions`, '\0'],
    [SAVE, fixture('lio/saveconfig-created.json')],
    ...extra,
  ]);
  return new ReplayRunner([{ match: 'targetcli ls /', replies: [{ stdout: fixture('lio/ls-empty.txt') }, { stdout: fixture('lio/ls-created.txt') }] }], files);
}

test('plan-only: [no LIO modules here] the create plan is the targetcli sequence that built real1 in the lab', () => {
  const b1 = backstoreName(REAL1, 1);
  const b2 = backstoreName(REAL1, 2);
  assert.equal(b1, 'vi-c6341120-lun1', 'the name the lab run gave it');
  const tpg = `/iscsi/${REAL1}/tpg1`;
  assert.deepEqual(
    lioCreatePlan(real1, { portals: PORTAL }).map((c) => c.args.join(' ')),
    [
      `/backstores/fileio create name=${b1} file_or_dev=/var/lib/r1.img wwn=RSER1`,
      `/backstores/fileio create name=${b2} file_or_dev=/var/lib/r2.iso`,
      `/iscsi create ${REAL1}`,
      `${tpg}/portals delete 0.0.0.0 3260`,
      `${tpg}/portals create 127.0.0.1 3260`,
      `${tpg}/luns create /backstores/fileio/${b1} lun=1 add_mapped_luns=false`,
      `${tpg}/luns create /backstores/fileio/${b2} lun=2 add_mapped_luns=false`,
      `${tpg}/acls create ${INIT} add_mapped_luns=false`,
      `${tpg}/acls/${INIT} create mapped_lun=1 tpg_lun_or_backstore=1 write_protect=0`,
      `${tpg}/acls/${INIT} create mapped_lun=2 tpg_lun_or_backstore=2 write_protect=1`,
      `${tpg}/acls/${INIT} set auth userid=ruser password=rsecret123456 mutual_userid=tuser mutual_password=tsecret123456`,
      `${tpg} set attribute authentication=1 generate_node_acls=0`,
      'saveconfig',
    ],
  );
  // ALL is demo mode: no ACL, write protection for the whole TPG, block devices read-only
  const open = lioCreatePlan({ iqn: OPEN1, luns: [{ lun: 1, path: '/dev/vg0/iso', cdrom: true }], allow: ['ALL'], persist: false });
  assert.deepEqual(
    open.map((c) => c.args.join(' ')),
    [
      `/backstores/block create name=${backstoreName(OPEN1, 1)} dev=/dev/vg0/iso readonly=true`,
      `/iscsi create ${OPEN1}`,
      `/iscsi/${OPEN1}/tpg1/portals create 0.0.0.0 3260`,
      `/iscsi/${OPEN1}/tpg1/luns create /backstores/block/${backstoreName(OPEN1, 1)} lun=1 add_mapped_luns=false`,
      `/iscsi/${OPEN1}/tpg1 set attribute authentication=0 generate_node_acls=1 cache_dynamic_acls=1 demo_mode_write_protect=1`,
    ],
  );
});

test('plan-only: [no LIO modules here] what LIO cannot do is refused before anything runs', () => {
  const base: TargetSpec = { iqn: REAL1, luns: [{ lun: 1, path: '/srv/a.img' }], allow: [INIT], persist: false };
  const refuse = (spec: TargetSpec, re: RegExp) => assert.throws(() => lioCreatePlan(spec), (e: unknown) => e instanceof ValidationError && re.test(e.message));
  refuse({ ...base, allow: ['192.0.2.7'] }, /LIO ACLs are per initiator IQN, not by address/);
  refuse({ ...base, allow: ['10.0.0.0/24'] }, /"10\.0\.0\.0\/24" is not an iSCSI name/);
  refuse({ ...base, iqn: 'iqn.2024-01.lab:nodot' }, /dotted authority/);
  refuse({ ...base, luns: [{ lun: 0, path: '/srv/a.img' }] }, /LUN 0 is not allowed/);
  refuse({ ...base, luns: [{ lun: 1, path: '/srv/my disk.img' }] }, /path "\/srv\/my disk\.img" is not allowed/);
  refuse({ ...base, luns: [{ lun: 1, path: 'a.img' }] }, /not absolute/);
  refuse({ ...base, allow: ['ALL'], luns: [{ lun: 1, path: '/srv/a.img', readonly: true }, { lun: 2, path: '/srv/b.img' }] }, /every LUN of the target or none/);
  refuse({ ...base, allow: ['ALL', INIT] }, /ALL already lets every initiator in/);
  assert.throws(
    () => lioCreatePlan({ ...base, chap: { user: 'u', secret: 'has space 123' } }),
    (e: unknown) => e instanceof ValidationError && !e.message.includes('has space') && /CHAP secret \(the secret\)/.test(e.message),
  );
});

test('plan-only: [no LIO modules here] under --dry-run the plan prints with every CHAP secret masked', async () => {
  const rec = new RecordingRunner();
  const state = await new LioBackend(rec, { portals: PORTAL }).create(real1);
  const plan = rec.render();
  for (const s of ['rsecret123456', 'tsecret123456']) assert.ok(!plan.includes(s));
  // On targetcli's stdin, never its argv (`ps` would show it).
  // In a shell with preferences of its own where auto_save_on_exit is off: leaving it saves nothing.
  assert.ok(
    plan.includes(
      `env HOME=/run/virt-iscsi/targetcli targetcli <<'EOF'\nset global auto_save_on_exit=false\n/iscsi/${REAL1}/tpg1/acls/${INIT} set auth userid=ruser password=******** mutual_userid=tuser mutual_password=********\nexit\nEOF`,
    ),
    plan,
  );
  assert.ok(plan.split('\n').includes('targetcli saveconfig'));
  assert.deepEqual(state.luns.map((l) => [l.lun, l.readonly]), [[1, false], [2, true]]);
});

test('plan-only: [no LIO modules here] create runs the plan, reads the lab state back and reports it', async () => {
  const run = labAfterCreate();
  const state = await new LioBackend(run, { portals: PORTAL }).create(real1);
  const onStdin = run.calls.filter((c) => c.argv.length === 1 && c.argv[0] === 'targetcli' && typeof c.options.stdin === 'string');
  assert.ok(onStdin.every((c) => /set auth/.test(String(c.options.stdin))), 'only the commands with secrets go on stdin');
  assert.equal(run.lines('targetcli /').length + run.lines('targetcli saveconfig').length + onStdin.length, 13);
  const setAuth = onStdin[0]!;
  assert.deepEqual(setAuth.options.secrets, ['rsecret123456', 'tsecret123456']);
  assert.deepEqual(state, {
    iqn: REAL1,
    luns: [
      { lun: 1, path: '/var/lib/r1.img', type: 'disk', sizeBytes: 67108864, readonly: false, online: true, serial: 'RSER1' },
      { lun: 2, path: '/var/lib/r2.iso', type: 'disk', sizeBytes: 8388608, readonly: true, online: true, serial: state.luns[1]!.serial },
    ],
    sessions: [],
    acls: [INIT],
    accounts: ['ruser'],
    persisted: true,
  });
  assert.match(state.luns[1]!.serial!, /^[0-9a-f-]{36}$/, 'LIO made up a serial for LUN 2');
});

test('plan-only: [no LIO modules here] an effect missing from the state read back fails the create and rolls it back', async () => {
  // targetcli "succeeded" for a third LUN, but the tree read back (the lab's) has no such LUN
  const run = labAfterCreate();
  const spec = { ...real1, luns: [...real1.luns, { lun: 3, path: '/var/lib/r4.img' }] };
  await assert.rejects(new LioBackend(run, { portals: PORTAL }).create(spec), (e: unknown) => {
    assert.ok(e instanceof LioStateError);
    assert.ok(e instanceof CommandError);
    assert.equal(e.display, `targetcli /backstores/fileio create name=${backstoreName(REAL1, 3)} file_or_dev=/var/lib/r4.img`);
    assert.ok(e.problems.includes(`LUN 3 does not serve fileio/${backstoreName(REAL1, 3)}`), e.problems.join('; '));
    assert.ok(!e.message.includes('rsecret123456'));
    return true;
  });
  const undo = run.lines('targetcli').slice(-4);
  assert.deepEqual(undo, [
    `targetcli /iscsi delete ${REAL1}`,
    `targetcli /backstores/fileio delete ${backstoreName(REAL1, 3)}`,
    `targetcli /backstores/fileio delete ${backstoreName(REAL1, 2)}`,
    `targetcli /backstores/fileio delete ${backstoreName(REAL1, 1)}`,
  ]);
});

test('plan-only: [no LIO modules here] a failing targetcli command stops the plan, says why, and undoes what ran', async () => {
  const run = new ReplayRunner([
    { match: 'targetcli ls /', replies: [{ stdout: fixture('lio/ls-empty.txt') }] },
    // what 2.1.53 printed when 0.0.0.0:3260 could not bind (another portal held the port)
    { match: `targetcli /iscsi/${OPEN1}/tpg1/portals create`, replies: [{ exitCode: 1, stdout: 'Could not create NetworkPortal in configFS\n' }] },
  ]);
  await assert.rejects(
    new LioBackend(run).create({ iqn: OPEN1, luns: [{ lun: 1, path: '/var/lib/r5.img' }], allow: ['ALL'], persist: false }),
    /targetcli \/iscsi\/iqn\.2024-01\.test\.lab:open1\/tpg1\/portals create 0\.0\.0\.0 3260 failed on ssh:\/\/root@storage\.test \(exit 1\): Could not create NetworkPortal in configFS/,
  );
  assert.deepEqual(run.lines('targetcli').slice(-2), [`targetcli /iscsi delete ${OPEN1}`, `targetcli /backstores/fileio delete ${backstoreName(OPEN1, 1)}`]);
  // an existing target or a file another backstore serves is refused up front
  const lab = labAfterCreate();
  lab.answers[0]!.replies = [{ stdout: fixture('lio/ls-created.txt') }];
  await assert.rejects(new LioBackend(lab).create(real1), /target iqn\.2024-01\.test\.lab:real1 already exists/);
  await assert.rejects(new LioBackend(lab).create({ ...real1, iqn: 'iqn.2024-01.test.lab:real2' }), /\/var\/lib\/r1\.img is already served by LIO backstore fileio\/vi-c6341120-lun1/);
});

test('plan-only: [no LIO modules here] delete refuses live sessions unless forced, removes only our backstores, saves, and is idempotent', async () => {
  const run = labAfterCreate(new Map([[`${CONFIGFS_ISCSI}/${REAL1}/tpgt_1/acls/${INIT}/info`, fixture('lio/acl-info-session.txt')]]));
  run.answers[0]!.replies = [{ stdout: fixture('lio/ls-created.txt') }];
  const lio = new LioBackend(run);
  await assert.rejects(lio.delete(REAL1), /has 1 logged-in session\(s\) \(iqn\.1993-08\.org\.debian:01:de888379e257\); log them out first or use --force/);
  assert.equal(run.lines('targetcli /').length, 0, 'nothing was changed');

  const after = withoutNodes(fixture('lio/ls-created.txt'), [REAL1, backstoreName(REAL1, 1), backstoreName(REAL1, 2)]);
  const forced = labAfterCreate(new Map([[`${CONFIGFS_ISCSI}/${REAL1}/tpgt_1/acls/${INIT}/info`, fixture('lio/acl-info-session.txt')]]));
  forced.answers[0]!.replies = [{ stdout: fixture('lio/ls-created.txt') }, { stdout: after }];
  // saveconfig rewrites the file: real1 is no longer in it
  forced.answers.push({ match: 'targetcli saveconfig', replies: [{}], effect: (r) => r.files.set(SAVE, fixture('lio/saveconfig.json')) });
  await new LioBackend(forced).delete(REAL1, { force: true });
  assert.deepEqual(forced.lines('targetcli').filter((l) => !l.startsWith('targetcli ls')), [
    `targetcli /iscsi delete ${REAL1}`,
    `targetcli /backstores/fileio delete ${backstoreName(REAL1, 1)}`,
    `targetcli /backstores/fileio delete ${backstoreName(REAL1, 2)}`,
    'targetcli saveconfig',
  ]);
  // gone already: nothing to do
  const gone = new ReplayRunner([{ match: 'targetcli ls /', replies: [{ stdout: after }] }], new Map([[SAVE, fixture('lio/saveconfig.json')]]));
  await new LioBackend(gone).delete(REAL1);
  assert.deepEqual(gone.lines('targetcli'), ['targetcli ls /']);
});

/** The tree text without the named nodes and everything under them. */
function withoutNodes(text: string, names: string[]): string {
  const out: string[] = [];
  let skipDepth: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^([ |]*)o- (\S+)/.exec(line);
    const depth = m ? m[1]!.length : Infinity;
    if (skipDepth !== undefined && depth > skipDepth) continue;
    skipDepth = m && names.includes(m[2]!) ? depth : undefined;
    if (skipDepth === undefined) out.push(line);
  }
  return out.join('\n');
}

test('plan-only: [no LIO modules here] the backend factory makes LIO and IET backends; tgt\'s portal option becomes LIO\'s portal', async () => {
  const rec = new RecordingRunner();
  const lio = createBackend('lio', rec, { portal: '127.0.0.1:3261' });
  assert.equal(lio.name, 'lio');
  await lio.create({ iqn: OPEN1, luns: [{ lun: 1, path: '/var/lib/r3.img' }], allow: ['ALL'], persist: false });
  const lines = rec.render().split('\n');
  assert.ok(lines.includes(`targetcli /iscsi/${OPEN1}/tpg1/portals create 127.0.0.1 3261`));
  assert.ok(lines.includes(`targetcli /iscsi/${OPEN1}/tpg1/portals delete 0.0.0.0 3260`));
  assert.equal(createBackend('iet', rec).name, 'iet');
});

test('plan-only: [no LIO modules here] a failing CHAP command keeps its secrets out of the error, although targetcli echoes them', async () => {
  const run = new ReplayRunner([
    { match: 'targetcli ls /', replies: [{ stdout: fixture('lio/ls-empty.txt') }] },
    // targetcli 2.1.53 echoes each value it set ("Parameter password is now '...'.")
    { match: (_argv, options) => String(options.stdin ?? '').includes('auth'), replies: [{ exitCode: 1, stdout: "Parameter userid is now 'ruser'.\nParameter password is now 'rsecret123456'.\nsomething failed\n" }] },
  ]);
  await assert.rejects(new LioBackend(run, { portals: PORTAL }).create(real1), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    for (const text of [e.message, e.display, e.stderr, ...e.argv]) {
      assert.ok(!text.includes('rsecret123456') && !text.includes('tsecret123456'), text);
    }
    assert.match(e.stderr, /password is now '\*\*\*\*\*\*\*\*'/);
    return true;
  });
});
