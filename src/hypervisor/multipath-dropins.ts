// The dm-multipath drop-ins virt-iscsi writes on a hypervisor: one file per export in
// multipathd's conf.d, named virt-iscsi-NAME.conf, its first line a "# virt-iscsi" comment.
// A file without that line is someone else's, whatever its name: never read further,
// never removed.
import { posix } from 'node:path';
import { commandError } from '../runner/check.js';
import type { Runner } from '../runner/types.js';

export const MULTIPATH_CONF_DIR = '/etc/multipath/conf.d';

const FILE = /^virt-iscsi-([a-z0-9][a-z0-9.-]{0,47})\.conf$/;
const HEADER = /^# virt-iscsi\b/;

export interface DropIn {
  file: string;
  /** The export it was written for. */
  name: string;
}

/**
 * Our drop-ins in `dir`. `find DIR -maxdepth 1 -type f -name 'virt-iscsi-*.conf'` prints one
 * path a line; a missing directory (exit 1, "No such file or directory") holds none.
 */
export async function ourDropIns(runner: Runner, dir = MULTIPATH_CONF_DIR): Promise<DropIn[]> {
  const argv = ['find', dir, '-maxdepth', '1', '-type', 'f', '-name', 'virt-iscsi-*.conf'];
  const r = await runner.run(argv, { query: true });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw commandError(runner, argv, r);
  }
  const found = r.stdout
    .split('\n')
    .filter(Boolean)
    .flatMap((file) => {
      const m = FILE.exec(posix.basename(file));
      return m ? [{ file, name: m[1]! }] : [];
    });
  const texts = await Promise.all(found.map((f) => runner.readFile(f.file)));
  return found.filter((_, i) => HEADER.test(texts[i] ?? ''));
}

/** The drop-in of one export. */
export const dropInPath = (name: string, dir = MULTIPATH_CONF_DIR): string => posix.join(dir, `virt-iscsi-${name}.conf`);

/**
 * The drop-in of one export: its LUN's WWID with the settings of a LUN every path of which
 * reaches the same target process (tgt and LIO have no ALUA to say which path is best):
 * all paths carry I/O; a path back is used at once; with every path down, I/O queues for
 * 12 checks (about 60 s at the 5 s polling interval) and then fails, so the guest sees an
 * error instead of hanging for ever.
 */
export function dropInText(name: string, wwid: string, target: string): string {
  return [
    `# virt-iscsi: export ${name} (${target}); \`virt-iscsi unexport ${name}\` removes this file`,
    'multipaths {',
    '\tmultipath {',
    `\t\twwid ${wwid}`,
    '\t\tpath_grouping_policy multibus',
    '\t\tpath_selector "service-time 0"',
    '\t\tfailback immediate',
    '\t\tno_path_retry 12',
    '\t}',
    '}',
    '',
  ].join('\n');
}
