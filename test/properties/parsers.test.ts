// Property tests of every parser of tool output and every document reader: the real
// output captured in test/fixtures (as it is, with random edits, and rebuilt from its
// lines and random ones) never makes a parser crash with an error that is not ours
// (TypeError, RangeError, SyntaxError...). It returns a result, or throws one of our typed
// errors in one line. The seed is printed; FC_SEED=N (and FC_PATH) replays a failure,
// FC_RUNS=N sets the number of cases (2000 each by default).
import { test } from 'node:test';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parseIetAllow } from '../../src/config/iet-allow.js';
import { parseIetConf } from '../../src/config/iet-conf.js';
import { parseTgtConf } from '../../src/config/tgt-conf.js';
import * as iscsiadm from '../../src/hypervisor/iscsiadm-parse.js';
import * as virsh from '../../src/hypervisor/virsh-parse.js';
import { parseIetSessions, parseIetVolumes } from '../../src/storage/iet/proc.js';
import { parseAclInfo, parseDynamicSessions } from '../../src/storage/lio/sessions.js';
import { parseSaveconfig } from '../../src/storage/lio/saveconfig.js';
import { parseLioTree, parseTree } from '../../src/storage/lio/targetcli-ls.js';
import { parseAllocation, parseStat } from '../../src/storage/image.js';
import { fileioInfoSize, storageObjectDir } from '../../src/storage/lio/plan.js';
import { parseJournal } from '../../src/workflows/journal.js';
import { parseTgtShowAccounts, parseTgtShowSystem, parseTgtShowTargets } from '../../src/storage/tgt/show-parser.js';
import { parseRecord } from '../../src/storage/tgt/records.js';
import { parsePoolCapabilities } from '../../src/workflows/probe.js';
import { parseDisk } from '../../src/xml/disk.js';
import { parseDomain, parseMarks } from '../../src/xml/domain.js';
import { parsePool } from '../../src/xml/pool.js';
import { parseSecret } from '../../src/xml/secret.js';
import { fixture, params, returnsOrTyped, SEED, toolOutput } from './fuzz.js';
import { sampleRecord } from '../helpers/records.js';

const dir = (d: string, re = /./): string[] =>
  readdirSync(fileURLToPath(new URL(`../fixtures/${d}`, import.meta.url)))
    .filter((f) => re.test(f))
    .map((f) => fixture(`${d}/${f}`));

interface Case {
  name: string;
  samples: string[];
  parse: (text: string) => unknown;
}

const iscsiadmFixtures = [...dir('iscsiadm', /\.txt$|\.iscsi$/), ...dir('lab', /\.txt$/)];
const xmlIn = dir('xml/in');
const xmlOut = dir('xml/out');
const virshFixtures = dir('virsh', /\.txt$/);

/** An export record as export writes it (the journal's first line carries one). */
const JOURNAL_RECORD = sampleRecord({ session: { replacementTimeout: 120, noopOutInterval: 5, noopOutTimeout: 5 }, mode: 'block' });

const CASES: Case[] = [
  { name: 'tgtadm show targets', samples: dir('tgt', /^show-(many|empty)/), parse: parseTgtShowTargets },
  { name: 'tgtadm show accounts', samples: dir('tgt', /^show-account/), parse: parseTgtShowAccounts },
  { name: 'tgtadm show sys', samples: dir('tgt', /^show-sys/), parse: parseTgtShowSystem },
  { name: 'tgt record', samples: dir('config/tgt'), parse: (t) => parseRecord('/etc/tgt/conf.d/x.conf', t) },
  { name: 'tgt targets.conf', samples: dir('config/tgt'), parse: parseTgtConf },
  { name: 'ietd.conf', samples: dir('config/iet', /\.conf$/), parse: parseIetConf },
  { name: 'initiators.allow', samples: dir('config/iet', /allow/), parse: parseIetAllow },
  { name: 'iet /proc volume', samples: dir('iet', /^volume/), parse: parseIetVolumes },
  { name: 'iet /proc session', samples: dir('iet', /^session/), parse: parseIetSessions },
  { name: 'iscsiadm node list', samples: iscsiadmFixtures, parse: iscsiadm.parseNodeList },
  { name: 'iscsiadm session -P 3', samples: iscsiadmFixtures, parse: iscsiadm.parseSessionTree },
  { name: 'iscsiadm node record', samples: iscsiadmFixtures, parse: iscsiadm.parseNodeRecord },
  { name: 'initiatorname.iscsi', samples: iscsiadmFixtures, parse: iscsiadm.parseInitiatorName },
  { name: 'getent ahosts', samples: iscsiadmFixtures, parse: iscsiadm.parseGetentHosts },
  { name: 'iscsiadm iface list', samples: iscsiadmFixtures, parse: iscsiadm.parseIfaceList },
  { name: 'virsh table', samples: virshFixtures, parse: (t) => virsh.parseTable(t, 'pools') },
  { name: 'virsh pool-list', samples: virshFixtures, parse: virsh.parsePoolList },
  { name: 'virsh pool-info', samples: virshFixtures, parse: virsh.parsePoolInfo },
  { name: 'virsh vol-list', samples: virshFixtures, parse: virsh.parseVolList },
  { name: 'virsh vol-info', samples: virshFixtures, parse: virsh.parseVolInfo },
  { name: 'virsh secret-list', samples: virshFixtures, parse: virsh.parseSecretList },
  { name: 'virsh domstate', samples: virshFixtures, parse: virsh.parseDomState },
  { name: 'virsh dominfo', samples: virshFixtures, parse: virsh.parseDomPersistent },
  { name: 'virsh domblklist', samples: virshFixtures, parse: virsh.parseBlkList },
  { name: 'virsh domblkinfo', samples: virshFixtures, parse: virsh.parseBlkInfo },
  { name: 'targetcli ls (tree)', samples: [...dir('lio', /^ls-/), ...dir('lab', /^targetcli/)], parse: parseTree },
  { name: 'targetcli ls (LIO)', samples: [...dir('lio', /^ls-/), ...dir('lab', /^targetcli/)], parse: parseLioTree },
  { name: 'targetcli saveconfig', samples: dir('lio', /^saveconfig/), parse: parseSaveconfig },
  { name: 'targetcli acl info', samples: dir('lio', /^(acl|sessions|dynamic)/), parse: parseAclInfo },
  { name: 'targetcli sessions', samples: dir('lio', /^(acl|sessions|dynamic)/), parse: parseDynamicSessions },
  { name: 'stat -c %F|%s', samples: ['regular file|5242880\n', 'directory|4096\n', 'block special file|0\n'], parse: parseStat },
  { name: 'stat -c %s %b %B', samples: ['67108864 8 512\n', '67108864 131072 512\n', '0 0 4096\n'], parse: parseAllocation },
  {
    name: 'LIO configfs fileio info',
    samples: ['Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: /var/lib/r1.img  Size: 100663296  Mode: O_DSYNC Async: 1\n'],
    parse: fileioInfoSize,
  },
  { name: 'find of LIO storage objects', samples: ['/sys/kernel/config/target/core/fileio_3/vi-c6341120-lun1\n/sys/kernel/config/target/core/iblock_0/vi-c6341120-lun1\n'], parse: (t) => storageObjectDir(t, 'fileio', 'vi-c6341120-lun1') },
  {
    name: 'export journal',
    samples: [
      `${JSON.stringify({ t: 'begin', at: '2026-01-01T00:00:00.000Z', pid: 1, op: 'resize', finish: 'virt-iscsi resize data --size 1048576', record: JOURNAL_RECORD })}\n${JSON.stringify({ t: 'piece', at: '2026-01-01T00:00:01.000Z', piece: { kind: 'paused', host: 'local', vm: 'web1' } })}\n`,
    ],
    parse: (t) => parseJournal('/j/data.jsonl', 'data', t),
  },
  { name: 'pool capabilities', samples: [fixture('workflows/pool-capabilities.xml')], parse: parsePoolCapabilities },
  { name: 'domain XML', samples: [...xmlIn, ...xmlOut, fixture('virsh/dumpxml-running.xml'), fixture('virsh/dumpxml-inactive.xml')], parse: parseDomain },
  { name: 'domain marks', samples: [fixture('virsh/dumpxml-running.xml'), fixture('virsh/dumpxml-inactive.xml')], parse: parseMarks },
  { name: 'disk XML', samples: [...xmlIn, ...xmlOut], parse: parseDisk },
  { name: 'pool XML', samples: [...xmlIn, ...xmlOut], parse: parsePool },
  { name: 'secret XML', samples: [...xmlIn, ...xmlOut], parse: parseSecret },
];

for (const c of CASES) {
  test(`never a crash: ${c.name} (seed ${SEED})`, (t) => {
    t.diagnostic(`fast-check seed ${SEED}; replay with FC_SEED=${SEED}`);
    fc.assert(
      fc.property(toolOutput(c.samples), (text) => returnsOrTyped(c.name, () => c.parse(text))),
      params(),
    );
  });
}
