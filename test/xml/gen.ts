// Seeded generators of valid XML models for round-trip and schema tests. Free-text
// values (paths, pool/volume names, secret usages, descriptions) are often hostile:
// quotes, <>&, non-ASCII, astral characters.
import { DEVICE_RULES, type DiskAddress, type DiskBus, type DiskDef, type DiskDevice, type DiskDriver, type DiskSource } from '../../src/xml/disk.js';
import type { ControllerDef, ExportMark } from '../../src/xml/domain.js';
import type { PoolDef, PoolHost } from '../../src/xml/pool.js';
import type { SecretDef, SecretRef } from '../../src/xml/secret.js';
import { ALNUM, LOWER, randomIqn, type Rng } from '../config/random.js';

const HOSTILE = `'"<>&; \`$(x)é日本😀ü-_.`;
const HEX = '0123456789abcdef';

/** A name without '/' that is often hostile; never empty, never with edge whitespace. */
export function freeName(r: Rng): string {
  const s = r.chance(0.5) ? r.word(`${ALNUM}${HOSTILE}`, 1, 24) : r.word(`${LOWER}0123456789-`, 1, 16);
  const trimmed = s.trim();
  return trimmed === '' || trimmed === '.' || trimmed === '..' ? 'x' : trimmed;
}

export function freePath(r: Rng): string {
  const parts = Array.from({ length: r.int(1, 4) }, () => freeName(r));
  return `/${parts.join('/')}`;
}

export function uuid(r: Rng): string {
  const h = (n: number) => r.word(HEX, n, n);
  return r.chance(0.8) ? `${h(8)}-${h(4)}-${h(4)}-${h(4)}-${h(12)}` : h(32);
}

export function host(r: Rng): string {
  switch (r.int(0, 3)) {
    case 0:
      return `${r.int(1, 223)}.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`;
    case 1:
      return `fd${r.word(HEX, 2, 2)}::${r.word(HEX, 1, 4)}`;
    case 2:
      return '127.0.0.1';
    default:
      return `${r.word(LOWER, 1, 10)}.${r.word(LOWER, 1, 1)}${r.word(`${LOWER}0123456789-`, 0, 8)}${r.word(LOWER, 1, 1)}.example`;
  }
}

function maybe<T>(r: Rng, p: number, make: () => T): T | undefined {
  return r.chance(p) ? make() : undefined;
}

/** Drops undefined keys: a parsed model never carries them. */
function clean<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function secretRef(r: Rng): SecretRef {
  return r.chance(0.5) ? { usage: freeName(r) } : { uuid: uuid(r) };
}

function chapUser(r: Rng): string {
  return r.word(`${ALNUM}_+-`, 1, 16);
}

function hosts(r: Rng, n: number): PoolHost[] {
  return Array.from({ length: n }, () => clean({ name: host(r), port: maybe(r, 0.7, () => r.int(1, 65535)) }));
}

export function randomPool(r: Rng): PoolDef {
  const common = clean({
    name: freeName(r),
    uuid: maybe(r, 0.5, () => uuid(r)),
    hosts: hosts(r, 1),
    device: randomIqn(r),
    auth: maybe(r, 0.4, () => ({ username: chapUser(r), secret: secretRef(r) })),
    capacity: maybe(r, 0.3, () => r.int(0, 2 ** 40) * 512),
    allocation: maybe(r, 0.3, () => r.int(0, 2 ** 30)),
    available: maybe(r, 0.3, () => 0),
  });
  if (r.chance(0.5)) return { ...common, type: 'iscsi-direct', initiator: randomIqn(r) };
  return clean({ ...common, type: 'iscsi' as const, initiator: maybe(r, 0.5, () => randomIqn(r)), targetPath: r.chance(0.5) ? '/dev/disk/by-path' : freePath(r) });
}

export function randomSecret(r: Rng): SecretDef {
  return clean({
    ephemeral: r.chance(0.3),
    private: r.chance(0.7),
    uuid: maybe(r, 0.5, () => uuid(r)),
    description: maybe(r, 0.6, () => freeName(r)),
    usage: { type: 'iscsi' as const, target: freeName(r) },
  });
}

const DEV_PREFIX: Record<DiskBus, string> = { scsi: 'sd', sata: 'sd', usb: 'sd', virtio: 'vd', ide: 'hd', fdc: 'fd' };

function source(r: Rng, device: DiskDevice): DiskSource {
  const rule = DEVICE_RULES[device];
  const type = r.pick(rule.sources);
  const empty = rule.mayBeEmpty && r.chance(0.3);
  switch (type) {
    case 'block':
      return clean({ type, dev: empty ? undefined : freePath(r) });
    case 'file':
      return clean({ type, file: empty ? undefined : freePath(r) });
    case 'volume':
      return clean({ type, pool: freeName(r), volume: r.chance(0.5) ? `unit:0:0:${r.int(0, 255)}` : freeName(r), mode: maybe(r, 0.3, () => r.pick(['host', 'direct'] as const)) });
    case 'network':
      return clean({
        type,
        protocol: 'iscsi' as const,
        target: randomIqn(r),
        lun: r.int(0, 300),
        hosts: hosts(r, 1),
        initiator: maybe(r, 0.5, () => randomIqn(r)),
        auth: maybe(r, 0.4, () => ({ username: chapUser(r), secret: secretRef(r) })),
      });
  }
}

function address(r: Rng): DiskAddress {
  if (r.chance(0.6)) return { type: 'drive', controller: r.int(0, 3), bus: r.int(0, 1), target: r.int(0, 7), unit: r.int(0, 1) };
  return { type: 'pci', domain: r.int(0, 1), bus: r.int(0, 255), slot: r.int(0, 31), function: r.int(0, 7) };
}

export function randomDisk(r: Rng): DiskDef {
  const device = r.pick(['disk', 'disk', 'cdrom', 'cdrom', 'lun', 'floppy'] as const);
  const bus = r.pick(DEVICE_RULES[device].buses);
  const driver: DiskDriver | undefined = maybe(r, 0.8, () =>
    clean({
      name: maybe(r, 0.9, () => 'qemu'),
      type: maybe(r, 0.8, () => r.pick(['raw', 'qcow2'])),
      cache: maybe(r, 0.3, () => r.pick(['none', 'writeback', 'directsync'] as const)),
      io: maybe(r, 0.3, () => r.pick(['native', 'threads', 'io_uring'] as const)),
    }),
  );
  return clean({
    device,
    source: source(r, device),
    driver,
    target: clean({ dev: `${DEV_PREFIX[bus]}${r.word(LOWER, 1, 2)}`, bus: maybe(r, 0.9, () => bus) }),
    readonly: maybe(r, 0.4, () => true as const),
    shareable: maybe(r, 0.2, () => true as const),
    serial: maybe(r, 0.4, () => r.word(`${ALNUM}_.+-`, 1, 20)),
    alias: maybe(r, 0.3, () => `ua-${r.word(`${ALNUM}_.-`, 1, 12)}`),
    address: maybe(r, 0.4, () => address(r)),
  });
}

export function randomMark(r: Rng): ExportMark {
  return clean({
    name: freeName(r),
    dev: `sd${r.word(LOWER, 1, 2)}`,
    target: maybe(r, 0.7, () => randomIqn(r)),
    lun: maybe(r, 0.7, () => r.int(0, 255)),
    portal: maybe(r, 0.7, () => `${host(r)}:${r.int(1, 65535)}`),
    pool: maybe(r, 0.4, () => freeName(r)),
  });
}

export function randomController(r: Rng): ControllerDef {
  return r.pick<ControllerDef>([
    { type: 'scsi', model: 'virtio-scsi' },
    { type: 'scsi', model: 'lsilogic', index: r.int(0, 3) },
    { type: 'sata', index: r.int(0, 3) },
    { type: 'usb', model: 'qemu-xhci' },
    { type: 'virtio-serial', index: 0 },
  ]);
}
