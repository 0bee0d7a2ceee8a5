// libvirt connection URIs as virsh gets them on a hypervisor (`virsh -c URI`). Only a
// driver on the host virsh runs on is taken: `qemu:///system`, `qemu:///session`,
// `test:///default`. A transport (`qemu+ssh://`, `qemu+ext:///system?command=X`, which
// runs X) or a query string is refused: reaching other hosts is the job of our own
// ssh:// host URIs, and a URI read from a stack file or a record must not run a program.
import { ValidationError } from '../errors.js';

export const LIBVIRT_URI = /^[a-z][a-z0-9]*:\/\/\/[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*$/;

export function checkLibvirtUri(uri: string): string {
  if (LIBVIRT_URI.test(uri)) return uri;
  const why = /^[a-z0-9]+\+/.test(uri)
    ? 'names a transport; give the driver alone (e.g. qemu:///system) and reach other hosts with --hypervisor ssh://...'
    : /[?#]/.test(uri)
      ? 'has a query; none is taken'
      : 'is not DRIVER:///PATH (e.g. qemu:///system)';
  throw new ValidationError(`libvirt URI ${JSON.stringify(uri)} ${why}`, 'connect');
}
