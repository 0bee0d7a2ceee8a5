// known_hosts parsing and matching, checked against OpenSSH's own ssh-keygen
// (it generates the keys, hashes the files with -H and looks names up with -F).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  appendKnownHost,
  checkHostKey,
  fingerprint,
  hostFieldMatches,
  keyTypeOf,
  knownHostsEntry,
  knownKeyTypes,
  parseKnownHosts,
} from '../../src/runner/known-hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'virt-iscsi-knownhosts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function keygen(name: string, type: string): { line: string; blob: Buffer; file: string } {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', name, '-f', file]);
  const line = readFileSync(`${file}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  return { line, blob: Buffer.from(line.split(' ')[1]!, 'base64'), file };
}

const server = keygen('server', 'ed25519');
const other = keygen('other', 'ed25519');
const ecdsa = keygen('ecdsa', 'ecdsa');

/** ssh-keygen -F: does OpenSSH find `name` in the file? */
function opensshFinds(file: string, name: string): boolean {
  return spawnSync('ssh-keygen', ['-F', name, '-f', file]).status === 0;
}

test('fingerprint and key type agree with ssh-keygen -l', () => {
  const printed = execFileSync('ssh-keygen', ['-l', '-f', `${server.file}.pub`], { encoding: 'utf8' }).split(' ')[1];
  assert.equal(fingerprint(server.blob), printed);
  assert.equal(keyTypeOf(server.blob), 'ssh-ed25519');
  assert.equal(keyTypeOf(ecdsa.blob), 'ecdsa-sha2-nistp256');
});

test('plain, bracketed-port, comma-list and wildcard entries: known, changed, unknown', () => {
  const text = [
    '# comment line',
    `storage1,192.0.2.7 ${server.line}`,
    `[127.0.0.1]:2222 ${other.line}`,
    `*.lab.example,!bad.lab.example ${server.line} a comment`,
    `[127.0.0.1]:2222 ${ecdsa.line}`,
    '',
  ].join('\n');
  const lines = parseKnownHosts(text);
  assert.equal(lines.length, 4);
  assert.deepEqual(checkHostKey(lines, 'storage1', 22, server.blob), { status: 'known' });
  assert.deepEqual(checkHostKey(lines, '192.0.2.7', 22, server.blob), { status: 'known' });
  assert.deepEqual(checkHostKey(lines, 'x.LAB.example', 22, server.blob), { status: 'known' });
  // The same host on another port is another name.
  assert.deepEqual(checkHostKey(lines, 'storage1', 2222, server.blob), { status: 'unknown', otherTypes: [] });
  // Negated pattern: the line does not apply at all.
  assert.deepEqual(checkHostKey(lines, 'bad.lab.example', 22, server.blob), { status: 'unknown', otherTypes: [] });
  // Another ed25519 key for [127.0.0.1]:2222 is on line 3: a change.
  assert.deepEqual(checkHostKey(lines, '127.0.0.1', 2222, server.blob), { status: 'changed', line: 3 });
  assert.deepEqual(knownKeyTypes(lines, '127.0.0.1', 2222), ['ssh-ed25519', 'ecdsa-sha2-nistp256']);
  // Only an ed25519 key known for storage1: an ecdsa key is unknown, not changed.
  assert.deepEqual(checkHostKey(lines, 'storage1', 22, ecdsa.blob), { status: 'unknown', otherTypes: ['ssh-ed25519'] });
  // OpenSSH agrees on which names the file holds.
  const file = join(dir, 'kh-plain');
  writeFileSync(file, text);
  for (const [name, found] of [['storage1', true], ['[127.0.0.1]:2222', true], ['[storage1]:2222', false]] as const) {
    assert.equal(opensshFinds(file, name), found, name);
  }
});

test('entries hashed by ssh-keygen -H still match, only for their name', () => {
  const file = join(dir, 'kh-hashed');
  writeFileSync(file, `[127.0.0.1]:2222 ${server.line}\nstorage1 ${other.line}\n`);
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
  const lines = parseKnownHosts(readFileSync(file, 'utf8'));
  assert.ok(lines.every((l) => l.hosts.startsWith('|1|')), 'ssh-keygen hashed every line');
  assert.deepEqual(checkHostKey(lines, '127.0.0.1', 2222, server.blob), { status: 'known' });
  assert.deepEqual(checkHostKey(lines, 'STORAGE1', 22, other.blob), { status: 'known' });
  assert.deepEqual(checkHostKey(lines, 'storage1', 22, server.blob), { status: 'changed', line: 2 });
  assert.deepEqual(checkHostKey(lines, '127.0.0.1', 22, server.blob), { status: 'unknown', otherTypes: [] });
  assert.equal(hostFieldMatches(lines[0]!.hosts, '[127.0.0.1]:2223'), false);
});

test('@revoked refuses the key; @cert-authority lines are not host keys', () => {
  const lines = parseKnownHosts(`@revoked * ${server.line}\n@cert-authority *.lab ${other.line}\n`);
  assert.deepEqual(checkHostKey(lines, 'anything', 22, server.blob), { status: 'revoked', line: 1 });
  assert.deepEqual(checkHostKey(lines, 'x.lab', 22, other.blob), { status: 'unknown', otherTypes: [] });
});

test('appendKnownHost writes the entry in the form OpenSSH looks up, creating the file', async () => {
  const file = join(dir, 'new', 'known_hosts');
  await appendKnownHost(file, knownHostsEntry('127.0.0.1', 2222, server.blob));
  await appendKnownHost(file, knownHostsEntry('Storage1', 22, other.blob));
  const text = readFileSync(file, 'utf8');
  assert.equal(text, `[127.0.0.1]:2222 ${server.line}\nstorage1 ${other.line}\n`);
  assert.equal(opensshFinds(file, '[127.0.0.1]:2222'), true);
  assert.equal(opensshFinds(file, 'storage1'), true);
  assert.deepEqual(checkHostKey(parseKnownHosts(text), '127.0.0.1', 2222, server.blob), { status: 'known' });
});

test('appendKnownHost adds the missing newline of a hand-edited file', async () => {
  const file = join(dir, 'no-newline');
  writeFileSync(file, `storage1 ${other.line}`);
  await appendKnownHost(file, knownHostsEntry('storage2', 22, server.blob));
  assert.deepEqual(readFileSync(file, 'utf8').split('\n'), [`storage1 ${other.line}`, `storage2 ${server.line}`, '']);
});
