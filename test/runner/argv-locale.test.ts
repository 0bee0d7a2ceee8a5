// What every runner does alike: an argument holding a NUL byte is refused with one message
// (locally Node refused it its own way, and over SSH the remote shell cut the word short
// and ran something else), and tools run in the C locale, so parsers read the untranslated
// output they were written for, whatever the user's or the remote login's locale.
// Real parts: LocalRunner, an SshRunner to a real sshd on 127.0.0.1, the dry-run recorder.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '../../src/errors.js';
import { LocalRunner } from '../../src/runner/local.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import { SshRunner } from '../../src/runner/ssh.js';
import { TracingRunner } from '../../src/runner/tracing.js';
import type { Runner } from '../../src/runner/types.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';

let sshd: Sshd;
let ssh: SshRunner;

before(async () => {
  sshd = await startSshd();
  ssh = await SshRunner.connect({ kind: 'ssh', host: '127.0.0.1', user: 'root', port: sshd.port }, { identity: sshd.identity, knownHosts: sshd.knownHosts, sshConfig: 'none' });
});
after(async () => {
  await ssh?.close();
  await sshd?.stop();
});

const runners = (): Array<[string, Runner]> => [
  ['local', new LocalRunner()],
  ['ssh', ssh],
  ['dry run', new RecordingRunner(new LocalRunner())],
  ['traced', new TracingRunner(new LocalRunner(), () => {})],
];

test('a NUL byte in an argument or an environment value: one message from every runner, and nothing runs', async () => {
  const messages = new Set<string>();
  for (const [name, r] of runners()) {
    await assert.rejects(
      async () => r.run(['printf', '%s\\n', 'rm -rf /tmp/x\0 --no-preserve-root']),
      (e: unknown) => {
        assert.ok(e instanceof ValidationError, `${name}: ${String(e)}`);
        messages.add(e.message);
        return true;
      },
      name,
    );
  }
  assert.deepEqual([...messages], ['argument 2 of "printf" holds a NUL byte, which no program can receive: "rm -rf /tmp/x\\u0000 --no-preserve-root"']);
  for (const [name, r] of runners()) {
    await assert.rejects(async () => r.run(['true'], { env: { X: 'a\0b' } }), /environment variable "X" for "true" holds a NUL byte/, name);
  }
  // The SSH connection is still good for the next command.
  assert.equal((await ssh.run(['echo', 'still here'])).stdout, 'still here\n');
});

test('tools run in the C locale, locally and over SSH, whatever locale this process has', async () => {
  const saved = { LC_ALL: process.env.LC_ALL, LANG: process.env.LANG, LANGUAGE: process.env.LANGUAGE };
  Object.assign(process.env, { LC_ALL: 'de_DE.UTF-8', LANG: 'de_DE.UTF-8', LANGUAGE: 'de' });
  try {
    for (const r of [new LocalRunner(), ssh]) {
      const out = await r.run(['sh', '-c', 'echo "$LC_ALL"; stat -L -c %F /']);
      assert.equal(out.stdout, 'C\ndirectory\n', r.host);
      const missing = await r.run(['stat', '--', '/nonexistent-virt-iscsi']);
      assert.match(missing.stderr, /No such file or directory/, r.host);
      // A caller's own env still wins for what it sets.
      assert.equal((await r.run(['sh', '-c', 'echo "$LC_ALL"'], { env: { LC_ALL: 'POSIX' } })).stdout, 'POSIX\n', r.host);
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
