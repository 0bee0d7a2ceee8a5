// libvirt URIs: the ones virsh may be run with, and the ones that would run a program (or
// reach a socket we did not choose) and are refused wherever they come from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLibvirtUri } from '../../src/names/libvirt-uri.js';
import { Virsh } from '../../src/hypervisor/virsh.js';
import { LocalRunner } from '../../src/runner/local.js';

test('allowed: the qemu driver, local or over ssh/tls/tcp, with parameters that name no program', () => {
  for (const uri of [
    'qemu:///system',
    'qemu:///session',
    'qemu+unix:///system',
    'qemu+unix:///system?socket=/run/libvirt/libvirt-sock',
    'qemu+ssh://root@kvm1/system',
    'qemu+ssh://kvm1.example.com:2222/system?keyfile=/root/.ssh/id_ed25519&no_verify=0',
    'qemu+ssh://root@[2001:db8::1]/system',
    'qemu+tls://kvm2/system?pkipath=/etc/pki/libvirt',
    'qemu+tcp://127.0.0.1:16509/system',
    'qemu+libssh://root@kvm1/system?known_hosts=/root/.ssh/known_hosts&known_hosts_verify=normal',
  ]) {
    assert.equal(checkLibvirtUri(uri), uri, uri);
  }
});

test('refused with one line naming it: ext, command=, netcat=, a socket elsewhere, other drivers, junk', () => {
  const cases: Array<[string, RegExp]> = [
    ['qemu+ext:///system?command=/tmp/x', /uses the ext transport, which runs a program/],
    ['qemu+ssh://kvm1/system?netcat=/tmp/evil', /has parameter "netcat", which is not allowed/],
    ['qemu+ssh://kvm1/system?command=/bin/sh', /has parameter "command"/],
    ['qemu+unix:///system?socket=/tmp/fake.sock', /has socket="\/tmp\/fake\.sock", which is not allowed/],
    ['qemu+unix:///system?socket=/run/libvirt/../../tmp/x', /has socket=/],
    ['qemu+ssh://kvm1/system?proxy=netcat', /has proxy="netcat"/],
    ['xen:///system', /uses the xen driver, not qemu/],
    ['qemu:///embed?root=/tmp/x', /has path "\/embed", not \/system or \/session/],
    ['qemu://kvm1/system', /names host "kvm1" without a remote transport/],
    ['qemu+ssh:///system', /names no host/],
    ['-V', /looks like an option/],
    ['qemu:///system\nvirsh destroy x', /contains spaces or control characters/],
    ['qemu+ssh://kvm1/system?keyfile=%zz', /malformed parameter/],
    ['', /is empty/],
  ];
  for (const [uri, why] of cases) {
    assert.throws(() => checkLibvirtUri(uri, '--connect'), (e: Error) => {
      assert.match(e.message, why, uri);
      assert.ok(!e.message.includes('\n'), 'one line');
      assert.ok(e.message.startsWith(`--connect ${JSON.stringify(uri)}`), e.message);
      return true;
    });
  }
});

test('every Virsh is made through the check: a record or stack file cannot slip a URI past it', () => {
  assert.throws(() => new Virsh(new LocalRunner(), 'qemu+ext:///system?command=/tmp/x'), /ext transport/);
  assert.equal(new Virsh(new LocalRunner(), 'qemu+ssh://root@kvm1/system').uri, 'qemu+ssh://root@kvm1/system');
});
