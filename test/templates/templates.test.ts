// templates/ and `virt-iscsi init`: every template is valid for the tool that reads it:
// stack files by our reader (and the schema: stack-schema.test.ts), the domain by libvirt's
// virt-xml-validate and by a real libvirtd that defines and starts it, the targets.conf
// block by the real tgt-admin loading it into a private tgtd (checked with tgtadm --op
// show), the multipath drop-in by multipath-tools' own config parser. `init` writes them,
// refuses to overwrite, prints to stdout without a file, and lists them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTemplate, templateNames } from '../../src/cli/commands/init.js';
import { parseStack } from '../../src/workflows/stack-file.js';
import { cli, failedWith } from '../helpers/cli.js';
import { ensureLibvirtd, LIBVIRT_URI } from '../helpers/libvirt.js';
import { startTgtd } from '../helpers/tgtd.js';
import { virtXmlValidate } from '../helpers/xml-validate.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const template = (file: string): string => readFileSync(join(root, 'templates', file), 'utf8');
const isRoot = process.getuid?.() === 0;

function tempDir(t: { after(fn: () => void): void }, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `vit-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('templates: the stack files for each use case are read by the stack reader', () => {
  const stacks = readdirSync(join(root, 'templates')).filter((f) => f.endsWith('.yaml'));
  assert.deepEqual(stacks.sort(), ['ceph-rbd.yaml', 'data-disk.yaml', 'iso-cdrom.yaml', 'multipath.yaml', 'pool-automation.yaml', 'several-hypervisors.yaml']);
  const read = Object.fromEntries(stacks.map((f) => [f, parseStack(template(f), join(root, 'templates', f))]));
  // Each declares what its use case is about.
  assert.ok(read['data-disk.yaml']!.exports.length >= 1);
  assert.ok(read['iso-cdrom.yaml']!.exports.every((x) => x.settings.cdrom && x.settings.readonly));
  assert.ok(read['pool-automation.yaml']!.pools.length >= 1);
  assert.ok(read['several-hypervisors.yaml']!.exports.some((x) => x.settings.hypervisors.length >= 2));
  assert.ok(read['multipath.yaml']!.exports.every((x) => (x.settings.mode as string) === 'multipath' && (x.settings.portals?.length ?? 0) >= 2 && x.settings.minPaths === 2));
  assert.ok(read['ceph-rbd.yaml']!.exports.every((x) => x.settings.image.startsWith('rbd:')));
  assert.ok(read['ceph-rbd.yaml']!.exports.some((x) => (x.settings.mode as string) === 'rbd' && x.settings.cephId === 'libvirt'));
  // The examples are the same files, not copies.
  for (const f of ['data-disk.yaml', 'iso-cdrom.yaml', 'pool-automation.yaml']) assert.equal(readFileSync(join(root, 'examples', f), 'utf8'), template(f), f);
});

test('templates: the VM domain is valid for libvirt, and a real libvirtd defines and starts it', { skip: isRoot ? false : 'libvirtd needs root' }, async (t) => {
  const xml = await renderTemplate('vm-domain.xml');
  virtXmlValidate(xml, 'domain');
  virtXmlValidate(template('vm-domain.xml'), 'domain');
  const stop = await ensureLibvirtd();
  const dir = tempDir(t, 'domain');
  const name = `vit-tpl-${randomBytes(3).toString('hex')}`;
  // One hook, in this order: after hooks run first-registered first, and a libvirtd stopped
  // before the destroy would leave the domain's QEMU running.
  t.after(async () => {
    spawnSync('virsh', ['-c', LIBVIRT_URI, 'destroy', name]);
    spawnSync('virsh', ['-c', LIBVIRT_URI, 'undefine', name]);
    await stop();
  });
  const file = join(dir, 'domain.xml');
  writeFileSync(file, xml.replace('<name>virt-iscsi-vm</name>', `<name>${name}</name>`));
  const virsh = (...args: string[]): string => execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8' });
  virsh('define', file);
  virsh('start', name);
  assert.match(virsh('domstate', name), /running/);
  const live = virsh('dumpxml', name);
  assert.match(live, /<acpi\/>/);
  assert.match(live, /<controller type='scsi' index='0' model='virtio-scsi'/);
  assert.doesNotMatch(live, /<graphics/);
  // The type init writes is the one this host can run.
  const kvm = spawnSync('sh', ['-c', 'test -r /dev/kvm && test -w /dev/kvm']).status === 0;
  assert.match(xml, kvm ? /<domain type='kvm'>/ : /<domain type='qemu'>/);
});

test('templates: tgt-admin loads the targets.conf block into a real tgtd, as tgtadm --op show reads it back', { skip: isRoot ? false : 'tgtd needs root' }, async (t) => {
  const dir = tempDir(t, 'tgtconf');
  const tgtd = await startTgtd();
  t.after(() => tgtd.stop());
  const disk = join(dir, 'web1-data.img');
  const iso = join(dir, 'debian-12.iso');
  for (const f of [disk, iso]) {
    writeFileSync(f, '');
    truncateSync(f, 4 << 20);
  }
  const iqn = `iqn.2024-01.com.example:stor1.web1-${randomBytes(3).toString('hex')}`;
  // The template as written, with this test's files and a target name of its own.
  const text = template('tgt-targets.conf').replaceAll('/srv/iscsi/web1-data.img', disk).replaceAll('/srv/iso/debian-12.iso', iso).replaceAll('iqn.2024-01.com.example:stor1.web1', iqn);
  const conf = join(dir, 'targets.conf');
  writeFileSync(conf, text, { mode: 0o600 });
  execFileSync('tgt-admin', ['-C', String(tgtd.controlPort), '-c', conf, '-e'], { encoding: 'utf8' });
  const show = tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'target']);
  assert.match(show, new RegExp(`Target \\d+: ${iqn.replace(/\./g, '\\.')}\\n`));
  const lun = (n: number): string => new RegExp(`\\n\\s+LUN: ${n}\\n([\\s\\S]*?)(?=\\n\\s+LUN: |\\n\\s+Account information:)`).exec(show)?.[1] ?? '';
  assert.match(lun(1), /Type: disk/);
  assert.match(lun(1), /SCSI SN: web1data0001/);
  assert.match(lun(1), new RegExp(`Backing store path: ${disk.replace(/\./g, '\\.')}`));
  assert.match(lun(1), /Readonly: No/);
  assert.match(lun(2), /Type: cd\/dvd/);
  assert.match(lun(2), /Readonly: Yes/);
  assert.match(show, /Account information:\n\s+kvm1\n/);
  assert.match(show, /ACL information:\n\s+192\.0\.2\.21\n\s+iqn\.1993-08\.org\.debian:01:kvm1\n/);
  assert.match(tgtd.tgtadm(['--lld', 'iscsi', '--op', 'show', '--mode', 'account']), /kvm1/);
});

const multipath = spawnSync('multipath', ['-h']).status !== null && existsSync('/usr/sbin/multipath');

test('templates: multipath-tools reads the multipath.conf drop-in without a complaint', { skip: !isRoot ? 'a private mount namespace needs root' : multipath ? false : 'multipath-tools is not installed (make setup installs it)' }, (t) => {
  // multipath reads only /etc/multipath.conf and /etc/multipath/conf.d/*.conf: in a mount
  // namespace of its own, /etc is a directory holding just our drop-in. This host has no
  // device-mapper driver, so `multipath -T` stops after reading the config (it cannot dump
  // it): its warnings about our file are what is checked; a broken copy shows they appear.
  const run = (conf: string): { out: string; status: number | null } => {
    const etc = join(tempDir(t, 'mpetc'), 'etc');
    mkdirSync(join(etc, 'multipath', 'conf.d'), { recursive: true });
    writeFileSync(join(etc, 'multipath', 'conf.d', 'virt-iscsi.conf'), conf);
    const r = spawnSync('unshare', ['-m', 'sh', '-c', `mount --bind "${etc}" /etc && exec multipath -T`], { encoding: 'utf8' });
    return { out: `${r.stdout}${r.stderr}`, status: r.status };
  };
  const ok = run(template('multipath.conf'));
  assert.doesNotMatch(ok.out, /virt-iscsi\.conf|invalid keyword|missing vendor|unbalanced|error parsing/i, ok.out);
  if (ok.status === 0) {
    // With device-mapper (the lab guest), the dump holds our section.
    assert.match(ok.out, /vendor "IET"[\s\S]*product "VIRTUAL-DISK"[\s\S]*path_grouping_policy "multibus"/);
  } else {
    assert.match(ok.out, /device-mapper|dm version/, 'it stopped for the missing device-mapper driver, not for our file');
  }
  const broken = run(template('multipath.conf').replace('rr_min_io_rq 1', 'rr_min_io_rq 1\n\t\tno_such_keyword 1'));
  assert.match(broken.out, /virt-iscsi\.conf line \d+, invalid keyword in the device section: no_such_keyword/);
});

test('init: --list names every template; a template goes to stdout, or to a new file, never over one', async (t) => {
  const dir = tempDir(t, 'init');
  const names = (await templateNames()).map((x) => x.name);
  const list = await cli('init', '--list');
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual(
    list.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]),
    names,
  );
  assert.match(list.stdout, /^multipath\s+a data disk reached over two network paths/m);

  const out = await cli('init', '--template', 'iso-cdrom');
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout, await renderTemplate('iso-cdrom'));
  // The schema line names the installed schema, which exists.
  const schema = /^# yaml-language-server: \$schema=(\S+)$/m.exec(out.stdout)?.[1];
  assert.ok(schema && schema.startsWith('/') && statSync(schema).isFile(), String(schema));
  assert.equal(parseStack(out.stdout, join(dir, 'x.yaml')).name, 'install-media');

  const file = join(dir, 'stack.yaml');
  const wrote = await cli('init', file);
  assert.equal(wrote.status, 0, wrote.stderr);
  assert.equal(wrote.stdout, `wrote ${file} from template data-disk\n`);
  assert.equal(readFileSync(file, 'utf8'), await renderTemplate('data-disk'));
  writeFileSync(file, 'mine\n');
  const again = await cli('init', '--template', 'multipath', file);
  assert.equal(failedWith(again, /^virt-iscsi: ".*stack\.yaml" already exists; refusing to overwrite it \(give another file name\)$/), undefined);
  assert.equal(readFileSync(file, 'utf8'), 'mine\n', 'the file is as it was');
  const unknown = await cli('init', '--template', 'nope');
  assert.equal(unknown.status, 2, 'an unknown template is a usage error');
  assert.match(unknown.stderr, /argument 'nope' is invalid\. Allowed choices are ceph-rbd, data-disk/);
  const noDir = await cli('init', join(dir, 'no', 'such', 'dir.yaml'));
  assert.equal(failedWith(noDir, /^virt-iscsi: ".*dir\.yaml" cannot be written: ENOENT$/), undefined);
});
