// libvirt's own schemas (virt-xml-validate) over many documents at once: one process per
// pool/secret document, run a few at a time; disks go into one domain per batch.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { wrapInDomain } from '../helpers/xml-validate.js';

const run = promisify(execFile);

/** Throws naming every document virt-xml-validate rejects, with its output. */
export async function validateAll(docs: readonly string[], schema: 'storagepool' | 'secret' | 'domain', parallel = 4): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vit-xml-batch-'));
  const failures: string[] = [];
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < docs.length) {
        const i = next++;
        const file = join(dir, `${i}.xml`);
        await writeFile(file, docs[i]!);
        try {
          await run('virt-xml-validate', [file, schema]);
        } catch (e) {
          const err = e as { stdout?: string; stderr?: string };
          failures.push(`document ${i} rejected as ${schema}:\n${docs[i]}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
        }
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (failures.length > 0) throw new Error(failures.join('\n\n'));
}

/** Every disk inside one minimal domain; when that fails, each alone, to name the bad ones. */
export async function validateDisks(disks: readonly string[]): Promise<void> {
  try {
    await validateAll([wrapInDomain(disks.join('\n'))], 'domain');
  } catch {
    await validateAll(disks.map((d) => wrapInDomain(d)), 'domain');
    throw new Error('the disks fail together in one domain but pass one by one');
  }
}
