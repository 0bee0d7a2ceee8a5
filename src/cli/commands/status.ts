// `virt-iscsi status [NAME...]`: every export and the health of each of its pieces.
import type { Command } from 'commander';
import { DEFAULT_HOST_RECORD_DIR } from '../../workflows/records.js';
import { statusReport, type ExportStatus, type StatusReport } from '../../workflows/status.js';
import { addJson, addSshOptions, sessionOptions, type HostCommandOptions } from '../options.js';
import { printJson, printText } from '../output.js';
import { withSession } from '../session.js';

interface StatusFlags extends HostCommandOptions {
  storage?: string;
  hostRecords?: string;
}

const MiB = 1024 * 1024;

function renderOne(s: ExportStatus): string {
  const h = s.health;
  const mark = (...keys: Array<keyof ExportStatus['health']>): string =>
    keys
      .filter((k) => h[k] !== 'n/a')
      .map((k) => `${k} ${h[k]}`)
      .join(', ');
  const disk = s.dev ? `${s.dev} (${s.device}${s.live ? ', live' : ''}${s.persistent ? ', persistent' : ''})` : 'no disk';
  const sessions = s.sessions.map((x) => `${x.initiator}${x.address ? ` from ${x.address}` : ''}`).join(', ') || 'none';
  const state = { ok: 'healthy', degraded: 'NOT HEALTHY', interrupted: 'INTERRUPTED', busy: 'being changed by a running virt-iscsi' }[s.state];
  const several = s.hypervisors.length > 1;
  const hv = (h: ExportStatus['hypervisors'][number]): string => {
    const where = h.dev ? `${h.dev} (${h.device}${h.live ? ', live' : ''}${h.persistent ? ', persistent' : ''})` : h.defined ? 'no disk' : 'domain not defined here';
    const marks = (['pool', 'volume', 'disk', 'secret', 'session', 'settings'] as const).filter((k) => h[k] !== 'n/a').map((k) => `${k} ${h[k]}`).join(', ');
    return `  on        ${h.uri}${h.running ? ' (runs the VM)' : ''}: ${where}, initiator ${h.initiator}  [${marks}]`;
  };
  const lines = [
    `${s.name}  ${state}`,
    `  image     ${s.image} (${(s.sizeBytes / MiB).toFixed(1)} MiB) on ${s.storage}`,
    // Native rbd has no target or portal: QEMU reaches the cluster itself.
    ...(s.target !== undefined
      ? [`  target    ${s.target} LUN ${s.lun} (${s.backend})  [${mark('target', 'lun', 'acl', 'chap')}]`, `  portal    ${s.portal}${several ? '' : `, initiator ${s.initiator}`}`]
      : []),
    ...(s.rbd ? [`  rbd       ${s.rbd.image} is ${(s.rbd.sizeBytes / MiB).toFixed(1)} MiB in its cluster, open by ${s.rbd.watchers.length === 0 ? 'no client' : s.rbd.watchers.join(', ')}${s.target === undefined ? `  [image ${h.target}]` : ''}`] : []),
    several
      ? `  VM        ${s.vm}${s.runningOn ? ` runs on ${s.runningOn}` : ' is not running'}, mode ${s.mode}${s.pool ? `, pool ${s.pool}` : ''}`
      : `  VM        ${s.vm} on ${s.hypervisor}: ${disk}, mode ${s.mode}${s.pool ? `, pool ${s.pool}` : ''}  [${mark('pool', 'volume', 'disk', 'secret')}]`,
    ...(several ? s.hypervisors.map(hv) : []),
    ...s.hypervisors.flatMap((h) => (h.paths ?? []).map((p) => `  path      ${p.dev}${p.portal ? ` via ${p.portal}` : ''}${several ? ` on ${h.uri}` : ''}: ${p.state}`)),
    `  sessions  ${sessions}  [${mark('session', 'settings') || 'session n/a'}]`,
    ...s.problems.map((p) => `  problem   ${p}`),
    ...(s.fix ? [`  fix       ${s.fix}`] : []),
  ];
  return lines.join('\n');
}

export function renderStatus(report: StatusReport): string {
  const bad = report.unreadable.map((u) => `unreadable ${u.file}: ${u.error}`);
  if (report.exports.length === 0) return ['no exports recorded here (give --storage URI to list the exports a storage host has records of)', ...bad].join('\n');
  return [...report.exports.map(renderOne), ...(bad.length ? [bad.join('\n')] : [])].join('\n\n');
}

export function registerStatus(program: Command): void {
  addJson(
    addSshOptions(
      program
        .command('status')
        .description('list exports (image, target, portal, VM, device, sessions) and whether each piece is healthy')
        .argument('[names...]', 'only these exports')
        .option('--storage <uri>', "also list the exports this storage host has records of (from another machine, or after the local state was lost)")
        .option('--host-records <dir>', `where the storage host keeps export records (default ${DEFAULT_HOST_RECORD_DIR})`),
    ),
  ).action(async (names: string[], o: StatusFlags) => {
    await withSession(sessionOptions(o), async (s) => {
      const report = await statusReport(s, { storage: o.storage, hostRecordDir: o.hostRecords, ...(names.length ? { names } : {}) });
      if (o.json) printJson(report);
      else printText(renderStatus(report));
    });
  });
}
