// `virt-iscsi status [NAME...]`: every export and the health of each of its pieces.
import type { Command } from 'commander';
import { DEFAULT_HOST_RECORD_DIR } from '../../workflows/records.js';
import { exportStatus, type ExportStatus } from '../../workflows/status.js';
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
  const lines = [
    `${s.name}  ${s.healthy ? 'healthy' : 'NOT HEALTHY'}`,
    `  image     ${s.image} (${(s.sizeBytes / MiB).toFixed(1)} MiB) on ${s.storage}`,
    `  target    ${s.target} LUN ${s.lun} (${s.backend})  [${mark('target', 'lun', 'acl')}]`,
    `  portal    ${s.portal}, initiator ${s.initiator}`,
    `  VM        ${s.vm} on ${s.hypervisor}: ${disk}, mode ${s.mode}${s.pool ? `, pool ${s.pool}` : ''}  [${mark('pool', 'volume', 'disk')}]`,
    `  sessions  ${sessions}  [${mark('session') || 'session n/a'}]`,
    ...s.problems.map((p) => `  problem   ${p}`),
  ];
  return lines.join('\n');
}

export function renderStatus(list: readonly ExportStatus[]): string {
  if (list.length === 0) return 'no exports recorded here (give --storage URI to list the exports a storage host has records of)';
  return list.map(renderOne).join('\n\n');
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
      const list = await exportStatus(s, { storage: o.storage, hostRecordDir: o.hostRecords, ...(names.length ? { names } : {}) });
      if (o.json) printJson(list);
      else printText(renderStatus(list));
    });
  });
}
