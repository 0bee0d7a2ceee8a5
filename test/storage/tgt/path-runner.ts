// A real host without tgt: a LocalRunner whose commands find only the programs linked
// into a private bin directory (PATH is all a shell or execa searches).
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalRunner } from '../../../src/runner/local.js';
import type { RunOptions, RunResult, Runner, WriteFileOptions } from '../../../src/runner/types.js';

export class PathRunner implements Runner {
  readonly host = 'local';
  private readonly inner = new LocalRunner();
  readonly bin: string;

  /** `programs`: absolute paths of the only programs this host has. */
  constructor(programs: readonly string[]) {
    this.bin = mkdtempSync(join(tmpdir(), 'virt-iscsi-bin-'));
    for (const p of programs) symlinkSync(p, join(this.bin, p.split('/').pop()!));
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.inner.run(argv, { ...options, env: { ...options.env, PATH: this.bin } });
  }
  writeFile(path: string, data: string, options?: WriteFileOptions): Promise<void> {
    return this.inner.writeFile(path, data, options);
  }
  readFile(path: string): Promise<string | undefined> {
    return this.inner.readFile(path);
  }
  removeFile(path: string): Promise<void> {
    return this.inner.removeFile(path);
  }
  async close(): Promise<void> {
    rmSync(this.bin, { recursive: true, force: true });
  }
}
