// `virt-iscsi pool create|delete|list|volumes`: libvirt storage pools over an iSCSI target.
import { Option, type Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { createPoolSteps, deletePoolSteps, poolDefFor, type PoolSpec } from '../../hypervisor/pools.js';
import type { Volume } from '../../hypervisor/virsh.js';
import type { PoolListEntry } from '../../hypervisor/virsh-parse.js';
import { parsePortal } from '../../names/portal.js';
import { POOL_TYPE_NAMES, type PoolType } from '../../xml/pool.js';
import { addJson } from '../options.js';
import { addChangeOptions, addHypervisorOptions, applySteps, openVirsh, readSecretFile, runCommand, type HypervisorOptions } from './hypervisor-common.js';

interface CreateFlags extends HypervisorOptions {
  portal: string;
  target: string;
  type: PoolType;
  initiator?: string;
  chap?: string;
  chapSecretFile?: string;
  autostart: boolean;
  timeout: number;
}

function seconds(flag: string) {
  return (v: string): number => {
    if (!/^\d{1,5}$/.test(v) || Number(v) < 1) throw new ValidationError(`${flag} ${JSON.stringify(v)} is not a number of seconds (1 or more)`, flag.slice(2));
    return Number(v);
  };
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** 32.0 MiB, 1.50 GiB: sizes for people; --json has bytes. */
function size(bytes: number): string {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${bytes} B`;
}

function renderVolumes(vols: readonly Volume[]): string {
  if (vols.length === 0) return '(no volumes)';
  return vols.map((v) => `${v.name}  ${size(v.capacity)}  ${v.path}`).join('\n');
}

async function chapFlags(o: CreateFlags): Promise<PoolSpec['chap']> {
  if (o.chap === undefined) {
    if (o.chapSecretFile !== undefined) throw new ValidationError('--chap-secret-file needs --chap USER', 'chap');
    return undefined;
  }
  if (o.chapSecretFile === undefined) throw new ValidationError(`--chap ${JSON.stringify(o.chap)} needs --chap-secret-file FILE holding the password`, 'chap');
  return { user: o.chap, secret: await readSecretFile('--chap-secret-file', o.chapSecretFile) };
}

function addCreate(pool: Command): void {
  addChangeOptions(
    pool
      .command('create')
      .description('define and start a libvirt pool over an iSCSI target (CHAP secret -> define -> start -> autostart); rolled back if a step fails')
      .argument('<name>', 'pool name')
      .requiredOption('--portal <host[:port]>', 'target portal, e.g. 192.0.2.1 or [fe80::1]:3260')
      .requiredOption('--target <iqn>', 'target IQN')
      .addOption(new Option('--type <type>', 'iscsi (the host logs in with open-iscsi) or iscsi-direct (libvirt logs in itself)').choices(POOL_TYPE_NAMES).default('iscsi'))
      .option('--initiator <iqn>', 'initiator IQN to log in with (required for iscsi-direct)')
      .option('--chap <user>', 'CHAP user')
      .option('--chap-secret-file <file>', 'file holding the CHAP password (it goes into a libvirt secret, never on a command line)')
      .option('--autostart', 'start the pool with libvirtd (the default)', true)
      .option('--no-autostart', 'do not start the pool with libvirtd')
      .option('--timeout <seconds>', 'how long to wait for the LUNs to show as volumes', seconds('--timeout'), 30),
  ).action(async (name: string, o: CreateFlags) => {
    if (o.type === 'iscsi-direct' && o.initiator === undefined) {
      throw new ValidationError('--type iscsi-direct needs --initiator IQN: libvirt logs in with an initiator name of its own', 'initiator');
    }
    const spec: PoolSpec = { name, type: o.type, portal: parsePortal(o.portal), target: o.target, initiator: o.initiator, chap: await chapFlags(o), autostart: o.autostart };
    const def = poolDefFor(spec); // bad input fails here, before anything runs
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        await applySteps(createPoolSteps(virsh, spec, { timeoutMs: o.timeout * 1000 }), o, s.recorded);
        return { pool: def.name, type: def.type, volumes: virsh.dryRun ? [] : await virsh.volumes(def.name) };
      },
      (r) => (o.dryRun ? `would create pool ${r.pool}` : `pool ${r.pool} is running on ${o.connect} (${o.hypervisor}); its volumes:\n${renderVolumes(r.volumes)}`),
    );
  });
}

function addDelete(pool: Command): void {
  addChangeOptions(
    pool
      .command('delete')
      .description('stop and undefine a pool, and remove the CHAP secret virt-iscsi made for it; a pool already gone is fine')
      .argument('<name>', 'pool name'),
  ).action(async (name: string, o: HypervisorOptions) => {
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        const steps = await deletePoolSteps(virsh, name);
        await applySteps(steps, o, s.recorded);
        return { pool: name, existed: steps.length > 0 };
      },
      (r) => (o.dryRun ? `would delete pool ${r.pool}` : r.existed ? `deleted pool ${r.pool}` : `pool ${r.pool} is not there (nothing to do)`),
    );
  });
}

type ListRow = PoolListEntry & { capacity?: number };

function addList(pool: Command): void {
  addJson(addHypervisorOptions(pool.command('list').description('the pools libvirt has, with their state and size'))).action(async (o: HypervisorOptions) => {
    await runCommand(
      o,
      async (s) => {
        const virsh = await openVirsh(s, o);
        const rows: ListRow[] = [];
        for (const p of await virsh.poolList()) {
          const capacity = p.state === 'running' ? (await virsh.poolInfo(p.name))?.capacity : undefined;
          rows.push(capacity === undefined ? p : { ...p, capacity });
        }
        return rows;
      },
      (rows) =>
        rows.length === 0
          ? '(no pools)'
          : rows.map((p) => `${p.name}  ${p.state}  autostart ${p.autostart ? 'yes' : 'no'}${p.capacity === undefined ? '' : `  ${size(p.capacity)}`}`).join('\n'),
    );
  });
}

function addVolumes(pool: Command): void {
  addJson(addHypervisorOptions(pool.command('volumes').description("a pool's volumes (the target's LUNs) with their exact sizes").argument('<name>', 'pool name'))).action(
    async (name: string, o: HypervisorOptions) => {
      await runCommand(o, async (s) => (await openVirsh(s, o)).volumes(name), renderVolumes);
    },
  );
}

export function registerPool(program: Command): void {
  const pool = program.command('pool').description('libvirt storage pools over iSCSI targets, on the hypervisor');
  addCreate(pool);
  addDelete(pool);
  addList(pool);
  addVolumes(pool);
}
