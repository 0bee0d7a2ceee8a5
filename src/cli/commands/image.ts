// `virt-iscsi image create|convert`: raw images on the storage host, or RBD images in a
// Ceph cluster (`rbd:POOL/IMAGE`), never over an existing file or image.
import type { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import { convertImage, createImage } from '../../storage/image.js';
import { convertToRbd, createRbdImage } from '../../storage/rbd/image.js';
import { formatRbdRef, isRbdRef, parseRbdRef } from '../../storage/rbd/ref.js';
import { formatSize, parseSize } from '../../storage/size.js';
import { addCephOptions, cephClientFromFlags, type CephFlags } from '../ceph-options.js';
import { addDryRun, addSshOptions, sessionOptions, type HostCommandOptions } from '../options.js';
import { printText } from '../output.js';
import { withSession } from '../session.js';

interface ImageOptions extends HostCommandOptions, CephFlags {
  host: string;
}

function addHost(cmd: Command): Command {
  return addDryRun(
    addSshOptions(addCephOptions(cmd.option('--host <uri>', 'storage host (for rbd: images, a host with the Ceph client tools): local or ssh://[user@]host[:port]', 'local'))),
  );
}

/** Ceph flags given with a file path are a mistake worth saying: they would be ignored. */
function noCephFlags(o: CephFlags, what: string): void {
  const given = (['cephConf', 'cephId', 'cephKeyring'] as const).find((k) => o[k] !== undefined);
  if (given) throw new ValidationError(`--${given.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for rbd:POOL/IMAGE images; ${JSON.stringify(what)} is a file`, 'ceph');
}

/** "[##########----------]  50%" */
export function progressBar(percent: number, width = 30): string {
  const filled = Math.round((Math.max(0, Math.min(100, percent)) / 100) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${percent.toFixed(0).padStart(3)}%`;
}

/**
 * Progress on stderr (stdout stays for results): a bar redrawn in place on a terminal,
 * otherwise a plain line at every 10% so logs stay short.
 */
export function progressReporter(stream: NodeJS.WriteStream = process.stderr): { update(p: number): void; done(): void } {
  let lastStep = -1;
  let drawn = false;
  return {
    update(p) {
      if (stream.isTTY) {
        stream.write(`\r${progressBar(p)}`);
        drawn = true;
        return;
      }
      const step = Math.floor(p / 10);
      if (step > lastStep) {
        lastStep = step;
        stream.write(`converting: ${step * 10}%\n`);
      }
    },
    done() {
      if (drawn) stream.write('\n');
    },
  };
}

export function registerImage(program: Command): void {
  const image = program.command('image').description('raw disk images on the storage host');
  addHost(
    image
      .command('create')
      .description('create a sparse raw image, or a thin RBD image (rbd:POOL/IMAGE); refuses to overwrite anything')
      .argument('<path>', 'absolute path on the storage host, or rbd:POOL/IMAGE')
      .requiredOption('--size <size>', 'size, e.g. 10G (K, M, G, T: powers of 1024)'),
  ).action(async (path: string, o: ImageOptions & { size: string }) => {
    const bytes = parseSize(o.size);
    const ref = isRbdRef(path) ? parseRbdRef(path) : undefined;
    const client = ref ? cephClientFromFlags(o) : (noCephFlags(o, path), undefined);
    await withSession(sessionOptions(o), async (s) => {
      const runner = await s.runner(o.host);
      if (ref) await createRbdImage(runner, ref, bytes, client);
      else await createImage(runner, path, bytes);
      if (!o.dryRun) printText(ref ? `created ${formatRbdRef(ref)} (${formatSize(bytes)}, thin RBD image) from ${o.host}` : `created ${path} (${formatSize(bytes)}, sparse raw) on ${o.host}`);
    });
  });
  addHost(
    image
      .command('convert')
      .description('convert an image (qcow2, vmdk, ...) into a new raw file tgt can serve, or into a new RBD image (rbd:POOL/IMAGE), with a progress bar')
      .argument('<in>', 'image to read')
      .argument('<out>', 'new file to write, or rbd:POOL/IMAGE; refused when it exists')
      .option('--format <fmt>', 'output format (RBD images are raw)', 'raw'),
  ).action(async (input: string, output: string, o: ImageOptions & { format: string }) => {
    const ref = isRbdRef(output) ? parseRbdRef(output) : undefined;
    if (ref && o.format !== 'raw') throw new ValidationError(`--format ${JSON.stringify(o.format)}: RBD images are written raw (QEMU and tgt read them so)`, 'format');
    const client = ref ? cephClientFromFlags(o) : (noCephFlags(o, output), undefined);
    await withSession(sessionOptions(o), async (s) => {
      const progress = progressReporter();
      const runner = await s.runner(o.host);
      const onProgress = (p: number): void => progress.update(p);
      const r = await (ref ? convertToRbd(runner, input, ref, client, { onProgress }) : convertImage(runner, input, output, { format: o.format, onProgress })).finally(() => progress.done());
      if (!o.dryRun) printText(`converted ${input} (${r.inputFormat}) to ${output} (${o.format}) on ${o.host}`);
    });
  });
}
