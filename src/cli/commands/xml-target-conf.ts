// `virt-iscsi xml target-conf`: prints the target's block for tgt's targets.conf or IET's
// ietd.conf (+ initiators.allow line). Pure: touches nothing.
import { Command, Option } from 'commander';
import { ValidationError } from '../../errors.js';
import type { LunSpec, TargetSpec } from '../../storage/backend.js';
import { LUN_MAX } from '../../storage/spec.js';
import { buildTgtTarget, targetSpecToTgtConf } from '../../config/tgt-conf.js';
import { buildIetTarget, targetSpecToIet } from '../../config/iet-conf.js';
import { buildIetAllowLine } from '../../config/iet-allow.js';
import { classifyAllow } from '../../config/conf-values.js';
import { printText } from '../output.js';

export interface TargetConfInput {
  backend: 'tgt' | 'iet';
  target: string;
  /** --lun values with the --readonly/--cdrom flags that followed each. */
  luns: Array<{ arg: string; readonly?: boolean; cdrom?: boolean }>;
  /** --readonly/--cdrom given before any --lun: they apply to every LUN. */
  readonly?: boolean;
  cdrom?: boolean;
  initiatorAddress: string[];
  initiatorName: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `N=PATH` as given to --lun. */
export function parseLunArg(arg: string): { lun: number; path: string } {
  const m = /^([0-9]+)=(.+)$/s.exec(arg);
  if (!m) throw new ValidationError(`--lun ${JSON.stringify(arg)} is not N=PATH (e.g. 1=/srv/disk.img)`, 'lun');
  // Digits only, so Number() is exact up to 2^53; longer runs are out of range all the same.
  if (m[1]!.length > 5 || Number(m[1]) > LUN_MAX) throw new ValidationError(`--lun ${JSON.stringify(arg)}: LUN ${m[1]} is out of range: expected 1 to ${LUN_MAX}`, 'lun');
  return { lun: Number(m[1]), path: m[2]! };
}

/** The TargetSpec the flags describe. */
export function targetConfSpec(o: TargetConfInput): TargetSpec {
  if (o.luns.length === 0) throw new ValidationError('give at least one --lun N=PATH', 'lun');
  const luns: LunSpec[] = o.luns.map((given) => {
    const l: LunSpec = parseLunArg(given.arg);
    if (o.readonly || given.readonly) l.readonly = true;
    if (o.cdrom || given.cdrom) l.cdrom = true;
    return l;
  });
  for (const a of o.initiatorAddress) {
    if (classifyAllow(a) === 'name') throw new ValidationError(`--initiator-address ${JSON.stringify(a)} is an initiator name; use --initiator-name`, 'allow');
  }
  for (const n of o.initiatorName) {
    if (classifyAllow(n) !== 'name') throw new ValidationError(`--initiator-name ${JSON.stringify(n)} is not an iSCSI name (iqn./eui./naa.)`, 'allow');
  }
  const allow = [...o.initiatorAddress, ...o.initiatorName];
  if (allow.length === 0) {
    throw new ValidationError('no initiator is allowed: name one with --initiator-address (IP, CIDR or ALL) or --initiator-name', 'allow');
  }
  return { iqn: o.target, luns, allow, persist: true };
}

/** The text printed for the flags: a targets.conf block, or ietd.conf + initiators.allow. */
export function renderTargetConf(o: TargetConfInput): string {
  const spec = targetConfSpec(o);
  if (o.backend === 'tgt') return buildTgtTarget(targetSpecToTgtConf(spec));
  const { target, allow } = targetSpecToIet(spec);
  return `# /etc/iet/ietd.conf\n${buildIetTarget(target)}# /etc/iet/initiators.allow\n${buildIetAllowLine(target.iqn, allow)}`;
}

export function addXmlTargetConfCommand(xml: Command): void {
  // Commander reports options in command-line order, so a flag can bind to the --lun before it.
  let luns: TargetConfInput['luns'] = [];
  const all: { readonly?: boolean; cdrom?: boolean } = {};
  const flag = (name: 'readonly' | 'cdrom') => (): void => {
    const last = luns[luns.length - 1];
    if (last) last[name] = true;
    else all[name] = true;
  };
  const cmd = xml
    .command('target-conf')
    .description("print a target's block for tgt targets.conf or IET ietd.conf (touches nothing)")
    .addOption(new Option('--backend <backend>', 'config format').choices(['tgt', 'iet']).makeOptionMandatory())
    .requiredOption('--target <iqn>', 'target IQN')
    .option('--lun <N=PATH>', 'LUN number and image/device path (repeatable)')
    .option('--readonly', 'serve the --lun before it read-only (every LUN when given first)')
    .option('--cdrom', 'serve the --lun before it as a read-only CD-ROM (every LUN when given first; tgt only)')
    .option('--initiator-address <addr>', 'allow an IP, CIDR or ALL (repeatable)', collect, [])
    .option('--initiator-name <iqn>', 'allow an initiator IQN (repeatable)', collect, [])
    .action((opts: { backend: 'tgt' | 'iet'; target: string; initiatorAddress: string[]; initiatorName: string[] }) => {
      printText(renderTargetConf({ ...opts, luns, ...all }));
    });
  cmd.on('option:lun', (arg: string) => {
    luns = [...luns, { arg }];
  });
  cmd.on('option:readonly', flag('readonly'));
  cmd.on('option:cdrom', flag('cdrom'));
}
