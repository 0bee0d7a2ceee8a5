// SshRunner against a real OpenSSH sshd on 127.0.0.1 (test/helpers/sshd.ts).
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { CommandError, ConnectError, HostKeyError, ValidationError } from '../../src/errors.js';
import { LocalRunner } from '../../src/runner/local.js';
import { openRunner } from '../../src/runner/open.js';
import { remoteCommandLine, SshRunner, sudoProblem, type SshOptions } from '../../src/runner/ssh.js';
import type { Runner } from '../../src/runner/types.js';
import { startDaemon, waitFor } from '../helpers/daemon.js';
import { freePort } from '../helpers/ports.js';
import { startSshd, type Sshd } from '../helpers/sshd.js';
import { HOSTILE } from './hostile.js';

const execFileP = promisify(execFile);

let sshd: Sshd;
let work: string;

before(async () => {
  sshd = await startSshd();
  work = mkdtempSync(join(tmpdir(), 'virt-iscsi-ssh-test-'));
});
after(async () => {
  await sshd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const spec = (): { kind: 'ssh'; host: string; user: string; port: number } => ({ kind: 'ssh', host: '127.0.0.1', user: 'root', port: sshd.port });
/** Never reads the real ~/.ssh/config: every test names its files. */
const opts = (o: SshOptions = {}): SshOptions => ({ identity: sshd.identity, knownHosts: sshd.knownHosts, sshConfig: 'none', ...o });

async function withRunner<T>(fn: (r: SshRunner) => Promise<T>, o: SshOptions = {}): Promise<T> {
  const r = await SshRunner.connect(spec(), opts(o));
  try {
    return await fn(r);
  } finally {
    await r.close();
  }
}

/** Established TCP connections from this machine to the test sshd, as `ss` sees them. */
function connectionsToSshd(): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${sshd.port} )`], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).length;
}

function sshKeygenFingerprint(pubFile: string): string {
  return execFileSync('ssh-keygen', ['-l', '-f', pubFile], { encoding: 'utf8' }).split(' ')[1]!;
}

/**
 * Runs `work` while sampling the server's processes (sshd is on this machine): the most
 * commands tagged `${marker}-N` alive at one moment. The remote login shell carries the
 * whole command line, so a command counts from its session's start to its end.
 */
async function remoteConcurrency<T>(marker: string, work: () => Promise<T>): Promise<{ result: T; most: number }> {
  let done = false;
  let most = 0;
  const sampler = (async () => {
    while (!done) {
      const { stdout } = await execFileP('pgrep', ['-af', marker]).catch(() => ({ stdout: '' }));
      const tags = new Set(stdout.split('\n').flatMap((l) => l.match(new RegExp(`${marker}-\\d+`, 'g')) ?? []));
      most = Math.max(most, tags.size);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    return { result: await work(), most };
  } finally {
    done = true;
    await sampler;
  }
}

async function rejects<E extends Error>(p: Promise<unknown>, type: new (...a: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${type.name}, but it succeeded`);
}

describe('running commands', () => {
  let r: SshRunner;
  before(async () => {
    r = await SshRunner.connect(spec(), opts());
  });
  after(() => r?.close());

  test('stdout, stderr and the exit code, as LocalRunner gives them', async () => {
    const argv = ['sh', '-c', 'printf "out\\n"; printf "err" >&2; exit 3'];
    const remote = await r.run(argv);
    assert.deepEqual(remote, { stdout: 'out\n', stderr: 'err', exitCode: 3 });
    assert.deepEqual(await new LocalRunner().run(argv), remote);
    assert.equal(r.host, `ssh://root@127.0.0.1:${sshd.port}`);
  });

  test('stdin is fed and closed, as a string and as bytes', async () => {
    assert.deepEqual(await r.run(['cat'], { stdin: 'line 1\nline 2' }), { stdout: 'line 1\nline 2', stderr: '', exitCode: 0 });
    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 10]);
    const hex = await r.run(['od', '-An', '-tx1'], { stdin: bytes });
    assert.equal(hex.stdout.trim(), '00 01 02 ff fe 0a');
    // No stdin given: the program sees end of file at once, not a hang.
    assert.deepEqual(await r.run(['wc', '-c']), { stdout: '0\n', stderr: '', exitCode: 0 });
  });

  test('output with no final newline, or ending in what starts like our end marker, arrives exactly', async () => {
    // Commands run on a long-lived shell that marks each one's end (src/runner/ssh-shell.ts).
    const res = await r.run(['sh', '-c', 'printf "a\\n@@virt-iscsi-end-"; printf "@@" >&2; exit 5']);
    assert.deepEqual(res, { stdout: 'a\n@@virt-iscsi-end-', stderr: '@@', exitCode: 5 });
    assert.deepEqual(await r.run(['printf', '%s', 'no newline']), { stdout: 'no newline', stderr: '', exitCode: 0 });
  });

  test('1 MiB through stdin and back arrives whole', async () => {
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
    const sum = await r.run(['sha256sum'], { stdin: data });
    assert.equal(sum.stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'));
    const back = await r.run(['head', '-c', String(1 << 20), '/dev/zero']);
    assert.equal(back.stdout.length, 1 << 20);
  });

  test('a missing program exits 127, as the remote shell reports', async () => {
    const res = await r.run(['virt-iscsi-no-such-program', 'x']);
    assert.equal(res.exitCode, 127);
    assert.match(res.stderr, /virt-iscsi-no-such-program: (command )?not found/);
    assert.equal((await new LocalRunner().run(['virt-iscsi-no-such-program'])).exitCode, 127);
  });

  test('env is passed to the program without AcceptEnv', async () => {
    const res = await r.run(['sh', '-c', 'printf "%s|%s" "$A" "$B_2"'], { env: { A: "it's $(x) `y`", B_2: 'two\nlines' } });
    assert.deepEqual(res, { stdout: "it's $(x) `y`|two\nlines", stderr: '', exitCode: 0 });
    await assert.rejects(r.run(['true'], { env: { 'A;B': 'x' } }), /environment variable name "A;B" is not valid/);
  });

  test('a timeout gives exit 124 and the remote command is ended', async () => {
    const marker = `987.${process.pid}`;
    const started = Date.now();
    const res = await r.run(['sleep', marker], { timeoutMs: 400 });
    const took = Date.now() - started;
    assert.equal(res.exitCode, 124);
    assert.equal(res.stderr, 'sleep: timed out after 400 ms');
    assert.ok(took >= 400 && took < 3000, `took ${took} ms`);
    // The sshd is on this machine: the remote sleep must be gone, not orphaned.
    await waitFor('the timed-out remote sleep to end', () => spawnSync('pgrep', ['-f', `sleep ${marker}`]).status === 1, 10000);
    // The connection is still usable.
    assert.equal((await r.run(['echo', 'ok'])).stdout, 'ok\n');
  });

  test('onOutput streams output as it arrives; the result still holds all of it', async () => {
    const chunks: Array<{ chunk: string; stream: string; at: number }> = [];
    const started = Date.now();
    const res = await r.run(['sh', '-c', 'echo first; sleep 0.6; echo second >&2'], {
      onOutput: (chunk, stream) => chunks.push({ chunk, stream, at: Date.now() - started }),
    });
    const done = Date.now() - started;
    assert.deepEqual(res, { stdout: 'first\n', stderr: 'second\n', exitCode: 0 });
    assert.deepEqual(chunks.map((c) => [c.chunk, c.stream]), [['first\n', 'stdout'], ['second\n', 'stderr']]);
    assert.ok(done - chunks[0]!.at >= 400, `first chunk at ${chunks[0]!.at} ms, done at ${done} ms`);
  });

  test('30 commands in parallel all succeed over ONE TCP connection, at most 4 at once (the default)', async (t) => {
    const marker = `virt-iscsi-par-${process.pid}`;
    const { result: results, most } = await remoteConcurrency(marker, () =>
      Promise.all(Array.from({ length: 30 }, (_, i) => r.run(['sh', '-c', 'sleep 0.2; echo "$SSH_CONNECTION"', 'sh', `${marker}-${i}`]))),
    );
    for (const res of results) assert.equal(res.exitCode, 0, res.stderr);
    // sshd sets SSH_CONNECTION to "client-ip client-port server-ip server-port": one client port, one connection.
    const connections = new Set(results.map((res) => res.stdout.trim()));
    assert.equal(connections.size, 1, [...connections].join('; '));
    assert.match([...connections][0]!, new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${sshd.port}$`));
    assert.equal(connectionsToSshd(), 1);
    // Side by side on the server, never more than our default limit (OpenSSH allows 10 channels).
    t.diagnostic(`at most ${most} commands alive at once on the server`);
    assert.ok(most >= 2 && most <= 4, `at most ${most} commands ran at once`);
  });

  test('the file operations: writeFile with its mode, readFile, removeFile', async () => {
    const dir = join(work, 'files');
    mkdirSync(dir);
    const path = join(dir, 'chap secret.conf');
    await r.writeFile(path, 'user pass\n', { mode: 0o600 });
    // stat over its own channel, by a tool we did not write.
    assert.equal((await r.run(['stat', '-c', '%a %U %s', path])).stdout, '600 root 10\n');
    assert.equal(await r.readFile(path), 'user pass\n');
    // Replacing keeps nothing of the old file: new mode, new content.
    const text = 'ünïcødé ✓\n$(x) `y` \'q\'\nno final newline';
    await r.writeFile(path, text, { mode: 0o644 });
    assert.equal((await r.run(['stat', '-c', '%a', path])).stdout, '644\n');
    assert.equal(readFileSync(path, 'utf8'), text);
    assert.equal(await r.readFile(path), text);
    await r.writeFile(join(dir, 'default-mode'), 'x');
    assert.equal(statSync(join(dir, 'default-mode')).mode & 0o7777, 0o644);
    assert.deepEqual(readdirSync(dir).sort(), ['chap secret.conf', 'default-mode'], 'no temp file left behind');
    await r.removeFile(path);
    await r.removeFile(path); // already gone: still success
    assert.equal(await r.readFile(path), undefined);
    assert.equal(await r.readFile(join(dir, 'never-existed')), undefined);
  });

  test('a failed writeFile throws CommandError, leaves no temp file and never shows the data', async () => {
    const secret = `s3cr3t-${process.pid}`;
    const err = await rejects(r.writeFile(join(work, 'no-such-dir', 'f'), secret, { mode: 0o600 }), CommandError);
    assert.ok(!err.message.includes(secret) && !err.argv.join(' ').includes(secret), err.message);
    const dir = join(work, 'target-is-dir');
    mkdirSync(join(dir, 'conf'), { recursive: true });
    await rejects(r.writeFile(join(dir, 'conf'), secret), CommandError);
    assert.deepEqual(readdirSync(dir), ['conf']);
    assert.deepEqual(readdirSync(join(dir, 'conf')), []);
  });

  test('timing: first command (with handshake) and 20 sequential commands on the reused connection', async (t) => {
    const started = performance.now();
    const fresh = await SshRunner.connect(spec(), opts());
    try {
      const connected = performance.now() - started;
      assert.equal((await fresh.run(['true'])).exitCode, 0);
      const first = performance.now() - started;
      const seqStart = performance.now();
      for (let i = 0; i < 20; i++) assert.equal((await fresh.run(['true'])).exitCode, 0);
      const seq = performance.now() - seqStart;
      t.diagnostic(
        `connect (handshake, auth, id -u): ${connected.toFixed(0)} ms; first command done at ${first.toFixed(0)} ms; ` +
          `20 sequential: ${seq.toFixed(0)} ms (${(seq / 20).toFixed(1)} ms each)`,
      );
      assert.ok(seq / 20 < first, 'a command on the open connection costs less than a new connection');
    } finally {
      await fresh.close();
    }
  });
});

describe('hostile arguments', () => {
  // Prints what the program received: argv, one environment variable, stdin as base64.
  const SCRIPT =
    'process.stdout.write(JSON.stringify({ argv: process.argv.slice(1), env: process.env.VIRT_ISCSI_HOSTILE, stdin: require("fs").readFileSync(0).toString("base64") }))';

  async function received(runner: Runner): Promise<unknown> {
    const res = await runner.run([process.execPath, '-e', SCRIPT, '--', ...HOSTILE], {
      env: { VIRT_ISCSI_HOSTILE: HOSTILE.join('|') },
      stdin: HOSTILE.join('\0'),
    });
    assert.equal(res.exitCode, 0, res.stderr);
    return JSON.parse(res.stdout);
  }

  test('the same hostile list arrives byte for byte through LocalRunner and SshRunner', async () => {
    const expected = { argv: HOSTILE, env: HOSTILE.join('|'), stdin: Buffer.from(HOSTILE.join('\0')).toString('base64') };
    assert.deepEqual(await received(new LocalRunner()), expected);
    await withRunner(async (r) => assert.deepEqual(await received(r), expected));
  });

  test('the hostile list as the remote shell builtin printf receives it', async () => {
    await withRunner(async (r) => {
      const res = await r.run(['printf', '%s\\0', ...HOSTILE]);
      assert.deepEqual(res.stdout.split('\0').slice(0, -1), HOSTILE);
    });
  });

  test('the sudo command line keeps every word (checked by a real sh)', () => {
    const line = remoteCommandLine(['tgtadm', ...HOSTILE], { sudo: true, env: { K: 'a b' }, timeoutMs: 1500 });
    const words = execFileSync('sh', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' }).split('\0').slice(0, -1);
    assert.deepEqual(words, ['sudo', '-n', '--', 'timeout', '-k', '5', '1.5', 'env', 'K=a b', 'tgtadm', ...HOSTILE]);
  });
});

describe('host keys', () => {
  const hostPub = (): string => join(sshd.dir, 'host_ed25519.pub');

  test('unknown host key (empty known_hosts) is refused with its fingerprint', async () => {
    const kh = join(work, 'kh-empty');
    writeFileSync(kh, '');
    const err = await rejects(SshRunner.connect(spec(), opts({ knownHosts: kh })), HostKeyError);
    const fp = sshKeygenFingerprint(hostPub());
    assert.equal(err.message, `host key of 127.0.0.1:${sshd.port} is not known (${fp}); check it and run with --accept-new-host-key to trust it`);
    assert.equal(err.fingerprint, fp);
    assert.equal(readFileSync(kh, 'utf8'), '', 'nothing recorded');
  });

  test('a changed host key is refused, even with --accept-new-host-key', async () => {
    const otherKey = sshd.newKey(`other-host-${Date.now()}`);
    const kh = join(work, 'kh-changed');
    const text = `# hand-written\n[127.0.0.1]:${sshd.port} ${readFileSync(`${otherKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`;
    writeFileSync(kh, text);
    for (const acceptNewHostKey of [false, true]) {
      const err = await rejects(SshRunner.connect(spec(), opts({ knownHosts: kh, acceptNewHostKey })), HostKeyError);
      assert.match(err.message, new RegExp(`^host key of 127\\.0\\.0\\.1:${sshd.port} has CHANGED \\(now SHA256:\\S+; ${kh} line 2 holds another\\)`));
      assert.match(err.message, /refusing to connect/);
    }
    assert.equal(readFileSync(kh, 'utf8'), text, 'known_hosts untouched');
  });

  test('--accept-new-host-key records the key; the next connect works without it', async () => {
    const kh = join(work, 'new-ssh-dir', 'known_hosts');
    await withRunner(async (r) => assert.equal((await r.run(['echo', 'hi'])).stdout, 'hi\n'), { knownHosts: kh, acceptNewHostKey: true });
    assert.equal(readFileSync(kh, 'utf8'), `[127.0.0.1]:${sshd.port} ${sshd.hostKeyPublic}\n`);
    // OpenSSH finds it under the name it would look up.
    assert.equal(spawnSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', kh]).status, 0);
    await withRunner(async (r) => assert.equal((await r.run(['echo', 'again'])).stdout, 'again\n'), { knownHosts: kh });
    assert.equal(readFileSync(kh, 'utf8').split('\n').filter(Boolean).length, 1, 'recorded once');
  });

  test('a known_hosts hashed by ssh-keygen -H is accepted (through openRunner)', async () => {
    const kh = join(work, 'kh-hashed');
    copyFileSync(sshd.knownHosts, kh);
    execFileSync('ssh-keygen', ['-H', '-f', kh], { stdio: 'ignore' });
    assert.match(readFileSync(kh, 'utf8'), /^\|1\|/);
    const r = await openRunner(sshd.uri, opts({ knownHosts: kh }));
    try {
      assert.equal((await r.run(['echo', 'hashed'])).stdout, 'hashed\n');
    } finally {
      await r.close();
    }
  });
});

describe('connecting and authenticating', () => {
  test('a user key the server does not know is refused, naming user, host and key', async () => {
    const wrong = sshd.newKey(`wrong-user-${Date.now()}`);
    const err = await rejects(SshRunner.connect(spec(), opts({ identity: wrong })), ConnectError);
    assert.match(err.message, new RegExp(`^cannot connect to 127\\.0\\.0\\.1:${sshd.port}: permission denied \\(publickey\\) for root@127\\.0\\.0\\.1 \\(tried key ${wrong}`));
  });

  test('a missing --identity file is bad input', async () => {
    const err = await rejects(SshRunner.connect(spec(), opts({ identity: join(work, 'nope') })), ValidationError);
    assert.equal(err.message, `identity file ${JSON.stringify(join(work, 'nope'))} does not exist: expected a private key file`);
  });

  test('a passphrase-protected --identity is bad input that points at ssh-agent', async () => {
    const key = join(work, 'encrypted_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'passphrase', '-f', key]);
    const err = await rejects(SshRunner.connect(spec(), opts({ identity: key })), ValidationError);
    assert.equal(err.message, `identity file ${JSON.stringify(key)} is encrypted with a passphrase: load it into ssh-agent (ssh-add) instead`);
  });

  test('an unreachable port is a ConnectError naming host:port and "connection refused"', async () => {
    const port = await freePort();
    const err = await rejects(SshRunner.connect({ ...spec(), port }, opts()), ConnectError);
    assert.equal(err.message, `cannot connect to 127.0.0.1:${port}: connection refused`);
  });

  test('a server that never answers the handshake times out', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    const port = await freePort();
    await new Promise<void>((resolve) => silent.listen(port, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const err = await rejects(SshRunner.connect({ ...spec(), port }, opts({ connectTimeoutMs: 500 })), ConnectError);
      assert.equal(err.message, `cannot connect to 127.0.0.1:${port}: timed out after 500 ms waiting for the SSH handshake`);
      assert.ok(Date.now() - started < 3000);
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('~/.ssh/config style file: an alias gives HostName, Port, User and IdentityFile', async () => {
    const cfg = join(work, 'ssh_config');
    writeFileSync(cfg, `Host virt-iscsi-test-*\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User root\n  IdentityFile ${sshd.identity}\n`);
    const r = await SshRunner.connect({ kind: 'ssh', host: 'virt-iscsi-test-alias' }, { knownHosts: sshd.knownHosts, sshConfig: cfg });
    try {
      assert.equal(r.host, `ssh://root@virt-iscsi-test-alias:${sshd.port}`);
      assert.equal((await r.run(['id', '-un'])).stdout, 'root\n');
    } finally {
      await r.close();
    }
  });

  test('the ssh-agent (SSH_AUTH_SOCK) is used when no key file is given', async () => {
    const sock = join(work, 'agent.sock');
    const agent = startDaemon(['ssh-agent', '-D', '-a', sock]);
    const saved = process.env.SSH_AUTH_SOCK;
    try {
      await waitFor('ssh-agent socket', () => spawnSync('test', ['-S', sock]).status === 0, 5000);
      execFileSync('ssh-add', [sshd.identity], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      process.env.SSH_AUTH_SOCK = sock;
      const r = await SshRunner.connect(spec(), { knownHosts: sshd.knownHosts, sshConfig: 'none' });
      try {
        assert.equal((await r.run(['echo', 'agent'])).stdout, 'agent\n');
      } finally {
        await r.close();
      }
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      await agent.stop();
    }
  });

  test('close() ends the connection; later commands fail with ConnectError', async () => {
    const before = connectionsToSshd();
    const r = await SshRunner.connect(spec(), opts());
    assert.equal(connectionsToSshd(), before + 1);
    await r.close();
    await waitFor('the connection to close', () => connectionsToSshd() === before, 3000);
    await rejects(r.run(['true']), ConnectError);
  });

  test('a connection lost mid-command is a ConnectError, and so is every command after it', async () => {
    const marker = `31.${process.pid}`;
    const r = await SshRunner.connect(spec(), opts());
    let sleepPid = 0;
    try {
      const running = r.run(['sleep', marker]);
      await waitFor('the remote sleep', () => (sleepPid = Number(spawnSync('pgrep', ['-f', `^sleep ${marker}$`], { encoding: 'utf8' }).stdout.trim())) > 0, 10000);
      // Walk up from the sleep to the sshd process serving this connection, and kill it.
      let pid = sleepPid;
      const parentOf = (p: number): number => Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      while (parentOf(pid) !== sshd.pid) pid = parentOf(pid);
      process.kill(pid, 'SIGKILL');
      const err = await rejects(running, ConnectError);
      assert.match(err.message, new RegExp(`^lost the connection to 127\\.0\\.0\\.1:${sshd.port} while running sleep`));
      await rejects(r.run(['true']), ConnectError);
    } finally {
      await r.close();
      if (sleepPid) spawnSync('kill', [String(sleepPid)]);
    }
  });

  test('maxChannels queues commands beyond the limit', async () => {
    const marker = `virt-iscsi-q-${process.pid}`;
    await withRunner(
      async (r) => {
        const { result, most } = await remoteConcurrency(marker, () =>
          Promise.all(Array.from({ length: 6 }, (_, i) => r.run(['sh', '-c', 'sleep 0.3', 'sh', `${marker}-${i}`]))),
        );
        assert.ok(result.every((x) => x.exitCode === 0));
        assert.ok(most >= 1 && most <= 2, `at most ${most} commands ran at once`);
      },
      { maxChannels: 2 },
    );
  });
});

test('plan-only: sudoProblem explains why sudo -n cannot be used, in one line', () => {
  // plan-only: no non-root login works here (every account with a shell is locked, the test sshd runs UsePAM no, sudo is not installed).
  const where = '127.0.0.1:22';
  assert.equal(sudoProblem({ stdout: '', stderr: '', exitCode: 0 }, 'ops', where), undefined);
  assert.equal(
    sudoProblem({ stdout: '', stderr: 'sudo: a password is required\n', exitCode: 1 }, 'ops', where),
    'sudo on 127.0.0.1:22 needs a password for ops: allow ops to run it without one (NOPASSWD in sudoers), or connect as root',
  );
  assert.match(
    sudoProblem({ stdout: '', stderr: 'bash: line 1: sudo: command not found\n', exitCode: 127 }, 'ops', where)!,
    /^ops on 127\.0\.0\.1:22 is not root and sudo is not installed there/,
  );
  assert.equal(
    sudoProblem({ stdout: '', stderr: 'sudo: account validation failure, is your account locked?\n', exitCode: 1 }, 'ops', where),
    'ops on 127.0.0.1:22 is not root and cannot use sudo: sudo: account validation failure, is your account locked?',
  );
});
