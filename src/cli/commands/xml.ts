// `virt-iscsi xml ...`: print documents built from flags; touch nothing.
import type { Command } from 'commander';
import { addXmlTargetConfCommand } from './xml-target-conf.js';

export function registerXml(program: Command): void {
  const xml = program.command('xml').description('print the XML / config documents virt-iscsi would write (touches nothing)');
  addXmlTargetConfCommand(xml);
}
