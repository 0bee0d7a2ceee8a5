// `migrate VM --to URI`: live migration of a VM whose disks are exports, between two of
// their hypervisors. Before anything moves, every export of the VM must resolve on the
// destination the way its mode makes it (pool running with the LUN's volume, the by-path
// device there, the libvirt secret, the target's ACL holding the destination's initiator);
// what is missing is named, with the command that adds it. Then `virsh migrate --live
// --p2p --tunnelled` on the source (only a libvirt connection between the two is needed),
// and a check that the VM runs on the destination with the same disks. The records learn
// where the disks are now. A network disk names the initiator QEMU logs in as: the
// migration sends the domain (running and persistent) with the destination's name in it,
// so the target's ACL entry of each hypervisor is what its own QEMU uses.
import { ValidationError } from '../errors.js';
import { Iscsiadm } from '../hypervisor/iscsiadm.js';
import { checkLibvirtUri } from '../names/libvirt-uri.js';
import { Virsh } from '../hypervisor/virsh.js';
import { sameIqn } from '../names/iscsi-name.js';
import { checkDomainName } from '../names/values.js';
import { parsePortal } from '../names/portal.js';
import { parseHostUri } from '../runner/host-uri.js';
import type { Session } from '../runner/session.js';
import { createBackend } from '../storage/backends.js';
import { attachmentOf, findOurs } from '../hypervisor/disk-steps.js';
import { withDiskInitiators } from '../xml/migrate-xml.js';
import { markOf } from './export.js';
import { modeOf } from './modes.js';
import { viewIfThere } from './probe.js';
import { isIscsi, listRecords, localStateDir, recordPath, recordSecretUsage, writeRecord, type ExportRecord } from './records.js';
import type { RecordDirs } from './types.js';

export interface MigrateOptions extends RecordDirs {
  vm: string;
  /** The destination, as a host URI from this machine: one of the exports' hypervisors. */
  to: string;
  /** The source; default: the hypervisor of the exports where the VM runs. */
  from?: string;
  /** The destination's libvirt URI as the source's libvirtd reaches it; default qemu+ssh://USER@HOST[:PORT]/system from `to`. */
  destUri?: string;
  /** Live (the VM keeps running); false: an offline migration of a shut-off VM's definition is not ours: refused. */
  live?: boolean;
  /** Seconds virsh migrate may take; default 600. */
  timeoutSec?: number;
}

export interface MigrateResult {
  vm: string;
  from: string;
  to: string;
  /** The exports whose disks moved with the VM. */
  exports: string[];
  /** Network disks whose initiator name became the destination's (its QEMU logs in as itself). */
  relogin: Array<{ export: string; from: string; to: string }>;
  /** How long virsh migrate took, ms. */
  migrateMs: number;
  dryRun: boolean;
  /** What `virsh domstate` says on each side afterwards. */
  state: { from: string; to: string };
}

const show = JSON.stringify;

/** The libvirt URI that reaches `to`'s libvirtd over SSH, from another host. */
function defaultDestUri(to: string, connect: string): string {
  const spec = parseHostUri(to);
  if (spec.kind === 'local') throw new ValidationError('the destination is this machine: give --dest-uri, the libvirt URI that reaches it from the source', 'dest-uri');
  const path = /\/(system|session)$/.exec(connect)?.[0] ?? '/system';
  const host = spec.host.includes(':') ? `[${spec.host}]` : spec.host;
  return `qemu+ssh://${spec.user ? `${spec.user}@` : ''}${host}${spec.port ? `:${spec.port}` : ''}${path}`;
}

/** What the destination lacks for one export, each with the command that adds it. */
async function missingOn(session: Session, r: ExportRecord, to: string): Promise<string[]> {
  const part = r.hypervisors.find((h) => h.uri === to);
  if (!part) return [`export ${r.name} is not served to ${to} (virt-iscsi export ${r.name} --add-hypervisor ${to})`];
  const runner = await session.runner(to);
  const virsh = new Virsh(runner, part.connect);
  const out: string[] = [];
  const portal = isIscsi(r) ? await new Iscsiadm(runner).resolvePortal(parsePortal(r.portal)) : { host: '', port: 0 };
  const seen = await modeOf(r).inspect(virsh, r, portal);
  out.push(...seen.problems.map((p) => `export ${r.name}: ${p}`));
  const usage = recordSecretUsage(r);
  if (usage && !(await virsh.secretByUsage(usage, isIscsi(r) ? 'iscsi' : 'ceph'))) out.push(`export ${r.name}: libvirt secret ${usage} is not defined on ${to}`);
  if (isIscsi(r)) {
    const t = await createBackend(r.backend, await session.runner(r.storage), r.backendOptions).show(r.target);
    if (!t) out.push(`export ${r.name}: target ${r.target} is not on ${r.storage}`);
    else if (!t.acls.some((a) => sameIqn(a, part.initiator))) out.push(`export ${r.name}: target ${r.target} does not allow ${part.initiator} of ${to}`);
  }
  if (out.length > 0) out.push(`(virt-iscsi repair ${r.name}, or virt-iscsi export ${r.name} --add-hypervisor ${to}, makes them)`);
  return out;
}

export async function migrateVm(session: Session, o: MigrateOptions): Promise<MigrateResult> {
  const vm = checkDomainName(o.vm, 'VM');
  parseHostUri(o.to);
  if (o.from !== undefined) parseHostUri(o.from);
  if (o.live === false) throw new ValidationError('only live migration is done here (--live); a shut-off VM moves with virsh define on the destination', 'live');
  const stateDir = o.stateDir ?? localStateDir();
  const local = await session.runner('local');
  const listing = await listRecords(local, stateDir);
  const exports = listing.records.filter((r) => r.vm === vm);
  if (exports.length === 0) throw new ValidationError(`no export of domain ${show(vm)} is recorded in ${stateDir}; "virt-iscsi status" lists them`, 'vm');
  // The source: where the VM runs now, among its exports' hypervisors.
  const candidates = [...new Set(exports.flatMap((r) => r.hypervisors.map((h) => h.uri)))].filter((u) => u !== o.to);
  let from = o.from;
  if (from === undefined) {
    for (const uri of candidates) {
      const part = exports.flatMap((r) => r.hypervisors).find((h) => h.uri === uri)!;
      if ((await viewIfThere(new Virsh(await session.runner(uri), part.connect), vm))?.live) {
        from = uri;
        break;
      }
    }
  }
  // Not running elsewhere: maybe already there, with nothing to move.
  const toPart = exports.flatMap((r) => r.hypervisors).find((h) => h.uri === o.to);
  if (from === undefined && toPart && (await viewIfThere(new Virsh(await session.runner(o.to), toPart.connect), vm))?.live) throw new ValidationError(`domain ${show(vm)} already runs on ${o.to}`, 'to');
  if (from === undefined) throw new ValidationError(`domain ${show(vm)} runs on none of ${candidates.join(', ') || 'its exports\' other hypervisors'}; start it, or give --from`, 'from');
  if (from === o.to) throw new ValidationError(`domain ${show(vm)} already runs on ${o.to}`, 'to');
  const missing = (await Promise.all(exports.map((r) => missingOn(session, r, o.to)))).flat();
  if (missing.length > 0) throw new ValidationError(`cannot migrate ${vm} to ${o.to}: ${missing.join('; ')}`, 'to');

  const srcPart = exports.flatMap((r) => r.hypervisors).find((h) => h.uri === from)!;
  const dstPart = exports.flatMap((r) => r.hypervisors).find((h) => h.uri === o.to)!;
  const src = new Virsh(await session.runner(from), srcPart.connect, { timeoutMs: (o.timeoutSec ?? 600) * 1000 });
  const dst = new Virsh(await session.runner(o.to), dstPart.connect);
  const destUri = checkLibvirtUri(o.destUri ?? defaultDestUri(o.to, dstPart.connect), '--dest-uri');
  // The destination's QEMU logs in as the destination (network disks name their initiator).
  const initiators = new Map(exports.map((r) => [markOf(r).alias, r.hypervisors.find((h) => h.uri === o.to)!.initiator]));
  const live = withDiskInitiators(await src.migratableXml(vm), initiators);
  const persistent = withDiskInitiators(await src.migratableXml(vm, true), initiators);
  const names = new Map(exports.map((r) => [markOf(r).alias, r.name]));
  const relogin = [...new Map([...live.changes, ...persistent.changes].map((c) => [c.alias, { export: names.get(c.alias)!, from: c.from, to: c.to }])).values()];
  const started = Date.now();
  await src.migrate(vm, destUri, relogin.length > 0 ? { live: live.xml, persistent: persistent.xml } : undefined);
  const migrateMs = Date.now() - started;
  if (session.dryRun) return { vm, from, to: o.to, exports: exports.map((r) => r.name), relogin, migrateMs: 0, dryRun: true, state: { from: 'running', to: 'shut off' } };

  // It runs there, with every export's disk.
  const [after, there] = await Promise.all([viewIfThere(src, vm), viewIfThere(dst, vm)]);
  if (!there?.live) throw new ValidationError(`virsh migrate ended, but ${vm} does not run on ${o.to}`, 'to');
  const lost = exports.filter((r) => !findOurs(there, markOf(r))?.live).map((r) => r.name);
  if (lost.length > 0) throw new ValidationError(`${vm} runs on ${o.to} without the disk of ${lost.join(', ')}`, 'to');
  // Where the disks are now, in the records.
  for (const r of exports) {
    const moved: ExportRecord = {
      ...r,
      hypervisors: r.hypervisors.map((h) => {
        const view = h.uri === o.to ? there : h.uri === from ? after : undefined;
        if (view === undefined && h.uri !== o.to && h.uri !== from) return h;
        const found = view ? findOurs(view, markOf(r)) : undefined;
        const { attachment: _a, ...rest } = h;
        return found ? { ...rest, attachment: { ...attachmentOf(found), ...(h.attachment?.controller ? { controller: h.attachment.controller } : {}) } } : rest;
      }),
    };
    if ((await local.readFile(recordPath(stateDir, r.name))) !== undefined) await writeRecord(local, stateDir, moved);
  }
  const [fromState, toState] = await Promise.all([src.domState(vm).then((s) => s.state).catch(() => 'gone'), dst.domState(vm).then((s) => s.state)]);
  return { vm, from, to: o.to, exports: exports.map((r) => r.name), relogin, migrateMs, dryRun: false, state: { from: fromState, to: toState } };
}
