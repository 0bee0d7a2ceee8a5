import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ValidationError } from '../../src/errors.js';
import {
  buildTgtTarget,
  formatTgtConf,
  getTgtTarget,
  listTgtTargets,
  parseTgtConf,
  parseTgtTarget,
  removeTgtTarget,
  targetSpecToTgtConf, NO_INITIATOR_ADDRESS,
  upsertTgtTarget,
  type TgtLun,
  type TgtTarget,
} from '../../src/config/tgt-conf.js';
import { ALNUM, LOWER, randomIqn, rng, type Rng } from './random.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/config/tgt/${name}`, import.meta.url), 'utf8');

function target(iqn: string, over: Partial<TgtTarget> = {}): TgtTarget {
  return { iqn, luns: [], initiatorAddresses: [], initiatorNames: [], incomingUsers: [], extra: [], ...over };
}

test('the seed targets.conf block parses and builds back byte for byte', () => {
  const seed = fixture('seed-target1.conf');
  const t = parseTgtTarget(seed);
  assert.deepEqual(t, target('iqn.2008-09.com.example:server.target1', { luns: [{ kind: 'backing-store', path: '/var/iscsi/disk.img', extra: [] }] }));
  assert.equal(buildTgtTarget(t), seed);
});

test("tgt's own targets.conf.example: the document gives the file back and every target parses", () => {
  const text = fixture('targets.conf.example');
  const doc = parseTgtConf(text);
  assert.equal(formatTgtConf(doc), text);
  const names = listTgtTargets(doc);
  assert.equal(names.length, 10); // target4 is there twice; commented-out targets are not targets
  assert.ok(!names.includes('iqn.2008-09.com.example:server.badtarget1'));
  const t5 = getTgtTarget(doc, 'iqn.2008-09.com.example:server.target5')!;
  assert.deepEqual(t5.luns[0], { kind: 'direct-store', path: '/dev/sdd', vendorId: 'VENDOR1', deviceType: 'cd', lun: 1, extra: [{ key: 'removable', value: '1' }] });
  assert.deepEqual(t5.luns[3], { kind: 'backing-store', path: '/dev/sdd1', vendorId: 'back2', lun: 15, extra: [] });
  assert.deepEqual(t5.initiatorAddresses, ['192.168.100.1', '192.168.200.5']);
  assert.deepEqual(t5.incomingUsers, [{ user: 'user1', secret: 'secretpass12' }, { user: 'user2', secret: 'secretpass23' }]);
  assert.deepEqual(t5.outgoingUser, { user: 'userA', secret: 'secretpassA' });
  assert.equal(t5.writeCache, false);
  assert.equal(t5.scsiSn, 'multipath-10');
  assert.deepEqual(t5.extra, [{ key: 'controller_tid', value: '10' }]);
  const t3 = getTgtTarget(doc, 'iqn.2008-09.com.example:server.target3')!;
  assert.deepEqual(t3.luns.map((l) => l.path), ['/dev/LVM/somedevice1', '/dev/LVM/somedevice2', '/dev/LVM/somedevice3']);
  assert.equal(t3.vendorId, 'MyCompany Inc.');
});

test('editing one target in a file with comments and two other targets keeps the rest byte-identical', () => {
  const text = fixture('three-targets.conf');
  const doc = parseTgtConf(text);
  assert.equal(formatTgtConf(doc), text);
  const web1 = 'iqn.2024-01.com.example:vm.web1';
  const edited = getTgtTarget(doc, web1)!;
  edited.luns.push({ kind: 'backing-store', path: '/srv/iscsi/web1-data.img', lun: 2, extra: [] });
  edited.initiatorAddresses.push('10.0.0.31');
  const out = formatTgtConf(upsertTgtTarget(doc, edited));
  const oldBlock = doc.chunks.find((c) => c.kind === 'target' && c.iqn === web1)!.text;
  assert.equal(out, text.replace(oldBlock, buildTgtTarget(edited)));
  assert.deepEqual(getTgtTarget(parseTgtConf(out), web1), edited);
  // the others are untouched and still read the same
  for (const other of ['iqn.2024-01.com.example:build.scratch', 'iqn.2024-01.com.example:archive']) {
    assert.deepEqual(getTgtTarget(parseTgtConf(out), other), getTgtTarget(doc, other));
  }
  // removing it drops exactly its block
  assert.equal(formatTgtConf(removeTgtTarget(doc, web1.toUpperCase())), text.replace(oldBlock, ''));
  // removing something absent changes nothing
  assert.equal(formatTgtConf(removeTgtTarget(doc, 'iqn.2024-01.com.example:nothere')), text);
});

test('a new target is appended after a blank line, even to a file without a final newline', () => {
  const text = fixture('three-targets.conf');
  assert.ok(!text.endsWith('\n'));
  const t = target('iqn.2024-01.com.example:new', { luns: [{ kind: 'backing-store', path: '/srv/new.img', lun: 1, extra: [] }], initiatorAddresses: ['ALL'] });
  const out = formatTgtConf(upsertTgtTarget(parseTgtConf(text), t));
  assert.equal(out, `${text}\n\n${buildTgtTarget(t)}`);
  assert.equal(formatTgtConf(upsertTgtTarget(parseTgtConf(''), t)), buildTgtTarget(t));
  assert.equal(formatTgtConf(upsertTgtTarget(parseTgtConf('# x\n\n'), t)), `# x\n\n${buildTgtTarget(t)}`);
});

test('duplicate blocks of one target (tgt-admin merges them) become one on edit', () => {
  const a = 'iqn.2024-01.com.example:a';
  const text = `<target ${a}>\n    backing-store /a\n</target>\n# mid\n<target ${a}>\n    backing-store /b\n</target>\n`;
  const t = target(a, { luns: [{ kind: 'backing-store', path: '/c', extra: [] }], initiatorAddresses: ['ALL'] });
  assert.equal(formatTgtConf(upsertTgtTarget(parseTgtConf(text), t)), `${buildTgtTarget(t)}# mid\n`);
});

test('an unclosed <target> is refused with its line number', () => {
  assert.throws(() => parseTgtConf('# c\n<target iqn.2024-01.com.example:x>\n    backing-store /x\n'), (e: unknown) => e instanceof ValidationError && /line 2/.test(e.message) && /no <\/target>/.test(e.message));
});

test('parse accepts Config::General spellings: key=value, quoted values, inline comments', () => {
  const t = parseTgtTarget('<target iqn.2024-01.com.example:x>  # c\n  backing-store = "/srv/a.img"\n  lun=4 # four\n  readonly 1\n</target>\n');
  assert.deepEqual(t, target('iqn.2024-01.com.example:x', { luns: [{ kind: 'backing-store', path: '/srv/a.img', extra: [] }], lun: 4, readonly: true }));
});

test('parse refuses what tgt-admin would refuse or misread', () => {
  const cases: Array<[string, RegExp]> = [
    ['<target iqn.2024-01.com.example:x>\n  readonly 1\n  readonly 0\n</target>\n', /more than once/],
    ['<target iqn.2024-01.com.example:x>\n  readonly yes\n</target>\n', /readonly "yes" is not 1 or 0/],
    ['<target iqn.2024-01.com.example:x>\n  incominguser onlyuser\n</target>\n', /USER SECRET/],
    ['<target iqn.2024-01.com.example:x>\n  backing-store /a \\\n</target>\n', /continued lines/],
    ['<target iqn.2024-01.com.example:x>\n  <backing-store /a>\n    lun 1\n</target>\n', /not closed/],
    ['<target iqn.2024-01.com.example:x>\n  lun\n</target>\n', /has no value/],
  ];
  for (const [text, re] of cases) assert.throws(() => parseTgtTarget(text), (e: unknown) => e instanceof ValidationError && re.test(e.message), text);
});

test('hostile values are refused with a ValidationError naming them, never written', () => {
  const base = (): TgtTarget => target('iqn.2024-01.com.example:x', { luns: [{ kind: 'backing-store', path: '/srv/a.img', extra: [] }], initiatorAddresses: ['ALL'] });
  const lun = (over: Partial<TgtLun>): TgtTarget => ({ ...base(), luns: [{ kind: 'backing-store', path: '/srv/a.img', extra: [], ...over }] });
  const bad: Array<[TgtTarget, string]> = [
    [lun({ path: '/srv/a\n</target>' }), '"/srv/a\\n</target>"'],
    [lun({ path: '/srv/a>b' }), '"/srv/a>b"'],
    [lun({ path: '/srv/<a' }), '"/srv/<a"'],
    [lun({ path: '/srv/a #b' }), '"/srv/a #b"'],
    [lun({ path: '/srv/a$(reboot)' }), '"/srv/a$(reboot)"'],
    [lun({ path: '/srv/a"b' }), '"/srv/a\\"b"'],
    [lun({ path: '/srv/a,b.img' }), '"/srv/a,b.img"'],
    [lun({ path: '/srv/a`id`' }), '"/srv/a`id`"'],
    [lun({ path: 'relative.img' }), '"relative.img"'],
    [lun({ path: '/srv/dir/' }), '"/srv/dir/"'],
    [lun({ path: '/srv/a\\' }), '"/srv/a\\\\"'],
    [lun({ vendorId: 'TOOLONGVENDOR' }), '"TOOLONGVENDOR"'],
    [lun({ scsiSn: 'a,b' }), '"a,b"'],
    [lun({ lun: 0 }), 'lun 0'],
    [lun({ deviceType: 'floppy' }), '"floppy"'],
    [lun({ extra: [{ key: 'params', value: 'x\ny' }] }), '"x\\ny"'],
    [lun({ extra: [{ key: 'lun', value: '3' }] }), '"lun"'],
    [{ ...base(), iqn: 'iqn.2024-01.com.example:x y' }, '"iqn.2024-01.com.example:x y"'],
    [{ ...base(), iqn: 'iqn.2024-01.com.example:x>' }, '"iqn.2024-01.com.example:x>"'],
    [{ ...base(), initiatorAddresses: ['10.0.0.1;reboot'] }, '"10.0.0.1;reboot"'],
    [{ ...base(), initiatorNames: ['iqn.2024-01.com.example:a b'] }, '"iqn.2024-01.com.example:a b"'],
    [{ ...base(), incomingUsers: [{ user: 'us er', secret: 'averylongsecret' }] }, '"us er"'],
    [{ ...base(), incomingUsers: [{ user: 'a,b', secret: 'averylongsecret' }] }, '"a,b"'],
    [{ ...base(), extra: [{ key: 'MaxConnections', value: '=1' }] }, '"=1"'],
  ];
  for (const [t, named] of bad) {
    assert.throws(() => buildTgtTarget(t), (e: unknown) => e instanceof ValidationError && e.message.includes(named), named);
  }
});

test('a bad CHAP secret is refused without being echoed', () => {
  const t = target('iqn.2024-01.com.example:x', { initiatorAddresses: ['ALL'], incomingUsers: [{ user: 'u1', secret: 'sec ret$with#stuff' }] });
  assert.throws(() => buildTgtTarget(t), (e: unknown) => e instanceof ValidationError && e.message.includes('"u1"') && !e.message.includes('sec ret'));
});

function randomLun(r: Rng, n: number): TgtLun {
  const pathChars = `${ALNUM}._-+%@:=~äßж日本`;
  const lun: TgtLun = { kind: r.pick(['backing-store', 'direct-store'] as const), path: `/${r.word(pathChars, 1, 12)}/${r.word(pathChars, 1, 12)}`, extra: [] };
  if (r.chance(0.7)) lun.lun = n;
  if (r.chance(0.3)) lun.readonly = r.chance(0.5);
  if (r.chance(0.2)) lun.deviceType = r.pick(['disk', 'cd', 'tape']);
  if (r.chance(0.2)) lun.bsType = r.pick(['rdwr', 'aio', 'mmap']);
  if (r.chance(0.2)) lun.writeCache = r.chance(0.5);
  if (r.chance(0.3)) lun.vendorId = r.word(ALNUM, 1, 8);
  if (r.chance(0.3)) lun.productId = `${r.word(ALNUM, 1, 7)} ${r.word(ALNUM, 1, 7)}`;
  if (r.chance(0.3)) lun.scsiSn = r.word(`${ALNUM}-_.`, 1, 36);
  if (r.chance(0.2)) lun.extra.push({ key: 'mode_page', value: '8:0:18:0x10:0:0xff:0xff' }, { key: 'removable', value: '1' });
  return lun;
}

function randomTarget(r: Rng): TgtTarget {
  const t = target(randomIqn(r));
  for (let i = 1, n = r.int(0, 4); i <= n; i++) t.luns.push(randomLun(r, i));
  for (let i = 0, n = r.int(0, 3); i < n; i++) t.initiatorAddresses.push(r.pick(['ALL', `10.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`, '192.168.0.0/16', 'fe80::1', '2001:db8::/32']));
  for (let i = 0, n = r.int(0, 2); i < n; i++) t.initiatorNames.push(randomIqn(r));
  for (let i = 0, n = r.int(0, 2); i < n; i++) t.incomingUsers.push({ user: r.word(`${LOWER}0123456789._-@`, 1, 12), secret: r.word(ALNUM, 1, 1) + r.word(`${ALNUM}+/=%:._-@`, 11, 15) });
  if (r.chance(0.3)) t.outgoingUser = { user: r.word(LOWER, 1, 10), secret: r.word(ALNUM, 12, 16) };
  if (r.chance(0.2)) t.writeCache = false;
  if (r.chance(0.2)) t.vendorId = r.word(ALNUM, 1, 8);
  if (r.chance(0.2)) t.readonly = true;
  if (r.chance(0.3)) t.extra.push({ key: 'MaxConnections', value: '1' }, { key: 'controller_tid', value: String(r.int(1, 99)) });
  return t;
}

test('parse(build(x)) deep-equals x for 500 generated targets (seeded)', () => {
  for (let seed = 1; seed <= 500; seed++) {
    const t = randomTarget(rng(seed));
    const text = buildTgtTarget(t);
    assert.deepEqual(parseTgtTarget(text), t, `seed ${seed}:\n${text}`);
  }
});

test('generated files: upserting one target never changes the bytes of the others (seeded)', () => {
  for (let seed = 1; seed <= 100; seed++) {
    const r = rng(seed * 7919);
    const ts = [randomTarget(r), randomTarget(r), randomTarget(r)];
    const text = ts.map((t, i) => `# target ${i}\n${buildTgtTarget(t)}\n`).join('');
    const doc = parseTgtConf(text);
    assert.equal(formatTgtConf(doc), text);
    const changed = { ...randomTarget(r), iqn: ts[1]!.iqn };
    const out = formatTgtConf(upsertTgtTarget(doc, changed));
    assert.equal(out, text.replace(buildTgtTarget(ts[1]!), buildTgtTarget(changed)), `seed ${seed}`);
  }
});

test('targetSpecToTgtConf: LUN sections, read-only CD-ROM, serial, ACLs by address and name, CHAP', () => {
  const t = targetSpecToTgtConf({
    iqn: 'iqn.2024-01.com.example:vm1',
    luns: [
      { lun: 1, path: '/srv/disk.img', serial: 'VM1DISK' },
      { lun: 2, path: '/srv/install.iso', cdrom: true },
      { lun: 3, path: '/srv/ro.img', readonly: true, vendorId: 'ACME', productId: 'Disk' },
    ],
    allow: ['192.168.122.0/24', '10.0.0.5', 'iqn.1993-08.org.debian:01:host1', 'ALL'],
    chap: { user: 'vm1', secret: 'averylongsecret', mutualUser: 'tgt', mutualSecret: 'anotherlongone' },
    persist: true,
  });
  assert.equal(
    buildTgtTarget(t),
    [
      '<target iqn.2024-01.com.example:vm1>',
      '    <backing-store /srv/disk.img>',
      '        lun 1',
      '        scsi_sn VM1DISK',
      '    </backing-store>',
      '    <backing-store /srv/install.iso>',
      '        lun 2',
      '        device-type cd',
      '        readonly 1',
      '    </backing-store>',
      '    <backing-store /srv/ro.img>',
      '        lun 3',
      '        readonly 1',
      '        vendor_id ACME',
      '        product_id Disk',
      '    </backing-store>',
      '    initiator-address 192.168.122.0/24',
      '    initiator-address 10.0.0.5',
      '    initiator-address ALL',
      '    initiator-name iqn.1993-08.org.debian:01:host1',
      '    incominguser vm1 averylongsecret',
      '    outgoinguser tgt anotherlongone',
      '</target>',
      '',
    ].join('\n'),
  );
});

test('targetSpecToTgtConf keeps name-only and empty ACLs closed (tgt-admin would bind ALL)', () => {
  const spec = { iqn: 'iqn.2024-01.com.example:vm1', luns: [{ lun: 1, path: '/srv/a.img' }], persist: true };
  assert.deepEqual(targetSpecToTgtConf({ ...spec, allow: [] }).initiatorAddresses, [NO_INITIATOR_ADDRESS]);
  const named = targetSpecToTgtConf({ ...spec, allow: ['iqn.1993-08.org.debian:01:h1'] });
  assert.deepEqual([named.initiatorAddresses, named.initiatorNames], [[NO_INITIATOR_ADDRESS], ['iqn.1993-08.org.debian:01:h1']]);
  assert.deepEqual(targetSpecToTgtConf({ ...spec, allow: ['10.0.0.0/24'] }).initiatorAddresses, ['10.0.0.0/24']);
});

test('targetSpecToTgtConf refuses odd allow values, LUN 0 and duplicate LUNs', () => {
  const spec = { iqn: 'iqn.2024-01.com.example:vm1', luns: [{ lun: 1, path: '/srv/a.img' }], allow: ['ALL'], persist: true };
  assert.throws(() => targetSpecToTgtConf({ ...spec, allow: ['web1.example.com'] }), /"web1.example.com" is neither ALL/);
  assert.throws(() => targetSpecToTgtConf({ ...spec, allow: ['10.0.0.0/33'] }), /"10.0.0.0\/33"/);
  assert.throws(() => targetSpecToTgtConf({ ...spec, luns: [{ lun: 0, path: '/srv/a.img' }] }), /lun 0/);
  assert.throws(() => targetSpecToTgtConf({ ...spec, luns: [{ lun: 1, path: '/a' }, { lun: 1, path: '/b' }] }), /lun 1 is given twice/);
  assert.throws(() => targetSpecToTgtConf({ ...spec, chap: { user: 'u', secret: 'averylongsecret', mutualUser: 'm' } }), /mutual CHAP/);
});
