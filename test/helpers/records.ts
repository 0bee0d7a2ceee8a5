// One export record as export writes it (mode network, tgt, one local hypervisor), for tests
// that need a valid record to read, journal or change; `with` replaces or adds fields.
import type { ExportRecord } from '../../src/workflows/records.js';

export function sampleRecord(with_: Record<string, unknown> = {}): ExportRecord {
  return {
    version: 2,
    name: 'data',
    image: '/srv/data.img',
    sizeBytes: 1048576,
    cdrom: false,
    readonly: false,
    storage: 'local',
    backend: 'tgt',
    backendOptions: {},
    target: 'iqn.2024-01.test:data',
    lun: 1,
    serial: 'VI0000000001',
    portal: '127.0.0.1:3260',
    vm: 'web1',
    persist: true,
    hypervisors: [{ uri: 'local', connect: 'qemu:///system', initiator: 'iqn.2024-01.test:host' }],
    createdAt: '2026-01-01T00:00:00.000Z',
    mode: 'network',
    ...with_,
  } as ExportRecord;
}
