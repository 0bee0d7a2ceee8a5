// IET cannot run on this machine or any current kernel (iscsi_trgt is not built for it,
// and Debian 12 does not package it): /proc parsers are tested on real output printed in
// public material (test/fixtures/iet/README.md), and IetBackend's plans are recorded,
// with its files (ietd.conf, initiators.allow, /proc/net/iet/*) served from fixtures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError, ValidationError } from '../../src/errors.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import type { TargetSpec } from '../../src/storage/backend.js';
import { IetBackend } from '../../src/storage/iet/backend.js';
import { parseIetSessions, parseIetVolumes } from '../../src/storage/iet/proc.js';
import { fixture, ReplayRunner } from './lio-replay-runner.js';

const CONF = '/etc/iet/ietd.conf';
const ALLOW = '/etc/iet/initiators.allow';
const VOLUME = '/proc/net/iet/volume';
const SESSION = '/proc/net/iet/session';
const IQN = 'iqn.2024-01.com.example:vm.web2';
const INIT = 'iqn.1993-08.org.debian:01:web2';
const spec: TargetSpec = {
  iqn: IQN,
  luns: [
    { lun: 2, path: '/srv/iscsi/web2-data.img', readonly: true },
    { lun: 1, path: '/dev/vg0/web2', serial: 'WEB2SN1' },
  ],
  allow: [INIT, '10.0.0.0/24'],
  chap: { user: 'web2user', secret: 'web2secret1234', mutualUser: 'tgt2', mutualSecret: 'tgt2secret9876' },
  persist: true,
};

function host(): ReplayRunner {
  return new ReplayRunner(
    [],
    new Map([
      [VOLUME, fixture('iet/volume-matrix.txt')],
      [SESSION, fixture('iet/session-none.txt')],
      [CONF, fixture('config/iet/three-targets.conf')],
      [ALLOW, fixture('config/iet/initiators.allow')],
    ]),
  );
}

test('plan-only: [no IET module here] /proc/net/iet/volume: targets, LUNs, hex state, sizes and paths', () => {
  assert.deepEqual(parseIetVolumes(fixture('iet/volume-one.txt')), [
    {
      tid: 1,
      name: 'iqn.foo.example',
      luns: [{ lun: 1, state: 0, iotype: 'fileio', iomode: 'wt', blocks: 4194304, blockSize: 512, path: '/dev/cinder-volumes/lvol0' }],
    },
  ]);
  const [z] = parseIetVolumes(fixture('iet/volume-zvol.txt'));
  assert.equal(z!.luns[0]!.path, '/dev/zvol/share/VirtualMachines/Ubuntu/Maverick/Desktop');
  // older IET prints no sizes; a path may hold spaces; state is hex
  assert.deepEqual(parseIetVolumes('tid:3 name:iqn.2024-01.com.example:t\n\tlun:0 state:a iotype:blockio iomode:ro path:/srv/my disk.img\n')[0]!.luns[0], {
    lun: 0,
    state: 10,
    iotype: 'blockio',
    iomode: 'ro',
    path: '/srv/my disk.img',
  });
  assert.throws(() => parseIetVolumes('\tlun:0 state:0\n'), ValidationError);
});

test('plan-only: [no IET module here] /proc/net/iet/session: sessions per target, IPv6 unbracketed, empty targets', () => {
  assert.deepEqual(parseIetSessions(fixture('iet/session-one.txt')), [
    {
      tid: 1,
      name: 'iqn.foo.example',
      sessions: [{ sid: '562949990973952', initiator: 'iqn.1993-08.org.debian:01:5d5f7d6e2951', connections: [{ cid: 0, ip: '192.168.1.5', state: 'active' }] }],
    },
  ]);
  assert.deepEqual(
    parseIetSessions(fixture('iet/session-two-targets.txt')).map((t) => [t.tid, t.sessions.length]),
    [
      [2, 1],
      [1, 1],
    ],
  );
  const v6 = parseIetSessions(fixture('iet/session-ipv6.txt'))[0]!;
  assert.deepEqual(v6.sessions.map((s) => s.connections[0]!.ip), ['10.0.1.117', 'fe80:0000:0000:0000:5054:00ff:fe54:4d0c']);
  assert.deepEqual(parseIetSessions(fixture('iet/session-none.txt')), [{ tid: 1, name: 'iqn.2014-06.com.matrix:storage.515.disk', sessions: [] }]);
});

test('plan-only: [no IET module here] the create plan: ACL line first, next tid, spec LUN N as IET Lun N-1, secrets masked', async () => {
  const rec = new RecordingRunner(host());
  const state = await new IetBackend(rec).create(spec);
  const plan = rec.render();
  for (const s of ['web2secret1234', 'tgt2secret9876']) assert.ok(!plan.includes(s), `${s} leaked`);
  const cmds = rec.steps.map((s) => s.shell.split('\n')[0]);
  assert.deepEqual(cmds, [
    `install -m 0644 /dev/stdin ${ALLOW} <<'EOF'`,
    `ietadm --op new --tid=2 --params Name=${IQN}`,
    `ietadm --op new --tid=2 --lun=0 --params Path=/dev/vg0/web2,Type=blockio,ScsiSN=WEB2SN1`,
    `ietadm --op new --tid=2 --lun=1 --params Path=/srv/iscsi/web2-data.img,Type=fileio,IOMode=ro`,
    `ietadm --op new --tid=2 --user --params=IncomingUser=web2user,Password=********`,
    `ietadm --op new --tid=2 --user --params=OutgoingUser=tgt2,Password=********`,
    `install -m 0600 /dev/stdin ${CONF} <<'EOF'`,
  ]);
  // the new initiators.allow line: the initiator's name as an anchored pattern, before the ALL line
  const allowBody = rec.steps[0]!.shell.split('\n');
  const mine = allowBody.findIndex((l) => l.startsWith(IQN));
  assert.equal(allowBody[mine], `${IQN} iqn\\.1993-08\\.org\\.debian:01:web2, 10.0.0.0/24`);
  assert.ok(mine < allowBody.findIndex((l) => l.startsWith('ALL')));
  assert.deepEqual(state.luns.map((l) => [l.lun, l.path, l.readonly]), [
    [0, '/dev/vg0/web2', false],
    [1, '/srv/iscsi/web2-data.img', true],
  ]);
  assert.deepEqual(state.acls, [INIT, '10.0.0.0/24']);
  assert.equal(state.tid, 2);
});

test('plan-only: [no IET module here] what IET cannot do, or a clash with a running target, is refused before anything runs', async () => {
  const run = host();
  const iet = new IetBackend(run);
  await assert.rejects(iet.create({ ...spec, luns: [{ lun: 1, path: '/srv/x.iso', cdrom: true }] }), /IET cannot serve a CD-ROM/);
  await assert.rejects(iet.create({ ...spec, allow: [] }), /no initiator is allowed/);
  await assert.rejects(iet.create({ ...spec, iqn: 'iqn.2014-06.com.matrix:storage.515.disk' }), /already exists/);
  await assert.rejects(iet.create({ ...spec, luns: [{ lun: 1, path: '/root/iscsi.disk' }] }), /\/root\/iscsi\.disk is already served by IET target iqn\.2014-06\.com\.matrix:storage\.515\.disk/);
  assert.equal(run.calls.length, 0);
  assert.equal(run.writes.length, 0);
  await assert.rejects(new IetBackend(new ReplayRunner()).create(spec), /IET is not running/);
});

test('plan-only: [no IET module here] a change IET did not take fails the create and takes every step back', async () => {
  // ietadm answers 0 but /proc/net/iet/volume never shows tid 2 (here: unchanged)
  const run = host();
  const allowBefore = run.files.get(ALLOW);
  const confBefore = run.files.get(CONF);
  await assert.rejects(new IetBackend(run).create(spec), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.match(e.message, /tid 2 is not iqn\.2024-01\.com\.example:vm\.web2/);
    assert.ok(!e.message.includes('web2secret1234'));
    return true;
  });
  assert.equal(run.lines('ietadm').pop(), 'ietadm --op delete --tid=2');
  assert.equal(run.files.get(ALLOW), allowBefore, 'the initiators.allow line was removed again');
  assert.equal(run.files.get(CONF), confBefore, 'the ietd.conf stanza was removed again');
  assert.ok(run.writes.some((w) => w.path === CONF && w.options.mode === 0o600 && w.options.secret === true));
  // ietadm's negative errno exit status is named in the error
  const busy = host();
  busy.answers.push({ match: 'ietadm --op new --tid=2 --params', replies: [{ exitCode: 239, stderr: 'ietd_request 203 3 -17\n' }] });
  await assert.rejects(new IetBackend(busy).create(spec), /exit 239\): ietd_request 203 3 -17 \(ietadm error -17 \(EEXIST: already exists/);
});

test('plan-only: [no IET module here] list/show read /proc, ietd.conf and initiators.allow together', async () => {
  const run = new ReplayRunner(
    [],
    new Map([
      [VOLUME, fixture('iet/volume-one.txt')],
      [SESSION, fixture('iet/session-one.txt')],
      [CONF, 'Target iqn.foo.example\n        IncomingUser joe secret123456\n        Lun 1 Path=/dev/cinder-volumes/lvol0,Type=fileio,ScsiSN=LV0\n'],
      [ALLOW, 'iqn.foo.example 192.168.1.0/24, iqn\\.1993-08\\.org\\.debian:01:5d5f7d6e2951\n'],
    ]),
  );
  const t = await new IetBackend(run).show('iqn.foo.example');
  assert.deepEqual(t, {
    iqn: 'iqn.foo.example',
    tid: 1,
    luns: [{ lun: 1, path: '/dev/cinder-volumes/lvol0', type: 'disk', sizeBytes: 4194304 * 512, readonly: false, online: true, serial: 'LV0' }],
    sessions: [{ initiator: 'iqn.1993-08.org.debian:01:5d5f7d6e2951', address: '192.168.1.5' }],
    acls: ['192.168.1.0/24', 'iqn.1993-08.org.debian:01:5d5f7d6e2951'],
    accounts: ['joe'],
    persisted: true,
  });
  // no initiators.allow line: ietd lets everyone in
  run.files.set(ALLOW, '');
  run.files.set(CONF, '');
  const open = (await new IetBackend(run).list())[0]!;
  assert.deepEqual(open.acls, ['ALL']);
  assert.equal(open.persisted, false);
});

test('plan-only: [no IET module here] delete refuses sessions unless forced, closes them, cleans both files, and is idempotent', async () => {
  const files = () =>
    new Map([
      [VOLUME, fixture('iet/volume-one.txt')],
      [SESSION, fixture('iet/session-one.txt')],
      [CONF, '# keep me\nTarget iqn.foo.example\n        Lun 1 Path=/dev/cinder-volumes/lvol0,Type=fileio\n'],
      [ALLOW, 'iqn.foo.example 192.168.1.5\nALL 127.0.0.1\n'],
    ]);
  const refused = new ReplayRunner([], files());
  await assert.rejects(new IetBackend(refused).delete('iqn.foo.example'), /has 1 logged-in session\(s\) \(iqn\.1993-08\.org\.debian:01:5d5f7d6e2951\)/);
  assert.equal(refused.calls.length + refused.writes.length, 0);

  const forced = new ReplayRunner([], files());
  await new IetBackend(forced).delete('iqn.foo.example', { force: true });
  assert.deepEqual(forced.lines('ietadm'), ['ietadm --op delete --tid=1 --sid=562949990973952 --cid=0', 'ietadm --op delete --tid=1']);
  assert.equal(forced.files.get(CONF), '# keep me\n');
  assert.equal(forced.files.get(ALLOW), 'ALL 127.0.0.1\n');

  // gone from ietd already (254 = -ENOENT) and from the files: nothing fails, nothing is written
  const gone = new ReplayRunner([{ match: 'ietadm', replies: [{ exitCode: 254 }] }], new Map([[VOLUME, ''], [SESSION, ''], [CONF, '# keep me\n'], [ALLOW, 'ALL 127.0.0.1\n']]));
  await new IetBackend(gone).delete('iqn.foo.example');
  assert.equal(gone.calls.length + gone.writes.length, 0);
});
