// Plan-only tests of the modes this host's kernel cannot run (no iscsi_tcp, no dm-multipath):
// the hypervisor is a replay of real captured answers to its read-only queries; a query
// nobody expected, a change or a file write fails the test. The storage side stays real.
import { readFileSync } from 'node:fs';
import { Session } from '../../src/cli/session.js';
import { RecordingRunner } from '../../src/runner/recording.js';
import type { RunOptions, RunResult, Runner } from '../../src/runner/types.js';

export const HV = 'ssh://root@kvm1.test';
export const DOMAIN = 'vit-fcap-dom';
export const fixture = (path: string): string => readFileSync(new URL(`../fixtures/${path}`, import.meta.url), 'utf8');
export type Answers = Array<[prefix: string, result: Partial<RunResult>]>;

/** The hypervisor's read-only answers, by command-line prefix; `files` are what it reads. */
export class ReplayedHypervisor implements Runner {
  readonly host = HV;
  constructor(
    private readonly answers: Answers,
    private readonly files: Record<string, string> = {},
  ) {}
  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const line = argv.join(' ');
    if (!options.query) throw new Error(`a dry run ran a change on the hypervisor: ${line}`);
    const a = this.answers.find(([prefix]) => line.startsWith(prefix));
    if (!a) throw new Error(`the plan asked the hypervisor something nobody expected: ${line}`);
    return { stdout: '', stderr: '', exitCode: 0, ...a[1] };
  }
  async readFile(path: string): Promise<string | undefined> {
    return path === '/etc/iscsi/initiatorname.iscsi' ? fixture('iscsiadm/initiatorname.iscsi') : this.files[path];
  }
  async writeFile(): Promise<void> {
    throw new Error('a dry run writes no file');
  }
  async removeFile(): Promise<void> {
    throw new Error('a dry run removes no file');
  }
  async close(): Promise<void> {}
}

/** What every plan asks the hypervisor: the running domain (captured), pools, open-iscsi and the kernel's iSCSI module. */
export const HOST_ANSWERS: Answers = [
  [`virsh -c qemu:///system dumpxml --inactive --domain ${DOMAIN}`, { stdout: fixture('virsh/dumpxml-inactive.xml') }],
  [`virsh -c qemu:///system dumpxml --domain ${DOMAIN}`, { stdout: fixture('virsh/dumpxml-running.xml') }],
  [`virsh -c qemu:///system dominfo --domain ${DOMAIN}`, { stdout: fixture('virsh/dominfo-running.txt') }],
  ['virsh -c qemu:///system pool-list --all --details', { stdout: fixture('virsh/pool-list-details.txt') }],
  ['iscsiadm --version', { stdout: 'iscsiadm version 2.1.8\n' }],
  ['test -d /sys/module/iscsi_tcp', { exitCode: 0 }],
  ['hostname -f', { stdout: 'kvm1.example.com\n' }],
];

/** A dry-run Session whose hypervisor HV is replayed: the test's answers first, then `base`. */
export class PlanSession extends Session {
  readonly hv: ReplayedHypervisor;
  constructor(answers: Answers, files: Record<string, string> = {}, base: Answers = HOST_ANSWERS) {
    super({ dryRun: true });
    this.hv = new ReplayedHypervisor([...answers, ...base], files);
  }
  override runner(uri = 'local'): Promise<Runner> {
    return uri === HV ? Promise.resolve(new RecordingRunner(this.hv, this.recorded, HV)) : super.runner(uri);
  }
}
