// The error paths of several hypervisors and migration, through the CLI, without the lab:
// a hypervisor listed twice, two hypervisors with one initiator name (this machine as
// `local` and over a real sshd), migrate to a hypervisor the export does not serve or
// whose initiator the target does not allow (refused naming what is missing, nothing
// changed), `migrate --dry-run` printing its plan, and unexport while one hypervisor is out
// of reach (its pieces listed, the rest removed; unexport again finishes once it is back).
//
// One machine has one initiator name, so it cannot be two hypervisors of one export: the
// export is made to `local`, and its records then name a second hypervisor, this machine
// over the sshd with an initiator name of its own, as the records of a second machine would.
// That stand-in is the only thing not real here; test/lab/migrate-export.lab.ts does all of
// this with two real hypervisors and a real migration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliWith, failedWith, type CliResult } from '../helpers/cli.js';
import { startSshd } from '../helpers/sshd.js';
import { MiB, startEnv, virsh } from '../workflows/env.js';

const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

test('several hypervisors and migrate: bad input, refusals, the dry-run plan, unexport with a hypervisor out of reach', async (t) => {
  const env = await startEnv('mg');
  t.after(() => env.close());
  const sshd = await startSshd();
  env.cleanup(() => sshd.stop());
  const xdg = join(env.dir, 'xdg');
  const ssh = ['--identity', sshd.identity, '--known-hosts', sshd.knownHosts];
  const hostArgs = ['--control-port', String(env.tgtd.controlPort), '--conf-dir', env.confDir, '--host-records', env.hostRecordDir];
  const cli = (args: string[]): Promise<CliResult> => cliWith([...args, ...ssh], { XDG_STATE_HOME: xdg });
  const name = `${env.id}-d`;
  const image = env.image(`${name}.img`, 4 * MiB);
  const exportArgs = (hvs: string[]): string[] => ['export', image, '--vm', env.domain, '--name', name, '--mode', 'network', '--chap', '--portal', env.tgtd.portal, ...hostArgs, ...hvs.flatMap((h) => ['--hypervisor', h])];
  const before = env.snapshot();

  await t.test('a hypervisor listed twice; two hypervisors with one initiator name: one line each, nothing made', async () => {
    assert.equal(failedWith(await cli(exportArgs(['local', 'local'])), /^virt-iscsi: hypervisor "local" is given twice; give each hypervisor once$/), undefined);
    assert.equal(failedWith(await cli(exportArgs([sshd.uri, 'local', sshd.uri])), new RegExp(`hypervisor "${re(sshd.uri)}" is given twice`)), undefined);
    assert.equal(
      failedWith(await cli(exportArgs(['local', sshd.uri])), new RegExp(`^virt-iscsi: hypervisors local and ${re(sshd.uri)} both log in as iqn\\.\\S+; each needs its own initiator name`)),
      undefined,
    );
    assert.deepEqual(env.snapshot(), before);
  });

  // The export, then its records name the second hypervisor (see the top of the file).
  const made = JSON.parse((await cli([...exportArgs(['local']), '--json'])).stdout) as { target: string; initiator: string };
  assert.ok(made.target, 'exported');
  const other = `iqn.2024-01.test.virt-iscsi:other-${env.id}`;
  for (const file of [join(xdg, 'virt-iscsi', 'exports', `${name}.json`), join(env.hostRecordDir, `${name}.json`)]) {
    const r = JSON.parse(readFileSync(file, 'utf8')) as { hypervisors: Array<Record<string, unknown>> };
    r.hypervisors.push({ uri: sshd.uri, connect: 'qemu:///system', initiator: other });
    writeFileSync(file, JSON.stringify(r, null, 2));
  }
  const exported = env.snapshot();
  const running = (): string => virsh(['domstate', env.domain]).trim();

  await t.test('migrate refused, naming what is missing; nothing changed', async () => {
    const nowhere = 'ssh://root@127.0.0.1:1';
    assert.equal(
      failedWith(await cli(['migrate', env.domain, '--to', nowhere]), new RegExp(`^virt-iscsi: cannot migrate ${env.domain} to ${re(nowhere)}: export ${name} is not served to ${re(nowhere)} \\(virt-iscsi export ${name} --add-hypervisor ${re(nowhere)}\\)$`)),
      undefined,
    );
    // the destination's initiator is not in the target's ACL yet
    assert.equal(
      failedWith(
        await cli(['migrate', env.domain, '--to', sshd.uri]),
        new RegExp(`^virt-iscsi: cannot migrate ${env.domain} to ${re(sshd.uri)}: export ${name}: target ${re(made.target)} does not allow ${re(other)} of ${re(sshd.uri)}; \\(virt-iscsi repair ${name}, or virt-iscsi export ${name} --add-hypervisor ${re(sshd.uri)}, makes them\\)$`),
      ),
      undefined,
    );
    assert.equal(failedWith(await cli(['migrate', `vit-${env.id}-none`, '--to', sshd.uri]), new RegExp(`^virt-iscsi: no export of domain "vit-${env.id}-none" is recorded in `)), undefined);
    // (the stand-in shows the VM running on both, being one libvirtd: the source found is the other one)
    assert.equal(failedWith(await cli(['migrate', env.domain, '--to', 'local']), /^virt-iscsi: the destination is this machine: give --dest-uri, the libvirt URI that reaches it from the source$/), undefined);
    // --remove-hypervisor where the VM runs (the stand-in's libvirtd is this one: it runs there)
    assert.equal(
      failedWith(await cli(['export', name, '--remove-hypervisor', sshd.uri, '--host-records', env.hostRecordDir]), new RegExp(`^virt-iscsi: domain ${env.domain} runs on ${re(sshd.uri)}: migrate it away first \\(virt-iscsi migrate ${env.domain} --to URI\\), then remove the hypervisor$`)),
      undefined,
    );
    const both = await cli(['export', name, '--add-hypervisor', sshd.uri, '--remove-hypervisor', sshd.uri]);
    assert.equal(failedWith(both, /^virt-iscsi: --add-hypervisor and --remove-hypervisor exclude each other; give one$/), undefined);
    assert.equal(running(), 'running');
    assert.deepEqual(env.snapshot(), exported);
  });

  await t.test('migrate --dry-run prints the plan: the XML with the destination initiator, virsh migrate on the source; nothing changed', async () => {
    const tid = new RegExp(`^Target (\\d+): ${re(made.target)}$`, 'm').exec(env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']))![1]!;
    env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'bind', '--mode', 'target', '--tid', tid, '-I', other]);
    const withAcl = env.snapshot();
    // a destination URI that would run a program is refused before anything moves
    assert.equal(
      failedWith(await cli(['migrate', env.domain, '--to', sshd.uri, '--dest-uri', 'qemu+ext:///system?command=/bin/sh']), /^virt-iscsi: --dest-uri "qemu\+ext:\/\/\/system\?command=\/bin\/sh" /),
      undefined,
    );
    const r = await cli(['migrate', env.domain, '--to', sshd.uri, '--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], `would migrate ${env.domain} live from local to ${sshd.uri} (disks of ${name})`);
    assert.equal(lines[1], `  disk of ${name}: QEMU on ${sshd.uri} logs in as ${other} (not ${made.initiator})`);
    assert.equal(lines[2], '# dry run: nothing was changed. This would run:');
    const plan = lines.slice(3).join('\n');
    assert.match(plan, /mktemp -d/);
    assert.match(plan, /live\.xml/);
    assert.match(plan, /persistent\.xml/);
    assert.match(
      plan,
      new RegExp(`virsh -c qemu:///system migrate --live --p2p --tunnelled --persistent --undefinesource --domain ${env.domain} --desturi qemu\\+ssh://root@127\\.0\\.0\\.1:${sshd.port}/system --xml \\S+/live\\.xml --persistent-xml \\S+/persistent\\.xml`),
    );
    const json = JSON.parse((await cli(['migrate', env.domain, '--to', sshd.uri, '--dry-run', '--json'])).stdout) as { planVersion: number; plan: Array<{ host: string; shell: string }>; result: { relogin: unknown[]; dryRun: boolean } };
    assert.equal(json.planVersion, 1);
    assert.ok(json.plan.some((s) => s.host === 'local' && /virsh .* migrate --live/.test(s.shell)));
    assert.deepEqual(json.result.relogin, [{ export: name, from: made.initiator, to: other }]);
    assert.equal(running(), 'running');
    assert.deepEqual(env.snapshot(), withAcl);
  });

  await t.test('unexport with a hypervisor out of reach: its pieces listed, the rest removed; unexport again finishes', async () => {
    await sshd.pause();
    let r: CliResult;
    try {
      r = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
    } finally {
      await sshd.resume();
    }
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^virt-iscsi: export ${name}: could not reach ${re(sshd.uri)} \\(.+\\) still has libvirt secret virt-iscsi-${name}; the target and the records stay[^\n]*\n$`));
    // what it did remove, step by step
    assert.match(r.stdout, new RegExp(`take the export's disk away from domain ${env.domain} on local \\.\\.\\. done`));
    assert.match(r.stdout, new RegExp(`undefine libvirt secret virt-iscsi-${name} \\.\\.\\. done`));
    const half = env.snapshot();
    assert.equal(half.secrets, '', "this machine's secret is removed");
    assert.equal(half.domain, before.domain, 'the disk is detached here');
    assert.equal(env.blk().some((row) => row.includes(made.target + '/1')), false);
    assert.match(half.targets, new RegExp(re(made.target)), 'the target stays');
    const left = JSON.parse(readFileSync(join(xdg, 'virt-iscsi', 'exports', `${name}.json`), 'utf8')) as { hypervisors: Array<{ uri: string }> };
    assert.deepEqual(left.hypervisors.map((h) => h.uri), [sshd.uri], 'the record names only what is left');

    const again = await cli(['unexport', name, '--host-records', env.hostRecordDir]);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(env.snapshot(), before);
  });
});
