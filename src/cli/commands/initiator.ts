// `virt-iscsi discover|login|logout`: the hypervisor's own initiator (open-iscsi).
import type { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { Iscsiadm } from '../../hypervisor/iscsiadm.js';
import { planLogin, planLogout } from '../../hypervisor/login.js';
import { formatPortal, parsePortal } from '../../names/portal.js';
import { MAX_LUN } from '../../xml/disk.js';
import { addJson } from '../options.js';
import { addChangeOptions, addHypervisorOptions, applySteps, readSecretFile, runCommand, type HypervisorOptions } from './hypervisor-common.js';

interface TargetFlags extends HypervisorOptions {
  portal: string;
  target: string;
}

interface LoginFlags extends TargetFlags {
  chap?: string;
  chapSecretFile?: string;
  lun: number[];
  timeout: number;
}

function lunArg(v: string, previous: number[]): number[] {
  if (!/^\d{1,5}$/.test(v) || Number(v) > MAX_LUN) throw new ValidationError(`--lun ${JSON.stringify(v)} is not a LUN number from 0 to ${MAX_LUN}`, 'lun');
  return [...previous, Number(v)];
}

function timeoutArg(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1) throw new ValidationError(`--timeout ${JSON.stringify(v)} is not a number of seconds (1 or more)`, 'timeout');
  return Number(v);
}

const targetOptions = (cmd: Command): Command => cmd.requiredOption('--portal <host[:port]>', 'target portal, e.g. 192.0.2.1 or [fe80::1]:3260').requiredOption('--target <iqn>', 'target IQN');

export function registerInitiator(program: Command): void {
  addJson(addHypervisorOptions(program.command('discover').description('the targets a portal offers (iscsiadm SendTargets discovery, no node records written)').argument('<portal>', 'HOST[:PORT]'), false)).action(
    async (portal: string, o: HypervisorOptions) => {
      const p = parsePortal(portal);
      await runCommand(
        o,
        async (s) => (await new Iscsiadm(await s.runner(o.hypervisor)).discover(p)).map((e) => ({ portal: formatPortal(e.portal), tpgt: e.tpgt, target: e.iqn })),
        (list) => (list.length === 0 ? `${formatPortal(p)} offers no targets` : list.map((e) => `${e.portal},${e.tpgt} ${e.target}`).join('\n')),
      );
    },
  );

  addChangeOptions(
    targetOptions(program.command('login').description("log the hypervisor's open-iscsi in to a target and wait for its /dev/disk/by-path devices"))
      .option('--chap <user>', 'CHAP user')
      .option('--chap-secret-file <file>', 'file holding the CHAP password (written into the node record, never on a command line)')
      .option('--lun <n>', 'a LUN whose device to wait for (repeatable; default: every LUN of the session)', lunArg, [])
      .option('--timeout <seconds>', 'how long to wait for each device', timeoutArg, 30),
    false,
  ).action(async (o: LoginFlags) => {
    if (o.chapSecretFile !== undefined && o.chap === undefined) throw new ValidationError('--chap-secret-file needs --chap USER', 'chap');
    if (o.chap !== undefined && o.chapSecretFile === undefined) throw new ValidationError(`--chap ${JSON.stringify(o.chap)} needs --chap-secret-file FILE holding the password`, 'chap');
    const chap = o.chap === undefined ? undefined : { user: o.chap, secret: await readSecretFile('--chap-secret-file', o.chapSecretFile!) };
    const portal = parsePortal(o.portal);
    await runCommand(
      o,
      async (s) => {
        const plan = await planLogin(new Iscsiadm(await s.runner(o.hypervisor)), { portal, target: o.target, chap, luns: o.lun.length ? o.lun : undefined, wait: { timeoutMs: o.timeout * 1000 } });
        await applySteps(plan.steps, o, s.recorded);
        return { target: o.target, portal: formatPortal(plan.portal), devices: plan.devices };
      },
      (r) => `${o.dryRun ? 'would log in to' : 'logged in to'} ${r.target} at ${r.portal}${r.devices.length ? `:\n${r.devices.join('\n')}` : ''}`,
    );
  });

  addChangeOptions(targetOptions(program.command('logout').description('log out of a target and delete its node record; not logged in is fine')), false).action(
    async (o: TargetFlags) => {
      const portal = parsePortal(o.portal);
      await runCommand(
        o,
        async (s) => {
          await applySteps(await planLogout(new Iscsiadm(await s.runner(o.hypervisor)), { portal, target: o.target }), o, s.recorded);
          return { target: o.target, portal: formatPortal(portal) };
        },
        (r) => `${o.dryRun ? 'would log out of' : 'logged out of'} ${r.target} at ${r.portal}`,
      );
    },
  );
}
