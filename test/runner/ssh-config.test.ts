import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ValidationError } from '../../src/errors.js';
import { loadSshHostConfig, parseSshConfig, resolveSshConfig } from '../../src/runner/ssh-config.js';
import { matchGlob, matchPatternList } from '../../src/runner/ssh-pattern.js';

const dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-sshconfig-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = `# storage hosts
Host storage-? !storage-9
    HostName %h.lab.example
    User admin
    Port 2222
    IdentityFile ~/.ssh/storage_%r@%h
    IdentityFile "/keys/with space/id_%u"

Host=backup
  HostName = 192.0.2.10   # the old box
  Port=2200

Match host storage-1
  User nobody

Host *.lab
  User labuser
  IdentityFile %d/.ssh/lab_key

Host *
  User fallback
  Port 22
  IdentityFile ~/.ssh/id_all
`;

const ctx = { home: '/home/me', localUser: 'me' };

test('parseSshConfig: Host blocks, "=" syntax, quotes and comments', () => {
  const blocks = parseSshConfig(CONFIG);
  assert.deepEqual(
    blocks.map((b) => b.patterns),
    [['*'], ['storage-?', '!storage-9'], ['backup'], null, ['*.lab'], ['*']],
  );
  const backup = blocks[2]!.entries;
  assert.deepEqual(backup.map((e) => [e.keyword, e.args]), [['hostname', ['192.0.2.10']], ['port', ['2200']]]);
  assert.deepEqual(blocks[1]!.entries[4], { keyword: 'identityfile', args: ['/keys/with space/id_%u'], line: 7 });
});

test('resolveSshConfig: first value wins, IdentityFile accumulates with ~ and % tokens expanded', () => {
  const r = resolveSshConfig(parseSshConfig(CONFIG), 'storage-1', ctx);
  assert.deepEqual(r, {
    hostName: 'storage-1.lab.example',
    user: 'admin', // the Match block is not evaluated
    port: 2222,
    identityFiles: ['/home/me/.ssh/storage_admin@storage-1.lab.example', '/keys/with space/id_me', '/home/me/.ssh/id_all'],
  });
});

test('resolveSshConfig: a negated pattern excludes the host from its block', () => {
  const r = resolveSshConfig(parseSshConfig(CONFIG), 'storage-9', ctx);
  assert.deepEqual(r, { hostName: 'storage-9', user: 'fallback', port: 22, identityFiles: ['/home/me/.ssh/id_all'] });
});

test('resolveSshConfig: the host URI user and port override the config', () => {
  const r = resolveSshConfig(parseSshConfig(CONFIG), 'backup', { ...ctx, user: 'root', port: 2022 });
  assert.equal(r.hostName, '192.0.2.10');
  assert.equal(r.user, 'root');
  assert.equal(r.port, 2022);
});

test('resolveSshConfig: with no config, the host as given, the local user and port 22', () => {
  assert.deepEqual(resolveSshConfig([], 'h1', ctx), { hostName: 'h1', user: 'me', port: 22, identityFiles: [] });
});

test('resolveSshConfig: a bad Port names the file, line and value', () => {
  const blocks = parseSshConfig('Host x\n  Port 99999\n');
  assert.throws(
    () => resolveSshConfig(blocks, 'x', { ...ctx, file: '/cfg' }),
    (e: unknown) => e instanceof ValidationError && e.message === '/cfg:2: Port "99999" is not a port: expected 1-65535',
  );
});

test('resolveSshConfig: an unknown % token is refused', () => {
  const blocks = parseSshConfig('IdentityFile ~/.ssh/%z\n');
  assert.throws(() => resolveSshConfig(blocks, 'x', ctx), /"%z" is not a token we expand in identityfile/);
});

test('loadSshHostConfig: reads the file it is given; a missing file or "none" is an empty config', async () => {
  const file = join(dir, 'config');
  writeFileSync(file, CONFIG);
  const r = await loadSshHostConfig('Backup', file);
  assert.equal(r.hostName, '192.0.2.10'); // host patterns match case-insensitively
  assert.equal(r.port, 2200);
  assert.equal(r.user, 'fallback');
  assert.deepEqual(r.identityFiles, [join(homedir(), '.ssh/id_all')]);
  const none = await loadSshHostConfig('backup', join(dir, 'missing'));
  assert.deepEqual(none, { hostName: 'backup', user: userInfo().username, port: 22, identityFiles: [] });
  assert.deepEqual(await loadSshHostConfig('backup', 'none'), none);
});

test('ssh patterns: * and ? globs, ! negation, case-insensitive', () => {
  assert.equal(matchGlob('*.example.com', 'a.b.EXAMPLE.com'), true);
  assert.equal(matchGlob('host?', 'host12'), false);
  assert.equal(matchGlob('h*t*', 'host'), true);
  assert.equal(matchGlob('[127.0.0.1]:22*', '[127.0.0.1]:2222'), true);
  assert.equal(matchPatternList(['10.0.0.*', '!10.0.0.5'], '10.0.0.5'), 'negated');
  assert.equal(matchPatternList(['10.0.0.*', '!10.0.0.5'], '10.0.0.6'), 'match');
  assert.equal(matchPatternList(['!10.0.0.5'], '10.0.0.6'), 'none');
});
