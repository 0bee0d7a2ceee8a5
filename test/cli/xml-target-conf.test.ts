import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ValidationError } from '../../src/errors.js';
import { addXmlTargetConfCommand } from '../../src/cli/commands/xml-target-conf.js';
import { buildTgtTarget, parseTgtTarget } from '../../src/config/tgt-conf.js';
import { parseIetTarget } from '../../src/config/iet-conf.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `virt-iscsi xml target-conf ARGS` in process on a program holding only this command. */
async function runInProcess(args: string[]): Promise<string> {
  const program = new Command('virt-iscsi').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const xml = program.command('xml').exitOverride();
  addXmlTargetConfCommand(xml);
  for (const c of xml.commands) c.exitOverride();
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['xml', 'target-conf', ...args], { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return out;
}

const IQN = 'iqn.2024-01.com.example:vm1';

test('xml target-conf --backend tgt prints a targets.conf block that parses back to the flags', async () => {
  const out = await runInProcess(['--backend', 'tgt', '--target', IQN, '--lun', '1=/srv/a.img', '--lun', '2=/srv/b.img', '--readonly', '--initiator-address', '10.0.0.0/24', '--initiator-name', 'iqn.1993-08.org.debian:01:h1']);
  const t = parseTgtTarget(out);
  assert.equal(out, buildTgtTarget(t));
  assert.deepEqual(
    t.luns.map((l) => [l.lun, l.path, l.readonly]),
    [
      [1, '/srv/a.img', true],
      [2, '/srv/b.img', true],
    ],
  );
  assert.deepEqual(t.initiatorAddresses, ['10.0.0.0/24']);
  assert.deepEqual(t.initiatorNames, ['iqn.1993-08.org.debian:01:h1']);
});

test('xml target-conf --cdrom makes every LUN a read-only cd device', async () => {
  const t = parseTgtTarget(await runInProcess(['--backend', 'tgt', '--target', IQN, '--lun', '1=/srv/x.iso', '--cdrom', '--initiator-address', 'ALL']));
  assert.deepEqual(t.luns[0], { kind: 'backing-store', path: '/srv/x.iso', lun: 1, deviceType: 'cd', readonly: true, extra: [] });
});

test('xml target-conf --backend iet prints the ietd.conf stanza and the initiators.allow line', async () => {
  const out = await runInProcess(['--backend', 'iet', '--target', IQN, '--lun', '1=/srv/a.img', '--initiator-address', '10.0.0.5']);
  const [conf, allow] = out.split('# /etc/iet/initiators.allow\n');
  assert.ok(conf!.startsWith('# /etc/iet/ietd.conf\n'));
  assert.deepEqual(parseIetTarget(conf!), { iqn: IQN, luns: [{ lun: 0, path: '/srv/a.img', type: 'fileio' }], incomingUsers: [], params: [] });
  assert.equal(allow, `${IQN} 10.0.0.5\n`);
});

test('xml target-conf refuses bad input with a ValidationError naming it', async () => {
  const cases: Array<[string[], string]> = [
    [['--lun', 'one=/srv/a.img', '--initiator-address', 'ALL'], '"one=/srv/a.img"'],
    [['--lun', '1=/srv/a>b.img', '--initiator-address', 'ALL'], '"/srv/a>b.img"'],
    [['--lun', '1=/srv/a.img'], 'no initiator is allowed'],
    [['--lun', '1=/srv/a.img', '--initiator-address', 'iqn.1993-08.org.debian:01:h1'], 'use --initiator-name'],
    [['--lun', '1=/srv/a.img', '--initiator-name', '10.0.0.1'], '"10.0.0.1" is not an iSCSI name'],
    [['--initiator-address', 'ALL'], 'at least one --lun'],
  ];
  for (const [args, named] of cases) {
    await assert.rejects(runInProcess(['--backend', 'tgt', '--target', IQN, ...args]), (e: unknown) => e instanceof ValidationError && e.message.includes(named), named);
  }
  await assert.rejects(runInProcess(['--backend', 'iet', '--target', IQN, '--lun', '1=/srv/a,b.img', '--initiator-address', 'ALL']), /"\/srv\/a,b.img"/);
});

test('xml target-conf: a backend other than tgt|iet, or no --target, is a usage error', async () => {
  await assert.rejects(runInProcess(['--backend', 'lio', '--target', IQN, '--lun', '1=/a']), (e: unknown) => e instanceof CommanderError && e.code === 'commander.invalidArgument');
  await assert.rejects(runInProcess(['--backend', 'tgt', '--lun', '1=/a']), (e: unknown) => e instanceof CommanderError && e.code === 'commander.missingMandatoryOptionValue');
});

test('virt-iscsi xml target-conf through the real CLI entry (src/cli/run.ts)', () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', 'xml', 'target-conf', ...args], { cwd: root, encoding: 'utf8' });
  const help = run(['--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /--initiator-address/);
  const ok = run(['--backend', 'tgt', '--target', IQN, '--lun', '1=/srv/a.img', '--initiator-address', 'ALL']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, `<target ${IQN}>\n    <backing-store /srv/a.img>\n        lun 1\n    </backing-store>\n    initiator-address ALL\n</target>\n`);
  const bad = run(['--backend', 'tgt', '--target', IQN, '--lun', '1=/srv/a\nb', '--initiator-address', 'ALL']);
  assert.equal(bad.status, 1);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /"\/srv\/a\\nb"/);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});
