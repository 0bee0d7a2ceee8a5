// `virt-iscsi image create|convert`: raw images on the storage host, never over an existing file.
import type { Command } from 'commander';
import { convertImage, createImage } from '../../storage/image.js';
import { formatSize, parseSize } from '../../storage/size.js';
import { addDryRun, addSshOptions, sessionOptions, type HostCommandOptions } from '../options.js';
import { printText } from '../output.js';
import { withSession } from '../session.js';

interface ImageOptions extends HostCommandOptions {
  host: string;
}

function addHost(cmd: Command): Command {
  return addDryRun(addSshOptions(cmd.option('--host <uri>', 'storage host: local or ssh://[user@]host[:port]', 'local')));
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
      .description('create a sparse raw image; refuses to overwrite anything')
      .argument('<path>', 'absolute path on the storage host')
      .requiredOption('--size <size>', 'size, e.g. 10G (K, M, G, T: powers of 1024)'),
  ).action(async (path: string, o: ImageOptions & { size: string }) => {
    const bytes = parseSize(o.size);
    await withSession(sessionOptions(o), async (s) => {
      await createImage(await s.runner(o.host), path, bytes);
      if (!o.dryRun) printText(`created ${path} (${formatSize(bytes)}, sparse raw) on ${o.host}`);
    });
  });
  addHost(
    image
      .command('convert')
      .description('convert an image (qcow2, vmdk, ...) into a new raw file tgt can serve, with a progress bar')
      .argument('<in>', 'image to read')
      .argument('<out>', 'new file to write; refused when it exists')
      .option('--format <fmt>', 'output format', 'raw'),
  ).action(async (input: string, output: string, o: ImageOptions & { format: string }) => {
    await withSession(sessionOptions(o), async (s) => {
      const progress = progressReporter();
      const runner = await s.runner(o.host);
      const r = await convertImage(runner, input, output, { format: o.format, onProgress: (p) => progress.update(p) }).finally(() => progress.done());
      if (!o.dryRun) printText(`converted ${input} (${r.inputFormat}) to ${output} (${o.format}) on ${o.host}`);
    });
  });
}
