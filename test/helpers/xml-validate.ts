import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/** Validates with libvirt's own RNG schemas (virt-xml-validate); throws with its output on failure. */
export function virtXmlValidate(xml: string, schema: 'storagepool' | 'secret' | 'domain' | 'storagevol'): void {
  const dir = mkdtempSync(join(tmpdir(), 'vit-xml-'));
  const file = join(dir, 'doc.xml');
  try {
    writeFileSync(file, xml);
    try {
      execFileSync('virt-xml-validate', [file, schema], { stdio: 'pipe' });
    } catch (e) {
      const err = e as { stdout?: Buffer; stderr?: Buffer };
      throw new Error(`virt-xml-validate ${schema} rejected:\n${xml}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Wraps device XML in the minimal domain from test-machine.md, for schema checks of a disk. */
export function wrapInDomain(deviceXml: string): string {
  return `<domain type='kvm'><name>t</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <features><acpi/><apic/></features>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><controller type='scsi' model='virtio-scsi'/>${deviceXml}</devices></domain>`;
}
