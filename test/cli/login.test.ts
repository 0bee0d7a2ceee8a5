// `virt-iscsi discover|login|logout` through the real CLI on this machine, which has no
// open-iscsi (and a kernel without iscsi_tcp): they must fail with one clear line. They
// run for real in the lab guest (test/lab/pool-attach.lab.ts). Also: the hypervisor
// commands offer the flags ../shared/docs/cli.md promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { cli, failedWith } from '../helpers/cli.js';

test('discover, login and logout without open-iscsi: one line saying what to install; bad flags named', async (t) => {
  if (spawnSync('iscsiadm', ['--version']).error === undefined) {
    return t.skip('open-iscsi is installed here: the "not installed" case cannot be shown');
  }
  const secret = 'never-shown-123';
  const [discover, login, logout, noFile, badPortal, usage] = await Promise.all([
    cli('discover', '127.0.0.1:3260'),
    cli('login', '--portal', '127.0.0.1', '--target', 'iqn.2024-01.dev.virt-iscsi:x', '--dry-run'),
    cli('logout', '--portal', 'localhost:3260', '--target', 'iqn.2024-01.dev.virt-iscsi:x'),
    cli('login', '--portal', '127.0.0.1', '--target', 'iqn.2024-01.dev.virt-iscsi:x', '--chap', secret),
    cli('discover', '[::1'),
    cli('login', '--portal', '127.0.0.1'),
  ]);
  for (const r of [discover, login]) assert.equal(failedWith(r, /^virt-iscsi: iscsiadm is not installed on local: install open-iscsi$/), undefined);
  // logout resolves the portal name first (getent runs), then needs iscsiadm
  assert.equal(failedWith(logout, /iscsiadm is not installed on local/), undefined);
  assert.equal(failedWith(noFile, /--chap "never-shown-123" needs --chap-secret-file FILE/), undefined);
  assert.equal(failedWith(badPortal, /portal "\[::1" has an invalid host/), undefined);
  assert.equal(usage.status, 2, usage.stderr);
});

/** Every long option of a command, e.g. --hypervisor. */
function flags(program: Command, path: string[]): string[] {
  let cmd: Command | undefined = program;
  for (const name of path) cmd = cmd?.commands.find((c) => c.name() === name);
  assert.ok(cmd, `no command ${path.join(' ')}`);
  return cmd.options.map((o) => o.long!).filter(Boolean);
}

test('the hypervisor commands take the flags cli.md lists', async () => {
  const program = await buildProgram();
  const host = ['--hypervisor', '--identity', '--known-hosts', '--accept-new-host-key'];
  const libvirt = [...host, '--connect'];
  const source = ['--pool', '--volume', '--portal', '--target', '--lun', '--by-path', '--mode'];
  const want: Array<[string[], string[]]> = [
    [['discover'], [...host, '--json']],
    [['login'], [...host, '--portal', '--target', '--chap', '--chap-secret-file', '--dry-run']],
    [['logout'], [...host, '--portal', '--target', '--dry-run']],
    [['pool', 'create'], [...libvirt, '--portal', '--target', '--type', '--initiator', '--chap', '--chap-secret-file', '--autostart', '--dry-run']],
    [['pool', 'delete'], [...libvirt, '--dry-run']],
    [['pool', 'list'], [...libvirt, '--json']],
    [['pool', 'volumes'], [...libvirt, '--json']],
    [['attach'], [...libvirt, ...source, '--cdrom', '--readonly', '--dev', '--live', '--config', '--persistent', '--dry-run']],
    [['detach'], [...libvirt, '--dev', '--dry-run']],
    [['media', 'insert'], [...libvirt, '--dev', '--portal', '--target', '--lun', '--by-path', '--dry-run']],
    [['media', 'eject'], [...libvirt, '--dev', '--dry-run']],
  ];
  for (const [path, expected] of want) {
    const have = flags(program, path);
    assert.deepEqual(expected.filter((f) => !have.includes(f)), [], `virt-iscsi ${path.join(' ')} lacks flags`);
  }
});
