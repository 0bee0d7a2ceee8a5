// `virt-iscsi init [--template NAME] [FILE]`: writes a starter document from the
// package's templates/ (stack files, a tgt target, a multipath drop-in, a VM domain) to
// FILE, never over an existing file, or to stdout. `--list` names them.
import { constants } from 'node:fs';
import { readdirSync } from 'node:fs';
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { printText } from '../output.js';
import { packagePath } from '../package-root.js';

const TEMPLATES = `${packagePath('templates')}/`;
const SCHEMA = packagePath('schema', 'stack.schema.json');
const DEFAULT_TEMPLATE = 'data-disk';

/** Template names: stack files by their name without .yaml, the others by their file name. */
export async function templateNames(): Promise<Array<{ name: string; file: string }>> {
  const files = (await readdir(TEMPLATES)).filter((f) => !f.startsWith('.')).sort();
  return files.map((file) => ({ name: file.replace(/\.yaml$/, ''), file }));
}

/** The first sentence of the template's opening comment: what it is for. */
function summary(text: string): string {
  const lines = text.split('\n').map((l) => l.replace(/^\s*(?:#|<!--|-->)\s?/, '').trim());
  let i = lines.findIndex((l) => l !== '' && !l.startsWith('yaml-language-server'));
  const words: string[] = [];
  for (; i >= 0 && i < lines.length && lines[i] !== ''; i++) {
    words.push(lines[i]!);
    if (/[.:]$/.test(lines[i]!)) break;
  }
  const sentence = words.join(' ').replace(/^Use case:\s*/, '');
  const end = sentence.search(/[.:](?:\s|$)/);
  return end > 0 ? sentence.slice(0, end) : sentence;
}

/** /dev/kvm usable by this user: the domain template gets type kvm, else qemu (TCG). */
async function kvmUsable(): Promise<boolean> {
  return access('/dev/kvm', constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
}

/** The template's text as written out: the schema named by its installed path, the domain type this host can run. */
export async function renderTemplate(name: string): Promise<string> {
  const all = await templateNames();
  const hit = all.find((t) => t.name === name || t.file === name);
  if (!hit) throw new ValidationError(`template ${JSON.stringify(name)} is not known; expected one of ${all.map((t) => t.name).join(', ')} (virt-iscsi init --list)`, 'template');
  let text = await readFile(`${TEMPLATES}${hit.file}`, 'utf8');
  if (hit.file.endsWith('.yaml')) text = text.replace(/^# yaml-language-server: \$schema=\S+/, `# yaml-language-server: $schema=${SCHEMA}`);
  if (hit.file.endsWith('.xml') && (await kvmUsable())) text = text.replace("<domain type='qemu'>", "<domain type='kvm'>");
  return text;
}

interface InitFlags {
  template?: string;
  list?: boolean;
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a starter file from the templates: stack files, a tgt target, a multipath drop-in, a VM domain')
    .argument('[file]', 'where to write it (never over an existing file); default: stdout')
    .addOption(
      // The names are known when the command is defined: commander refuses others, and shells complete them.
      new Option('-t, --template <name>', `which one (default ${DEFAULT_TEMPLATE}; --list says what each is)`).choices(
        readdirSync(TEMPLATES)
          .filter((f) => !f.startsWith('.'))
          .sort()
          .map((f) => f.replace(/\.yaml$/, '')),
      ),
    )
    .option('--list', 'list the templates and what each is for')
    .action(async (file: string | undefined, o: InitFlags) => {
      if (o.list) {
        if (file !== undefined || o.template !== undefined) throw new ValidationError('--list takes no template and no file', 'list');
        const rows = await Promise.all((await templateNames()).map(async (t) => [t.name, summary(await readFile(`${TEMPLATES}${t.file}`, 'utf8'))] as const));
        const width = Math.max(...rows.map(([n]) => n.length));
        printText(rows.map(([n, s]) => `${n.padEnd(width)}  ${s}`).join('\n'));
        return;
      }
      const text = await renderTemplate(o.template ?? DEFAULT_TEMPLATE);
      if (file === undefined) {
        process.stdout.write(text);
        return;
      }
      // 'wx': created here or refused; a file that is there is never opened for writing.
      await writeFile(file, text, { flag: 'wx', mode: 0o644 }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') throw new ValidationError(`${JSON.stringify(file)} already exists; refusing to overwrite it (give another file name)`, 'file');
        throw new ValidationError(`${JSON.stringify(file)} cannot be written: ${e.code ?? e.message}`, 'file');
      });
      printText(`wrote ${file} from template ${o.template ?? DEFAULT_TEMPLATE}`);
    });
}
