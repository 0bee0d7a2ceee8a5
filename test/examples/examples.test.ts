// The examples run for real, as a user runs them, against a private tgtd and the running
// libvirtd with a running QEMU domain: each script through the env vars it documents, each
// stack file through `virt-iscsi apply -f` / `destroy -f` (its exports and pools pointed at
// this test's images, targets and domain, everything else as written). Results are read
// with virsh and tgtadm; after each undo or destroy the hosts are as they were.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalRunner } from '../../src/runner/local.js';
import { TgtBackend } from '../../src/storage/tgt/backend.js';
import { parseStack, type StackSpec } from '../../src/workflows/stack-file.js';
import { MiB, startEnv, virsh, type Env } from '../workflows/env.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const example = (file: string): string => join(root, 'examples', file);

interface Run {
  status: number | null;
  out: string;
}

function vars(env: Env): NodeJS.ProcessEnv {
  return {
    ...process.env,
    VIRT_ISCSI: `${process.execPath} --import tsx src/cli/run.ts`,
    XDG_STATE_HOME: join(env.dir, 'xdg'),
    TGT_CONTROL_PORT: String(env.tgtd.controlPort),
    PORTAL: env.tgtd.portal,
    TGT_CONF_DIR: env.confDir,
    HOST_RECORDS: env.hostRecordDir,
  };
}

function script(env: Env, file: string, extra: Record<string, string>, args: string[] = []): Run {
  const r = spawnSync('bash', [example(file), ...args], { cwd: root, env: { ...vars(env), ...extra }, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function cli(env: Env, args: string[]): Run {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], { cwd: root, env: vars(env), encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const ok = (r: Run, what: string): string => {
  assert.equal(r.status, 0, `${what}:\n${r.out}`);
  return r.out;
};

/** Targets a NAS would serve: one LUN each, an ACL for one initiator, and one CHAP account bound to all. */
async function nasTargets(env: Env, count: number, initiator: string, chap: { user: string; secret: string }): Promise<string[]> {
  const backend = new TgtBackend(new LocalRunner(), { controlPort: env.tgtd.controlPort, confDir: env.confDir });
  const iqns: string[] = [];
  for (let i = 1; i <= count; i++) {
    const iqn = `iqn.2024-01.dev.virt-iscsi:${env.id}.vol${i}`;
    // Our backend makes an account per target; the same user on the others is bound by hand, as a NAS has it.
    const made = await backend.create({ iqn, luns: [{ lun: 1, path: env.image(`${env.id}-vol${i}.img`, 4 * MiB) }], allow: [initiator], persist: false, ...(i === 1 ? { chap } : {}) });
    if (i > 1) env.tgtd.tgtadm(['--lld', 'iscsi', '--op', 'bind', '--mode', 'account', '--tid', String(made.tid), '--user', chap.user]);
    iqns.push(iqn);
  }
  env.cleanup(async () => {
    for (const iqn of [...iqns].reverse()) await backend.delete(iqn, { force: true });
  });
  return iqns;
}

/** A stack file's spec back in the file's own words (JSON, which stack files may be). */
function stackJson(spec: StackSpec): string {
  const exports = spec.exports.map(({ settings: s }) => ({
    image: s.image,
    vm: s.vm,
    name: s.name,
    storage: s.storage,
    hypervisor: s.hypervisor,
    connect: s.connect,
    cdrom: s.cdrom,
    readonly: s.readonly,
    chap: s.chap,
    persist: s.persist,
    ...(s.mode ? { mode: s.mode } : {}),
    ...(s.portal ? { portal: s.portal } : {}),
    ...(s.controlPort ? { 'control-port': s.controlPort } : {}),
    ...(s.confDir ? { 'conf-dir': s.confDir } : {}),
    ...(s.hostRecordDir ? { 'host-records': s.hostRecordDir } : {}),
  }));
  const pools = spec.pools.map((p) => ({
    name: p.name,
    hypervisor: p.hypervisor,
    connect: p.connect,
    type: p.type,
    portal: p.portal,
    target: p.target,
    autostart: p.autostart,
    ...(p.initiator ? { initiator: p.initiator } : {}),
    ...(p.chap ? { 'chap-user': p.chap.user, 'chap-secret-file': p.chap.secretFile } : {}),
  }));
  return JSON.stringify({ stack: spec.name, exports, pools }, null, 2);
}

/**
 * The example stack file, read as apply reads it, pointed at this test's hosts: names get
 * the run's id (libvirt is shared), images become files here, every export goes to the
 * test domain through the private tgtd; the rest (modes, read-only, persist, CD-ROM...) stays.
 */
function retarget(env: Env, file: string, pools: { targets: string[]; initiator: string; chap: { user: string; secretFile: string } } | undefined): string {
  const spec = parseStack(readFileSync(example(file), 'utf8'), example(file));
  assert.ok(spec.exports.length + spec.pools.length > 0, `${file} declares something`);
  spec.name = `${env.id}-${spec.name}`.slice(0, 48);
  for (const x of spec.exports) {
    const s = x.settings;
    const own = `${env.id}-${basename(s.image).replace(/\.[^.]*$/, '')}`;
    s.image = s.cdrom ? env.iso(own) : env.image(`${own}.img`, 8 * MiB);
    Object.assign(s, { name: `${env.id}-${s.name}`, vm: env.domain, storage: 'local', hypervisor: 'local', portal: env.tgtd.portal, controlPort: env.tgtd.controlPort, confDir: env.confDir, hostRecordDir: env.hostRecordDir });
  }
  spec.pools.forEach((p, i) => {
    assert.ok(pools && pools.targets[i], `${file}: a target for pool ${p.name}`);
    Object.assign(p, { name: `${env.id}-${p.name}`, hypervisor: 'local', portal: env.tgtd.portal, target: pools.targets[i], initiator: pools.initiator, ...(p.chap ? { chap: pools.chap } : {}) });
  });
  const out = join(env.dir, `${basename(file, '.yaml')}.json`);
  writeFileSync(out, stackJson(spec));
  return out;
}

/** apply, apply again (all unchanged), a dry run (nothing to do), destroy: the hosts as before. */
function applyAndDestroy(env: Env, stack: string, count: number): string[][] {
  const before = env.snapshot();
  const first = ok(cli(env, ['apply', '-f', stack]), 'apply');
  assert.match(first, new RegExp(`: ${count} to create, 0 to change, 0 to remove, 0 unchanged`));
  const blk = env.blk();
  const again = ok(cli(env, ['apply', '-f', stack]), 'apply again');
  assert.match(again, new RegExp(`: 0 to create, 0 to change, 0 to remove, ${count} unchanged`));
  assert.doesNotMatch(again, /\.\.\. done/, 'no step did anything');
  const dry = ok(cli(env, ['apply', '-f', stack, '--dry-run']), 'apply --dry-run');
  assert.match(dry, new RegExp(`${count} unchanged[\\s\\S]*# dry run: nothing was changed`));
  ok(cli(env, ['destroy', '-f', stack]), 'destroy');
  assert.deepEqual(env.snapshot(), before, 'destroy leaves the hosts as they were');
  return blk;
}

test('examples: the scripts and the stack files, run for real', async (t) => {
  const env = await startEnv('eg');
  t.after(() => env.close());
  const initiator = `iqn.2024-01.dev.virt-iscsi:${env.id}-kvm`;
  const chap = { user: `${env.id}-kvm`, secret: 'Nas5ecretPasswd' };
  const secretFile = join(env.dir, 'nas-chap.secret');
  writeFileSync(secretFile, `${chap.secret}\n`, { mode: 0o600 });
  const targets = await nasTargets(env, 2, initiator, chap);

  await t.test('data-disk.sh: makes the image, exports it to the VM, again changes nothing, undo', async () => {
    const before = env.snapshot();
    const image = join(env.dir, 'img', `${env.id}-data.img`);
    const run = { VM: env.domain, IMAGE: image, SIZE: '24M' };
    const out = ok(script(env, 'data-disk.sh', run), 'data-disk.sh');
    assert.equal(statSync(image).size, 24 * MiB, 'image create made it');
    assert.match(out, new RegExp(`exported ${image} as ${env.id}-data`));
    assert.match(out, new RegExp(`${env.id}-data  healthy`), 'status says healthy');
    const disk = env.blk().find((b) => b[1] === 'disk' && b[0] === 'volume');
    assert.ok(disk, out);
    assert.equal(env.capacity(disk[2]!), 24 * MiB, 'the VM sees the whole image');
    assert.match(ok(script(env, 'data-disk.sh', run), 'again'), /was already exported: nothing changed/);
    ok(script(env, 'data-disk.sh', run, ['undo']), 'undo');
    assert.deepEqual(env.snapshot(), before);
    assert.ok(existsSync(image), 'the image file stays');
  });

  await t.test('iso-cdrom.sh: the ISO as a read-only CD-ROM in the empty drive, undo leaves the drive empty', async () => {
    const before = env.snapshot();
    const iso = env.iso(`${env.id}-Install_Disc`);
    const run = { VM: env.domain, ISO: iso };
    const out = ok(script(env, 'iso-cdrom.sh', run), 'iso-cdrom.sh');
    assert.match(out, new RegExp(`${env.id}-install-disc  healthy`));
    assert.deepEqual(env.blk().find((b) => b[2] === 'hdc'), ['volume', 'cdrom', 'hdc', 'unit:0:0:1']);
    assert.match(virsh(['dumpxml', env.domain]).split(/(?=<disk )/).find((d) => d.includes("dev='hdc'"))!, /<readonly\/>/);
    ok(script(env, 'iso-cdrom.sh', run, ['undo']), 'undo');
    assert.deepEqual(env.blk().find((b) => b[2] === 'hdc'), ['file', 'cdrom', 'hdc', '-']);
    assert.deepEqual(env.snapshot(), before);
  });

  await t.test('pool-automation.sh: a CHAP pool per target, running and autostarted; again is fine; undo', async () => {
    const before = env.snapshot();
    const run = { TARGETS: targets.join(' '), INITIATOR: initiator, CHAP_USER: chap.user, CHAP_SECRET_FILE: secretFile, POOL_PREFIX: `${env.id}-` };
    ok(script(env, 'pool-automation.sh', run), 'pool-automation.sh');
    for (const i of [1, 2]) {
      const pool = `${env.id}-${env.id}.vol${i}`;
      assert.match(virsh(['pool-info', pool]), /State:\s+running[\s\S]*Autostart:\s+yes/, pool);
      assert.match(virsh(['vol-list', pool]), /unit:0:0:1/, `${pool}: libvirt logged in with CHAP`);
      assert.match(virsh(['secret-list']), new RegExp(`virt-iscsi-pool-${pool.replace(/\./g, '\\.')}\\b`));
    }
    ok(script(env, 'pool-automation.sh', run), 'again');
    ok(script(env, 'pool-automation.sh', run, ['undo']), 'undo');
    assert.deepEqual([env.snapshot().pools, env.snapshot().secrets], [before.pools, before.secrets]);
  });

  await t.test('data-disk.yaml through apply and destroy: three disks, one live only, one read-only', () => {
    const blk = applyAndDestroy(env, retarget(env, 'data-disk.yaml', undefined), 3);
    assert.equal(blk.filter((b) => b[1] === 'disk' && b[0] === 'volume').length, 3, JSON.stringify(blk));
  });

  await t.test('iso-cdrom.yaml through apply and destroy: two CD-ROMs (the empty drive, then a SCSI one)', () => {
    const blk = applyAndDestroy(env, retarget(env, 'iso-cdrom.yaml', undefined), 2);
    assert.deepEqual(
      blk.filter((b) => b[1] === 'cdrom').map((b) => [b[0], b[2]![0] === 'h' ? 'ide' : 'scsi']),
      [
        ['volume', 'ide'],
        ['volume', 'scsi'],
      ],
    );
  });

  await t.test('pool-automation.yaml through apply and destroy: CHAP pools, autostarted', () => {
    const stack = retarget(env, 'pool-automation.yaml', { targets, initiator, chap: { user: chap.user, secretFile } });
    const before = env.snapshot();
    ok(cli(env, ['apply', '-f', stack]), 'apply');
    for (const p of ['nas-vol1', 'nas-vol2']) assert.match(virsh(['pool-info', `${env.id}-${p}`]), /State:\s+running[\s\S]*Autostart:\s+yes/);
    assert.match(ok(cli(env, ['apply', '-f', stack]), 'again'), /0 to create, 0 to change, 0 to remove, 2 unchanged/);
    ok(cli(env, ['destroy', '-f', stack]), 'destroy');
    assert.deepEqual([env.snapshot().pools, env.snapshot().secrets], [before.pools, before.secrets]);
  });
});
