// The virtio-scsi controller an export adds to a domain that has none: unexport takes it
// away again once no other disk is on it, so the definition reads as before (checked with
// virsh dumpxml --inactive). Real private tgtd, libvirtd and QEMU domains of this run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { minimalDomainXml } from '../helpers/libvirt.js';
import { MiB, startEnv, virsh, type Env } from './env.js';

/** A domain without a SCSI controller (ACPI on, so one can be hot-plugged), removed at the end. */
function domainWithoutScsi(env: Env, tag: string, start: boolean): string {
  const name = `vit-${env.id}-${tag}`;
  const xml = join(env.dir, `${tag}.xml`);
  writeFileSync(xml, minimalDomainXml(name, { scsi: false }));
  virsh(['define', xml]);
  env.cleanup(() => spawnSync('virsh', ['-c', 'qemu:///system', 'undefine', name], { stdio: 'ignore' }));
  if (start) {
    virsh(['start', name]);
    env.cleanup(() => spawnSync('virsh', ['-c', 'qemu:///system', 'destroy', name], { stdio: 'ignore' }));
  }
  return name;
}

const scsiControllers = (xml: string): number => (xml.match(/<controller type='scsi' index='0' model='virtio-scsi'/g) ?? []).length;
const localRecord = (env: Env, name: string) => JSON.parse(readFileSync(join(env.stateDir, `${name}.json`), 'utf8'));

test('unexport removes the virtio-scsi controller its export added, once no disk is on it', async (t) => {
  const env = await startEnv('ct');
  t.after(() => env.close());

  await t.test('shut-off domain: the controller goes into the definition with the disk, and out with it', async () => {
    const vm = domainWithoutScsi(env, 'off', false);
    const before = virsh(['dumpxml', '--inactive', vm]);
    assert.equal(scsiControllers(before), 0);
    const r = await env.exportIt(env.image(`${env.id}-off.img`, 4 * MiB), { vm });
    assert.deepEqual(r.record.hypervisors[0]!.attachment?.controller, { live: false, config: true });
    assert.equal(scsiControllers(virsh(['dumpxml', '--inactive', vm])), 1);
    // A second run finds everything in place and keeps knowing the controller is the export's.
    assert.equal((await env.exportIt(env.image(`${env.id}-off.img`, 4 * MiB), { vm })).applied, 0);
    assert.deepEqual(localRecord(env, r.record.name).hypervisors[0].attachment.controller, { live: false, config: true });
    await env.unexportIt(r.record.name);
    assert.equal(virsh(['dumpxml', '--inactive', vm]), before, 'the definition is as it was');
  });

  await t.test('running domain: hot-plugged with the disk; unexport leaves the definition as it was', async () => {
    const vm = domainWithoutScsi(env, 'run', true);
    const before = virsh(['dumpxml', '--inactive', vm]);
    const r = await env.exportIt(env.image(`${env.id}-run.img`, 4 * MiB), { vm });
    assert.deepEqual(r.record.hypervisors[0]!.attachment?.controller, { live: true, config: true });
    assert.equal(scsiControllers(virsh(['dumpxml', vm])), 1, 'hot-plugged');
    await env.unexportIt(r.record.name);
    // The live unplug waits for the guest OS to answer ACPI; this domain has none, so only the definition is checked.
    assert.equal(virsh(['dumpxml', '--inactive', vm]), before);
  });

  await t.test('a controller another export disk is still on stays until that disk has gone', async () => {
    const vm = domainWithoutScsi(env, 'two', false);
    const first = await env.exportIt(env.image(`${env.id}-one.img`, 2 * MiB), { vm });
    const second = await env.exportIt(env.image(`${env.id}-two.img`, 2 * MiB), { vm });
    assert.deepEqual(first.record.hypervisors[0]!.attachment?.controller, { live: false, config: true });
    assert.equal(second.record.hypervisors[0]!.attachment?.controller, undefined, 'the second found the controller there');
    await env.unexportIt(first.record.name);
    const mid = virsh(['dumpxml', '--inactive', vm]);
    assert.equal(scsiControllers(mid), 1, 'the second export still uses it');
    assert.match(virsh(['domblklist', '--inactive', vm]), new RegExp(`${second.record.hypervisors[0]!.attachment!.dev} +unit:0:0:1`));
    await env.unexportIt(second.record.name);
  });
});
