// IET cannot run here (no kernel module), so these are pure model tests against the
// documented format (ietd.conf(5), IET 1.4.20 usr/plain.c) and the seed's example.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import {
  buildIetTarget,
  formatIetConf,
  getIetTarget,
  ietInitiatorPattern,
  listIetTargets,
  parseIetConf,
  parseIetTarget,
  removeIetTarget,
  targetSpecToIet,
  upsertIetTarget,
  type IetLun,
  type IetTarget,
} from '../../src/config/iet-conf.js';
import { ALNUM, LOWER, randomIqn, rng, type Rng } from './random.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/config/iet/${name}`, import.meta.url), 'utf8');

test('plan-only: the seed ietd.conf stanza parses and builds back byte for byte', () => {
  const seed = fixture('seed-disk1.conf');
  const t = parseIetTarget(seed);
  assert.deepEqual(t, {
    iqn: 'iqn.2001-04.org.ultimana:storage.disk1',
    luns: [{ lun: 0, path: '/iscsi/iscsitarget', type: 'fileio' }],
    incomingUsers: [],
    params: [],
  });
  assert.equal(buildIetTarget(t), seed);
});

test('plan-only: a file with a global part, comments and three stanzas comes back byte for byte and reads right', () => {
  const text = fixture('three-targets.conf');
  const doc = parseIetConf(text);
  assert.equal(formatIetConf(doc), text);
  assert.deepEqual(listIetTargets(doc), ['iqn.2024-01.com.example:build.scratch', 'iqn.2024-01.com.example:vm.web1', 'iqn.2024-01.com.example:archive']);
  assert.deepEqual(getIetTarget(doc, 'iqn.2024-01.com.example:vm.web1'), {
    iqn: 'iqn.2024-01.com.example:vm.web1',
    luns: [{ lun: 0, path: '/dev/vg0/web1', type: 'blockio' }],
    incomingUsers: [{ user: 'web1user', secret: 'web1secret123' }],
    params: [{ key: 'HeaderDigest', value: 'None' }],
  });
  assert.deepEqual(getIetTarget(doc, 'iqn.2024-01.com.example:archive'), {
    iqn: 'iqn.2024-01.com.example:archive',
    luns: [{ lun: 0, path: '/srv/iscsi/archive.img', type: 'fileio', ioMode: 'ro', scsiSn: 'ARCH0001' }],
    incomingUsers: [],
    outgoingUser: { user: 'targetuser', secret: 'targetsecret12' },
    params: [],
  });
  // the comment heading the next stanza is not part of the one before it
  const scratch = doc.chunks.find((c) => c.kind === 'target' && c.iqn.endsWith('build.scratch'))!;
  assert.ok(!scratch.text.includes('# web1'));
});

test('plan-only: editing one stanza keeps the global part, comments and the other stanzas byte-identical', () => {
  const text = fixture('three-targets.conf');
  const doc = parseIetConf(text);
  const web1 = 'iqn.2024-01.com.example:vm.web1';
  const edited = getIetTarget(doc, web1)!;
  edited.luns.push({ lun: 1, path: '/dev/vg0/web1-data', type: 'blockio', ioMode: 'ro' });
  const oldStanza = doc.chunks.find((c) => c.kind === 'target' && c.iqn === web1)!.text;
  const out = formatIetConf(upsertIetTarget(doc, edited));
  assert.equal(out, text.replace(oldStanza, buildIetTarget(edited)));
  assert.deepEqual(getIetTarget(parseIetConf(out), web1), edited);
  assert.equal(formatIetConf(removeIetTarget(doc, web1)), text.replace(oldStanza, ''));
  // a new stanza goes at the end after a blank line
  const added: IetTarget = { iqn: 'iqn.2024-01.com.example:new', luns: [{ lun: 0, path: '/srv/new.img', type: 'fileio' }], incomingUsers: [], params: [] };
  assert.equal(formatIetConf(upsertIetTarget(doc, added)), `${text}\n${buildIetTarget(added)}`);
  assert.equal(formatIetConf(upsertIetTarget(parseIetConf('Target iqn.2024-01.com.example:a'), added)), `Target iqn.2024-01.com.example:a\n\n${buildIetTarget(added)}`);
});

test('plan-only: hostile values are refused with a ValidationError naming them', () => {
  const base = (): IetTarget => ({ iqn: 'iqn.2024-01.com.example:x', luns: [{ lun: 0, path: '/srv/a.img', type: 'fileio' }], incomingUsers: [], params: [] });
  const lun = (over: Partial<IetLun>): IetTarget => ({ ...base(), luns: [{ lun: 0, path: '/srv/a.img', type: 'fileio', ...over }] });
  const bad: Array<[IetTarget, string]> = [
    [lun({ path: '/srv/a,Type=nullio' }), '"/srv/a,Type=nullio"'],
    [lun({ path: '/srv/a\nTarget iqn.2024-01.com.example:evil' }), '"/srv/a\\nTarget iqn.2024-01.com.example:evil"'],
    [lun({ path: '/srv/a b' }), '"/srv/a b"'],
    [lun({ path: 'a.img' }), '"a.img"'],
    [lun({ scsiSn: 'x'.repeat(17) }), `"${'x'.repeat(17)}"`],
    [lun({ lun: 1 }), 'first Lun'],
    [{ ...base(), iqn: 'eui.0123456789abcdef' }, '"eui.0123456789abcdef"'],
    [{ ...base(), incomingUsers: [{ user: 'a b', secret: 'averylongsecret' }] }, '"a b"'],
    [{ ...base(), incomingUsers: [{ user: '#u', secret: 'averylongsecret' }] }, '"#u"'],
    [{ ...base(), params: [{ key: 'Alias', value: 'two words' }] }, '"two words"'],
    [{ ...base(), params: [{ key: 'Lun', value: '1' }] }, '"Lun"'],
  ];
  for (const [t, named] of bad) assert.throws(() => buildIetTarget(t), (e: unknown) => e instanceof ValidationError && e.message.includes(named), named);
  assert.throws(
    () => buildIetTarget({ ...base(), outgoingUser: { user: 'u', secret: 'has space secret' } }),
    (e: unknown) => e instanceof ValidationError && !e.message.includes('has space'),
  );
});

test('plan-only: parse refuses unknown Lun keys and stray words', () => {
  assert.throws(() => parseIetTarget('Target iqn.2024-01.com.example:x\n  Lun 0 Path=/a,Kind=disk\n'), /unknown Lun key "Kind"/);
  assert.throws(() => parseIetTarget('Target iqn.2024-01.com.example:x\n  Lun 0 Path=/a b,Type=fileio\n'), /words after Lun/);
  assert.throws(() => parseIetTarget('Target iqn.2024-01.com.example:x\n  IncomingUser onlyuser\n'), /USER SECRET/);
  assert.throws(() => parseIetTarget('Target iqn.2024-01.com.example:x\n  Lun 0 Path=/a,Type=rawio\n'), /"rawio"/);
});

function randomTarget(r: Rng): IetTarget {
  const t: IetTarget = { iqn: randomIqn(r), luns: [], incomingUsers: [], params: [] };
  const pathChars = `${ALNUM}._-+%@:~äßж日本`;
  for (let i = 0, n = r.int(0, 4); i < n; i++) {
    const type = r.pick(['fileio', 'blockio', 'nullio'] as const);
    const l: IetLun = { lun: i === 0 ? 0 : r.int(i, 16384), type };
    if (type !== 'nullio') l.path = `/${r.word(pathChars, 1, 10)}/${r.word(pathChars, 1, 10)}`;
    else if (r.chance(0.5)) l.blocks = r.int(1, 1e9);
    if (r.chance(0.3)) l.ioMode = r.pick(['wb', 'ro', 'wt'] as const);
    if (r.chance(0.3)) l.scsiId = r.word(ALNUM, 1, 16);
    if (r.chance(0.3)) l.scsiSn = r.word(`${ALNUM}-_.`, 1, 16);
    if (r.chance(0.3)) l.blockSize = r.pick([512, 1024, 2048, 4096] as const);
    if (!t.luns.some((x) => x.lun === l.lun)) t.luns.push(l);
  }
  for (let i = 0, n = r.int(0, 2); i < n; i++) t.incomingUsers.push({ user: r.word(`${LOWER}0123456789._-@`, 1, 12), secret: r.word(`${ALNUM}!$%&*()+=/?@[]{}`, 12, 16) });
  if (r.chance(0.3)) t.outgoingUser = { user: r.word(LOWER, 1, 10), secret: r.word(ALNUM, 12, 16) };
  if (r.chance(0.5)) t.params.push({ key: 'Alias', value: r.word(ALNUM, 1, 10) }, { key: 'MaxConnections', value: '1' });
  return t;
}

test('plan-only: parse(build(x)) deep-equals x for 500 generated stanzas (seeded)', () => {
  for (let seed = 1; seed <= 500; seed++) {
    const t = randomTarget(rng(seed));
    const text = buildIetTarget(t);
    assert.deepEqual(parseIetTarget(text), t, `seed ${seed}:\n${text}`);
  }
});

test('plan-only: generated files: upserting one stanza never changes the bytes of the others (seeded)', () => {
  for (let seed = 1; seed <= 100; seed++) {
    const r = rng(seed * 104729);
    const ts = [randomTarget(r), randomTarget(r), randomTarget(r)];
    const text = `IncomingUser d discoversecret\n\n${ts.map((t, i) => `# stanza ${i}\n${buildIetTarget(t)}\n`).join('')}`;
    const doc = parseIetConf(text);
    assert.equal(formatIetConf(doc), text);
    const changed = { ...randomTarget(r), iqn: ts[1]!.iqn };
    assert.equal(formatIetConf(upsertIetTarget(doc, changed)), text.replace(buildIetTarget(ts[1]!), buildIetTarget(changed)), `seed ${seed}`);
  }
});

test('plan-only: targetSpecToIet: LUNs from 0, IOMode=ro, blockio for /dev, CHAP, allow entries', () => {
  const { target, allow } = targetSpecToIet({
    iqn: 'iqn.2024-01.com.example:vm1',
    luns: [
      { lun: 2, path: '/dev/vg0/data', readonly: true },
      { lun: 1, path: '/srv/disk.img', serial: 'VM1DISK' },
    ],
    allow: ['10.0.0.0/24', 'iqn.1993-08.org.debian:01:host1'],
    chap: { user: 'vm1', secret: 'averylongsecret', mutualUser: 'tgt', mutualSecret: 'anotherlongone' },
    persist: true,
  });
  assert.equal(
    buildIetTarget(target),
    [
      'Target iqn.2024-01.com.example:vm1',
      '        IncomingUser vm1 averylongsecret',
      '        OutgoingUser tgt anotherlongone',
      '        Lun 0 Path=/srv/disk.img,Type=fileio,ScsiSN=VM1DISK',
      '        Lun 1 Path=/dev/vg0/data,Type=blockio,IOMode=ro',
      '',
    ].join('\n'),
  );
  assert.deepEqual(allow, ['10.0.0.0/24', 'iqn\\.1993-08\\.org\\.debian:01:host1']);
  assert.equal(ietInitiatorPattern('iqn.a:b'), 'iqn\\.a:b');
});

test('plan-only: targetSpecToIet refuses a CD-ROM, an empty allow list and a gap before the first LUN', () => {
  const spec = { iqn: 'iqn.2024-01.com.example:vm1', luns: [{ lun: 1, path: '/srv/a.img' }], allow: ['ALL'], persist: true };
  assert.throws(() => targetSpecToIet({ ...spec, luns: [{ lun: 1, path: '/srv/a.iso', cdrom: true }] }), /CD-ROM/);
  assert.throws(() => targetSpecToIet({ ...spec, allow: [] }), /no initiator is allowed/);
  assert.throws(() => targetSpecToIet({ ...spec, luns: [{ lun: 2, path: '/srv/a.img' }] }), /first Lun .* is 1; ietd requires/);
});
