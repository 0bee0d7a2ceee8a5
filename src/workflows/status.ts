// `status`: every export this machine has a record of (and, with --storage, every export
// that storage host has a record of), each piece looked at where it lives: target, LUN
// and ACL on the storage host (with the sessions logged in), pool, volume and disk on
// the hypervisor. A host that cannot be asked makes its pieces "unknown", not a failure.
import type { Session } from '../runner/session.js';
import { Virsh } from '../hypervisor/virsh.js';
import { byPathFor } from '../names/by-path.js';
import { parsePortal } from '../names/portal.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { SessionInfo, TargetState } from '../storage/backend.js';
import { createBackend } from '../storage/backends.js';
import { attachmentOf, findOurs, viewIfThere, type FoundDisk } from './disk.js';
import { markOf } from './export.js';
import { DEFAULT_HOST_RECORD_DIR, listRecords, localStateDir, type ExportRecord } from './records.js';
import type { RecordDirs } from './types.js';
import { volumeLun } from './visibility.js';
import { sameIqn } from '../names/iscsi-name.js';

export type Health = 'ok' | 'missing' | 'inactive' | 'wrong' | 'unknown' | 'n/a';

export interface ExportHealth {
  target: Health;
  lun: Health;
  acl: Health;
  pool: Health;
  /** The pool's volume for the LUN, or (block mode) the by-path device. */
  volume: Health;
  disk: Health;
  session: Health;
}

export interface ExportStatus {
  name: string;
  image: string;
  sizeBytes: number;
  storage: string;
  backend: string;
  target: string;
  lun: number;
  portal: string;
  hypervisor: string;
  mode: string;
  initiator: string;
  pool?: string;
  vm: string;
  /** Where the disk is in the domain, when it is there. */
  dev?: string;
  device?: 'disk' | 'cdrom';
  live?: boolean;
  persistent?: boolean;
  /** Every initiator logged in to the target. */
  sessions: SessionInfo[];
  health: ExportHealth;
  healthy: boolean;
  /** Why a piece is not ok, one line each. */
  problems: string[];
  /** Which records know the export. */
  records: Array<'local' | 'storage'>;
}

export interface StatusOptions extends RecordDirs {
  /** Also list the exports this storage host has records of. */
  storage?: string;
  /** Only these exports. */
  names?: string[];
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0]!;

/** What the storage host says: the target as the backend shows it. */
async function storageView(session: Session, r: ExportRecord, problems: string[]): Promise<TargetState | null | undefined> {
  try {
    const runner = await session.runner(r.storage);
    return (await createBackend(r.backend, runner, r.backendOptions).show(r.target)) ?? null;
  } catch (e) {
    problems.push(`storage host ${r.storage}: ${message(e)}`);
    return undefined; // unknown
  }
}

interface HypervisorView {
  pool: Health;
  volume: Health;
  disk?: FoundDisk | null;
  running?: boolean;
}

async function hypervisorView(session: Session, r: ExportRecord, problems: string[]): Promise<HypervisorView> {
  const out: HypervisorView = { pool: 'n/a', volume: 'n/a' };
  try {
    const virsh = new Virsh(await session.runner(r.hypervisor), r.connect);
    const [pool, view] = await Promise.all([r.pool ? virsh.poolInfo(r.pool) : Promise.resolve(undefined), viewIfThere(virsh, r.vm)]);
    const disk = view ? findOurs(view, markOf(r)) : undefined;
    out.disk = disk ?? null;
    out.running = view?.live !== undefined;
    if (r.pool) {
      out.pool = pool === undefined ? 'missing' : pool.state === 'running' ? 'ok' : 'inactive';
      if (out.pool !== 'ok') problems.push(`pool ${r.pool} is ${pool === undefined ? 'not defined' : pool.state}`);
      out.volume = out.pool === 'ok' ? ((await virsh.volList(r.pool)).some((v) => volumeLun(v.name) === r.lun) ? 'ok' : 'missing') : 'missing';
      if (out.pool === 'ok' && out.volume !== 'ok') problems.push(`pool ${r.pool} lists no volume for LUN ${r.lun}`);
    } else if (r.mode === 'block') {
      const dev = byPathFor(parsePortal(r.portal), r.target, r.lun);
      out.volume = (await virsh.runner.run(['test', '-b', dev], { query: true })).exitCode === 0 ? 'ok' : 'missing';
      if (out.volume !== 'ok') problems.push(`${dev} is not there on ${r.hypervisor}`);
    }
    if (!disk) problems.push(`domain ${r.vm} does not hold the export's disk`);
  } catch (e) {
    problems.push(`hypervisor ${r.hypervisor}: ${message(e)}`);
    out.pool = r.pool ? 'unknown' : 'n/a';
    out.volume = r.pool || r.mode === 'block' ? 'unknown' : 'n/a';
  }
  return out;
}

async function statusOf(session: Session, r: ExportRecord, records: Array<'local' | 'storage'>): Promise<ExportStatus> {
  const problems: string[] = [];
  const [t, hv] = await Promise.all([storageView(session, r, problems), hypervisorView(session, r, problems)]);
  const lun = t?.luns.find((l) => l.lun === r.lun);
  const health: ExportHealth = {
    target: t === undefined ? 'unknown' : t === null ? 'missing' : 'ok',
    lun: !t ? (t === undefined ? 'unknown' : 'missing') : !lun ? 'missing' : lun.path !== r.image || (lun.serial !== undefined && lun.serial !== r.serial) ? 'wrong' : 'ok',
    acl: !t ? (t === undefined ? 'unknown' : 'missing') : t.acls.some((a) => sameIqn(a, r.initiator)) ? 'ok' : 'missing',
    pool: hv.pool,
    volume: hv.volume,
    disk: hv.disk === undefined ? 'unknown' : hv.disk === null ? 'missing' : hv.running && !hv.disk.live ? 'inactive' : 'ok',
    session: 'n/a',
  };
  if (t === null) problems.push(`target ${r.target} is not on ${r.storage}`);
  if (health.lun === 'wrong') problems.push(`LUN ${r.lun} serves ${lun!.path} (serial ${lun!.serial ?? 'none'}), not ${r.image} (serial ${r.serial})`);
  if (t && health.lun === 'missing') problems.push(`target ${r.target} has no LUN ${r.lun}`);
  if (t && health.acl !== 'ok') problems.push(`target ${r.target} does not allow ${r.initiator}`);
  if (health.disk === 'inactive') problems.push(`the disk is only in the definition of ${r.vm}, not in the running domain`);
  // Who logs in: the host's open-iscsi (pool, block) always; QEMU (direct, network) while the VM runs with the disk.
  const expected = r.mode === 'pool' || r.mode === 'block' || (hv.running === true && health.disk === 'ok');
  if (t) {
    const has = t.sessions.some((s) => sameIqn(s.initiator, r.initiator));
    health.session = has ? 'ok' : expected ? 'missing' : 'n/a';
    if (health.session === 'missing') problems.push(`no session from ${r.initiator} on ${r.target}`);
  } else if (t === undefined) {
    health.session = 'unknown';
  } else if (expected) {
    health.session = 'missing';
  }
  const found = hv.disk ? attachmentOf(hv.disk) : undefined;
  return {
    name: r.name,
    image: r.image,
    sizeBytes: r.sizeBytes,
    storage: r.storage,
    backend: r.backend,
    target: r.target,
    lun: r.lun,
    portal: r.portal,
    hypervisor: r.hypervisor,
    mode: r.mode,
    initiator: r.initiator,
    ...(r.pool ? { pool: r.pool } : {}),
    vm: r.vm,
    ...(found ? { dev: found.dev, device: found.device, live: found.live, persistent: found.config } : {}),
    sessions: t ? t.sessions : [],
    health,
    healthy: Object.values(health).every((h) => h === 'ok' || h === 'n/a'),
    problems,
    records,
  };
}

/** Every export known here (and on `o.storage`), sorted by name, each looked at on its hosts in parallel. */
export async function exportStatus(session: Session, o: StatusOptions = {}): Promise<ExportStatus[]> {
  if (o.storage !== undefined) parseHostUri(o.storage);
  const local = await session.runner('local');
  const [mine, theirs] = await Promise.all([
    listRecords(local, o.stateDir ?? localStateDir()),
    o.storage === undefined ? Promise.resolve([]) : session.runner(o.storage).then((s) => listRecords(s, o.hostRecordDir ?? DEFAULT_HOST_RECORD_DIR)),
  ]);
  const byName = new Map<string, { record: ExportRecord; records: Array<'local' | 'storage'> }>();
  for (const r of mine) byName.set(r.name, { record: r, records: ['local'] });
  for (const r of theirs) {
    const known = byName.get(r.name);
    if (known) known.records.push('storage');
    // Reached from here: the storage host's record names the storage host as it was given there.
    else byName.set(r.name, { record: { ...r, storage: o.storage! }, records: ['storage'] });
  }
  const wanted = [...byName.values()].filter((x) => !o.names || o.names.includes(x.record.name)).sort((a, b) => a.record.name.localeCompare(b.record.name));
  return Promise.all(wanted.map((x) => statusOf(session, x.record, x.records)));
}
