// `repair`, piece by piece, for real: an export (direct mode with CHAP, and network mode)
// to the running QEMU domain, then one piece at a time taken away by hand with the tools
// themselves (tgtadm, virsh): `status` must name it, `repair` (the CLI, as users run it)
// must make it again and say so, `status` must then be healthy and a second repair must
// change nothing. What repair makes is checked with tools we did not write: tgtadm --op
// show, virsh (domblklist, pool-info, secret-list, a pool restarted by hand, which logs in
// with the re-made libvirt secret), and libiscsi's iscsi-inq logging in with CHAP.
// Open-iscsi cannot log in on this host: the session and node record of block mode are
// repaired in the lab (test/lab/repair.lab.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from '../../src/cli/session.js';
import { repairExports } from '../../src/workflows/repair.js';
import { exportStatus, type ExportStatus } from '../../src/workflows/status.js';
import { cliWith, type CliResult } from '../helpers/cli.js';
import { inquiry } from '../storage/tgt/initiator.js';
import { MiB, startEnv, virsh, type Env } from './env.js';
import { asIscsi, type IscsiExportRecord } from '../../src/workflows/records.js';

interface RepairDoc {
  repairVersion: number;
  dryRun: boolean;
  exports: Array<{ name: string; outcome: string; changes: Array<{ step: string; what: string }>; problems: string[]; healthy?: boolean; error?: string }>;
}

test('repair: each piece of an export taken away by hand is named by status and made again by repair', async (t) => {
  const env = await startEnv('rp');
  t.after(() => env.close());
  const xdg = join(env.dir, 'xdg');
  const stateDir = join(xdg, 'virt-iscsi', 'exports');
  const hostArgs = ['--host-records', env.hostRecordDir];
  const cli = (args: string[]): Promise<CliResult> => cliWith(args, { XDG_STATE_HOME: xdg });
  const tgt = (...args: string[]): string => env.tgtd.tgtadm(['--lld', 'iscsi', ...args]);
  // virsh pads its table to the longest pool name on the host, which other runs change.
  const snapshot = (): ReturnType<Env['snapshot']> => {
    const x = env.snapshot();
    return { ...x, pools: x.pools.replace(/ +/g, ' ') };
  };
  const tidOf = (iqn: string): number => Number(new RegExp(`^Target (\\d+): ${iqn.replace(/\./g, '\\.')}$`, 'm').exec(tgt('--op', 'show', '--mode', 'target'))![1]);

  async function status(name: string): Promise<ExportStatus> {
    const s = new Session();
    try {
      return (await exportStatus(s, { stateDir, names: [name] }))[0]!;
    } finally {
      await s.close();
    }
  }

  /** The workflow `repair --json` prints (the CLI itself runs in the subtests that check what it prints). */
  async function repair(name: string): Promise<RepairDoc['exports'][number]> {
    const s = new Session();
    try {
      const doc = await repairExports(s, { names: [name], stateDir, hostRecordDir: env.hostRecordDir });
      assert.equal(doc.repairVersion, 1);
      return doc.exports[0]!;
    } finally {
      await s.close();
    }
  }

  /** Breaks a piece, checks status names it, repair makes it again (saying so), status is healthy, a second repair changes nothing. */
  async function breakAndRepair(name: string, o: { brk: () => void; named: RegExp; health: Partial<ExportStatus['health']>; did: RegExp }): Promise<void> {
    o.brk();
    const st = await status(name);
    assert.equal(st.healthy, false, 'status sees it');
    for (const [k, v] of Object.entries(o.health)) assert.equal(st.health[k as keyof ExportStatus['health']], v, `health.${k}: ${st.problems.join('; ')}`);
    assert.ok(st.problems.some((p) => o.named.test(p)), `status names it: ${st.problems.join('; ')}`);
    const r = await repair(name);
    assert.equal(r.outcome, 'repaired', `${r.error ?? ''} ${r.problems.join('; ')}`);
    assert.ok(r.changes.some((c) => o.did.test(c.what)), `repair says what it did: ${r.changes.map((c) => c.what).join('; ')}`);
    const after = await status(name);
    assert.equal(after.healthy, true, after.problems.join('; '));
    const again = await repair(name);
    assert.deepEqual([again.outcome, again.changes], ['healthy', []], 'a second repair changes nothing');
  }

  const image = env.image(`${env.id}-data.img`, 16 * MiB);
  const x = asIscsi((await env.exportIt(image, { mode: 'direct', chap: true, stateDir })).record);
  const name = x.name;
  const initiator = x.hypervisors[0]!.initiator;
  const dev = x.hypervisors[0]!.attachment!.dev;
  const pool = `virt-iscsi-${name}`;
  const confFile = join(env.confDir, readdirSync(env.confDir).find((f) => f.includes(name))!);
  const secret = /incominguser \S+ (\S+)/.exec(readFileSync(confFile, 'utf8'))![1]!;
  const login = { portal: env.tgtd.portal, iqn: x.target, lun: 1, initiator };
  const imageBytes = readFileSync(image);

  await t.test('a healthy export: repair changes nothing and says so', async () => {
    const snap = snapshot();
    const j = await cli(['repair', name, '--json', ...hostArgs]);
    assert.equal(j.status, 0, j.stderr);
    const doc = JSON.parse(j.stdout) as RepairDoc;
    assert.deepEqual([doc.repairVersion, doc.dryRun, doc.exports.length], [1, false, 1]);
    assert.deepEqual([doc.exports[0]!.outcome, doc.exports[0]!.changes, doc.exports[0]!.healthy], ['healthy', [], true]);
    const text = await cli(['repair', name, ...hostArgs]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^${name}: healthy, nothing to change$`, 'm'));
    assert.deepEqual(snapshot(), snap, 'nothing on any host changed');
  });

  await t.test('the LUN deleted with tgtadm', () =>
    breakAndRepair(name, {
      brk: () => void tgt('--op', 'delete', '--mode', 'logicalunit', '--tid', String(tidOf(x.target)), '--lun', '1'),
      named: /has no LUN 1/,
      health: { lun: 'missing', target: 'ok' },
      did: new RegExp(`added LUN 1 \\(${image.replace(/\./g, '\\.')}, serial ${x.serial}\\)`),
    }),
  );

  await t.test("the hypervisor's initiator unbound from the target with tgtadm", async () => {
    await breakAndRepair(name, {
      brk: () => void tgt('--op', 'unbind', '--mode', 'target', '--tid', String(tidOf(x.target)), '--initiator-name', initiator),
      named: new RegExp(`does not allow ${initiator.replace(/\./g, '\\.')}`),
      health: { acl: 'missing' },
      did: /allowed initiator .* again/,
    });
    assert.notEqual(inquiry({ ...login, initiator: `iqn.2024-01.dev.virt-iscsi:${env.id}-intruder`, chap: { user: x.chapUser!, secret } }).status, 0, 'another initiator is still refused');
  });

  await t.test('the CHAP account deleted with tgtadm: made again with the secret the target had', async () => {
    await breakAndRepair(name, {
      brk: () => void tgt('--op', 'delete', '--mode', 'account', '--user', x.chapUser!),
      named: /has no CHAP account .* bound: initiators log in without CHAP/,
      health: { chap: 'missing' },
      did: new RegExp(`created and bound CHAP account ${x.chapUser}`),
    });
    assert.equal(inquiry({ ...login, chap: { user: x.chapUser!, secret } }).status, 0, 'the old secret logs in');
    assert.notEqual(inquiry(login).status, 0, 'without CHAP the target refuses again');
  });

  await t.test('the target deleted with tgtadm (its conf.d record stays): re-created with the same serial and CHAP secret; QEMU logs in again', async () => {
    await breakAndRepair(name, {
      brk: () => void tgt('--op', 'delete', '--mode', 'target', '--tid', String(tidOf(x.target)), '--force'),
      named: new RegExp(`target ${x.target.replace(/\./g, '\\.')} is not live on local but its configuration holds it`),
      health: { target: 'missing' },
      did: /re-created target/,
    });
    assert.match(tgt('--op', 'show', '--mode', 'target'), new RegExp(`SCSI SN: ${x.serial}`));
    assert.equal(inquiry({ ...login, chap: { user: x.chapUser!, secret } }).status, 0);
    assert.ok(env.sessions(x.target).includes(initiator), "QEMU's session is back");
  });

  await t.test('the pool stopped with virsh', () =>
    breakAndRepair(name, { brk: () => void virsh(['pool-destroy', pool]), named: /pool .* is inactive on local/, health: { pool: 'inactive' }, did: /started pool/ }),
  );

  await t.test('the pool stopped and undefined with virsh', async () => {
    await breakAndRepair(name, {
      brk: () => {
        virsh(['pool-destroy', pool]);
        virsh(['pool-undefine', pool]);
      },
      named: /pool .* is not defined on local/,
      health: { pool: 'missing' },
      did: /re-defined pool/,
    });
    assert.match(virsh(['pool-info', pool]), /Autostart:\s+yes/, 'marked to autostart again');
  });

  await t.test('the libvirt secret undefined with virsh: defined again with the password the target has', async () => {
    const uuid = virsh(['secret-list']).split('\n').find((l) => l.includes(`virt-iscsi-${name}`))!.trim().split(/\s+/)[0]!;
    await breakAndRepair(name, { brk: () => void virsh(['secret-undefine', uuid]), named: /libvirt secret .* is not defined on local/, health: { secret: 'missing' }, did: /re-defined libvirt secret/ });
    // The proof of the value: the pool logs in again with it (the target demands CHAP).
    virsh(['pool-destroy', pool]);
    virsh(['pool-start', pool]);
    assert.match(virsh(['vol-list', pool]), /unit:0:0:1/);
  });

  await t.test('the disk detached from the running domain only: attached again on the same dev', async () => {
    const xml = join(env.dir, 'disk.xml');
    await breakAndRepair(name, {
      brk: () => {
        const dump = virsh(['dumpxml', env.domain]);
        const disk = dump.split(/(?=<disk )/).find((d) => d.includes(`<target dev='${dev}'`))!.split('</disk>')[0]! + '</disk>';
        writeFileSync(xml, disk);
        virsh(['detach-device', env.domain, xml, '--live']);
      },
      named: /only in the definition of .* not in the running domain/,
      health: { disk: 'inactive' },
      did: /re-attached the export's disk/,
    });
    assert.deepEqual(env.blk().find((b) => b[2] === dev), ['volume', 'disk', dev, 'unit:0:0:1'], 'running, on its dev');
    assert.equal(env.blk(true).filter((b) => b[3] === 'unit:0:0:1').length, 1, 'once in the definition');
  });

  await t.test("the disk removed from the domain's definition only: put back on the same dev", async () => {
    await breakAndRepair(name, {
      brk: () => void virsh(['detach-disk', env.domain, dev, '--config']),
      named: /only in the running domain .* not in its definition/,
      health: { disk: 'transient' },
      did: /re-attached the export's disk/,
    });
    assert.deepEqual(env.blk(true).find((b) => b[2] === dev), ['volume', 'disk', dev, 'unit:0:0:1'], 'in the definition, on its dev');
    assert.equal(env.blk().filter((b) => b[3] === 'unit:0:0:1').length, 1, 'once in the running domain');
  });

  await t.test('several pieces at once, from another machine (the storage record only): one repair makes them all', async () => {
    tgt('--op', 'delete', '--mode', 'target', '--tid', String(tidOf(x.target)), '--force');
    virsh(['pool-destroy', pool]);
    virsh(['detach-disk', env.domain, dev, '--live', '--config']);
    const local = readFileSync(join(stateDir, `${name}.json`), 'utf8');
    rmSync(join(stateDir, `${name}.json`));
    const r = await cli(['repair', '--storage', 'local', '--json', ...hostArgs]);
    assert.equal(r.status, 0, r.stderr);
    const e = (JSON.parse(r.stdout) as RepairDoc).exports.find((x2) => x2.name === name)!;
    assert.equal(e.outcome, 'repaired', e.problems.join('; '));
    assert.deepEqual(
      e.changes.map((c) => c.step),
      ['target', 'pool-start', 'attach', 'local-record'],
    );
    assert.equal((await status(name)).healthy, true);
    assert.equal((JSON.parse(readFileSync(join(stateDir, `${name}.json`), 'utf8')) as IscsiExportRecord).serial, (JSON.parse(local) as IscsiExportRecord).serial);
  });

  await t.test('--dry-run prints the plan and changes nothing; --dry-run --json is a plan document', async () => {
    virsh(['pool-destroy', pool]);
    const snap = snapshot();
    const r = await cli(['repair', name, '--dry-run', ...hostArgs]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /would repair/);
    assert.match(r.stdout, new RegExp(`^virsh -c qemu:///system pool-start --pool ${pool}$`, 'm'));
    assert.deepEqual(snapshot(), snap);
    const j = await cli(['repair', name, '--dry-run', '--json', ...hostArgs]);
    const doc = JSON.parse(j.stdout) as { planVersion: number; steps: Array<{ id?: string; state: string }>; result: RepairDoc };
    assert.equal(doc.planVersion, 1);
    assert.deepEqual(doc.steps.filter((s) => s.state === 'planned').map((s) => s.id), ['pool-start', 'volume'], 'the stopped pool, and the wait for its volume');
    assert.equal(doc.result.exports[0]!.outcome, 'planned');
    assert.equal((await repair(name)).outcome, 'repaired');
  });

  await t.test('the image bytes are never touched', () => {
    assert.ok(readFileSync(image).equals(imageBytes));
  });

  await t.test('network mode: the target and the disk gone at once', async () => {
    const net = asIscsi((await env.exportIt(env.image(`${env.id}-net.img`, 8 * MiB), { mode: 'network', stateDir })).record);
    const ndev = net.hypervisors[0]!.attachment!.dev;
    await breakAndRepair(net.name, {
      brk: () => {
        virsh(['detach-disk', env.domain, ndev, '--live', '--config']);
        tgt('--op', 'delete', '--mode', 'target', '--tid', String(tidOf(net.target)), '--force');
      },
      named: /does not hold the export's disk/,
      health: { target: 'missing', disk: 'missing' },
      did: /re-attached/,
    });
    assert.ok(env.blk().some((b) => b[0] === 'network' && b[3] === `${net.target}/1`));
    await env.unexportIt(net.name, { stateDir });
  });

  await t.test("a record whose image is gone: repair refuses in one line and touches nothing", async () => {
    const gone = env.image(`${env.id}-gone.img`, 4 * MiB);
    const g = asIscsi((await env.exportIt(gone, { mode: 'network', stateDir })).record);
    rmSync(gone);
    const snap = snapshot();
    const r = await cli(['repair', g.name, ...hostArgs]);
    assert.equal(r.status, 1);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^virt-iscsi: could not repair ${g.name} \\(image ".*gone\\.img" does not exist on local; repair never makes or changes an image`));
    assert.deepEqual(snapshot(), snap);
    await env.unexportIt(g.name, { stateDir });
  });

  await t.test('bad input: an unknown export, a storage host that cannot be reached', async () => {
    const unknown = await cli(['repair', 'no-such-export', ...hostArgs]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /^virt-iscsi: no export named "no-such-export" is recorded in .*\n$/);
    assert.equal(unknown.stdout, '');
    const down = await cli(['repair', '--storage', 'ssh://root@127.0.0.1:1', ...hostArgs]);
    assert.equal(down.status, 1);
    assert.equal(down.stderr.split('\n').filter(Boolean).length, 1, down.stderr);
    assert.match(down.stderr, /127\.0\.0\.1:1/);
  });

  await env.unexportIt(name, { stateDir });
});
