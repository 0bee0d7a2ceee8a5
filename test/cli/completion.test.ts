// `virt-iscsi completion bash|zsh`, loaded into a real bash (and zsh through its bash
// compatibility, when zsh is installed): the completion is registered, and the function
// completes command names, subcommands, flags, a flag's choices, and export names from a
// temporary state dir, as the shell calls it (COMP_WORDS / COMP_CWORD in, COMPREPLY out).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProgram } from '../../src/cli/main.js';
import { completionScript } from '../../src/cli/completion.js';
import { EXPORT_MODES } from '../../src/workflows/modes.js';
import { cli } from '../helpers/cli.js';

/** Each case: the words of the line (the last is the one being completed) and the expected candidates. */
const CASES: Array<[string[], string[]]> = [
  [['virt-iscsi', 'po'], ['pool']],
  [['virt-iscsi', 'un'], ['unexport']],
  [['virt-iscsi', 'pool', ''], ['create', 'delete', 'list', 'volumes']],
  [['virt-iscsi', 'export', '/srv/a.img', '--mo'], ['--mode']],
  [['virt-iscsi', 'export', '/srv/a.img', '--mode', ''], [...EXPORT_MODES]],
  [['virt-iscsi', 'pool', 'create', 'p', '--ty'], ['--type']],
  [['virt-iscsi', 'unexport', ''], ['db-logs', 'web1-data']],
  [['virt-iscsi', 'unexport', 'we'], ['web1-data']],
  [['virt-iscsi', '--json', 'status', 'web1-data', 'd'], ['db-logs']],
  [['virt-iscsi', 'completion', ''], ['bash', 'zsh']],
  [['virt-iscsi', 'init', '--template', 'multi'], ['multipath.conf', 'multipath']],
];

function stateDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'vit-completion-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'virt-iscsi', 'exports'), { recursive: true });
  for (const name of ['web1-data', 'db-logs']) writeFileSync(join(dir, 'virt-iscsi', 'exports', `${name}.json`), '{}');
  return dir;
}

/** A shell function `t WORDS...` that prints "COMPREPLY" one candidate a line, after a "--" line. */
const DRIVER = 't() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _virt_iscsi; echo --; for c in "${COMPREPLY[@]}"; do echo "$c"; done; }';

function drive(shell: 'bash' | 'zsh', script: string, prelude: string, dir: string, words: string[]): string[] {
  const line = `t ${words.map((w) => `'${w}'`).join(' ')}`;
  const r = spawnSync(shell, ['-c', `source ${script}\n${prelude}\n${DRIVER}\n${line}`], { encoding: 'utf8', env: { ...process.env, XDG_STATE_HOME: dir, HOME: dir } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('--\n')[1]!.split('\n').filter(Boolean).sort();
}

test('completion bash: sourced in bash, `complete -p` shows it, and the function completes commands, flags, choices and export names', async (t) => {
  const dir = stateDir(t);
  const r = await cli('completion', 'bash');
  assert.equal(r.status, 0, r.stderr);
  const script = join(dir, 'virt-iscsi.bash');
  writeFileSync(script, r.stdout);
  const reg = spawnSync('bash', ['-c', `source ${script} && complete -p virt-iscsi`], { encoding: 'utf8' });
  assert.equal(reg.stdout.trim(), 'complete -F _virt_iscsi virt-iscsi', reg.stderr);
  for (const [words, want] of CASES) assert.deepEqual(drive('bash', script, '', dir, words), [...want].sort(), words.join(' '));
  // Files where a file goes.
  writeFileSync(join(dir, 'stack-one.yaml'), 'stack: one\n');
  assert.deepEqual(drive('bash', script, '', dir, ['virt-iscsi', 'apply', '-f', join(dir, 'stack-')]), [join(dir, 'stack-one.yaml')]);
});

test('completion: every command and flag of the program is in the script (made from commander, not a list)', async () => {
  const program = await buildProgram();
  const script = completionScript(program, 'bash');
  for (const cmd of program.commands) {
    assert.match(script, new RegExp(`\\['@'\\]='[^']*\\b${cmd.name()}\\b`), cmd.name());
    for (const sub of cmd.commands) {
      const flags = sub.options.map((o) => o.long).filter(Boolean) as string[];
      const line = new RegExp(`\\['@${cmd.name()} ${sub.name()}'\\]='([^']*)'`).exec(script.slice(script.indexOf('_flags=(')));
      assert.ok(line, `${cmd.name()} ${sub.name()}`);
      for (const f of flags) assert.ok(line[1]!.split(' ').includes(f), `${cmd.name()} ${sub.name()} ${f}`);
    }
  }
});

const zsh = spawnSync('zsh', ['--version']).status === 0;

test('completion zsh: through bashcompinit, the same completions', { skip: zsh ? false : 'zsh is not installed here' }, async (t) => {
  const dir = stateDir(t);
  const r = await cli('completion', 'zsh');
  assert.equal(r.status, 0, r.stderr);
  const script = join(dir, 'virt-iscsi.zsh');
  writeFileSync(script, r.stdout);
  const reg = spawnSync('zsh', ['-c', `source ${script} && print -r -- $_comps[virt-iscsi]`], { encoding: 'utf8', env: { ...process.env, HOME: dir } });
  assert.equal(reg.stdout.trim(), '_bash_complete -F _virt_iscsi', reg.stderr);
  // bashcompinit runs completion functions in sh emulation: the driver does the same.
  for (const [words, want] of CASES) assert.deepEqual(drive('zsh', script, 'emulate sh; setopt kshglob noshglob braceexpand', dir, words), [...want].sort(), words.join(' '));
});
