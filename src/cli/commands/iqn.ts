// `virt-iscsi iqn check|generate`: pure, touch nothing.
import type { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { checkIscsiName, generateIqn } from '../../names/iscsi-name.js';
import { addJson } from '../options.js';
import { printJson, printText } from '../output.js';

export function registerIqn(program: Command): void {
  const iqn = program.command('iqn').description('check and generate iSCSI names (RFC 3720/7143)');
  addJson(
    iqn
      .command('check')
      .argument('<name>', 'an iqn., eui. or naa. name')
      .description('print the normalised (lower-case) name, or say what is wrong with it and exit 1'),
  ).action((name: string, o: { json?: boolean }) => {
    const r = checkIscsiName(name);
    if (o.json) {
      printJson(r.ok ? { valid: true, name: r.name, kind: r.kind } : { valid: false, name, problem: r.problem });
      if (!r.ok) process.exitCode = 1;
      return;
    }
    if (!r.ok) throw new ValidationError(`${JSON.stringify(name)} is not a valid iSCSI name: ${r.problem}`, 'name');
    printText(r.name);
  });
  iqn
    .command('generate')
    .argument('[suffix]', 'identifier after the ":" (made lower case; other characters become "-")')
    .option('--date <YYYY-MM>', 'when the authority owned the domain (default: this month)')
    .option('--authority <domain>', 'your domain name, e.g. example.com', 'localdomain')
    .description('print iqn.YYYY-MM.<reversed authority>[:suffix]')
    .action((suffix: string | undefined, o: { date?: string; authority: string }) => {
      printText(generateIqn({ date: o.date, authority: o.authority, suffix }));
    });
}
