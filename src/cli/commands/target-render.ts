// Text forms of target states and sync reports for `virt-iscsi target ...` (--json prints the objects).
import type { SyncItem, TargetState } from '../../storage/backend.js';
import { formatSize } from '../../storage/size.js';
import { NO_INITIATOR_ADDRESS } from '../../config/tgt-conf.js';

function acl(value: string): string {
  return value === NO_INITIATOR_ADDRESS ? `${value} (matches no address: only the names below, if any)` : value;
}

function lunLine(l: TargetState['luns'][number]): string {
  const notes = [l.type, formatSize(l.sizeBytes), l.readonly ? 'read-only' : 'read-write', l.online ? '' : 'offline', l.serial ? `serial ${l.serial}` : ''];
  return `  LUN ${l.lun}: ${l.path} (${notes.filter(Boolean).join(', ')})`;
}

/** The full picture of one target: LUNs, sessions, ACLs, CHAP users. */
export function renderTarget(t: TargetState): string {
  const lines = [`target ${t.iqn}${t.tid !== undefined ? ` (tid ${t.tid})` : ''}`];
  lines.push(...t.luns.map(lunLine));
  if (t.luns.length === 0) lines.push('  no LUNs');
  lines.push(`  allowed initiators:${t.acls.length ? '' : ' none'}`, ...t.acls.map((a) => `    ${acl(a)}`));
  const incoming = t.accounts.filter((a) => a !== t.outgoingAccount);
  if (incoming.length) lines.push(`  CHAP users: ${incoming.join(', ')}`);
  if (t.outgoingAccount) lines.push(`  mutual CHAP (target) user: ${t.outgoingAccount}`);
  lines.push(`  sessions:${t.sessions.length ? '' : ' none'}`, ...t.sessions.map((s) => `    ${s.initiator}${s.address ? ` from ${s.address}` : ''}`));
  lines.push(`  ${t.managed ? (t.persisted ? 'made by virt-iscsi, persistent (comes back when tgtd starts)' : 'made by virt-iscsi, live only (--no-persist)') : 'not made by virt-iscsi'}`);
  return lines.join('\n');
}

/** One line per target. */
export function renderList(targets: readonly TargetState[]): string {
  if (targets.length === 0) return 'no targets';
  const rows = [['TID', 'TARGET', 'LUNS', 'SESSIONS', 'MANAGED']];
  for (const t of targets) {
    rows.push([String(t.tid ?? '-'), t.iqn, String(t.luns.length), String(t.sessions.length), t.managed ? (t.persisted ? 'persistent' : 'live-only') : 'no']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function renderSync(items: readonly SyncItem[], dryRun: boolean): string {
  if (items.length === 0) return 'no targets and no records: nothing to do';
  const verb: Partial<Record<SyncItem['status'], string>> = dryRun ? { restored: 'would restore', repaired: 'would repair', 'stale-record': 'would drop record' } : {};
  return items.map((i) => [`${verb[i.status] ?? i.status}: ${i.iqn}`, ...i.details.map((d) => `  ${d}`)].join('\n')).join('\n');
}
