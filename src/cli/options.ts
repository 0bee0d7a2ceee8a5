// Options shared by every command that touches hosts, declared once.
import { Option, type Command } from 'commander';

/** --identity, --known-hosts, --accept-new-host-key (for ssh:// hosts). */
export function addSshOptions(cmd: Command): Command {
  return cmd
    .option('--identity <file>', 'SSH private key for ssh:// hosts (default: ~/.ssh/config, then the agent and ~/.ssh/id_*)')
    .option('--known-hosts <file>', 'known_hosts file to check SSH host keys against (default ~/.ssh/known_hosts)')
    .option('--accept-new-host-key', 'trust and record the key of an SSH host seen for the first time');
}

export function addDryRun(cmd: Command): Command {
  return cmd.option('--dry-run', 'print every command and XML document it would run, secrets masked; change nothing');
}

export function addJson(cmd: Command): Command {
  return cmd.option('--json', 'print one JSON document on stdout');
}

export function addConnect(cmd: Command): Command {
  return cmd.addOption(new Option('--connect <uri>', 'libvirt URI on the hypervisor').default('qemu:///system'));
}

/** Options every host-touching command's action receives. */
export interface HostCommandOptions {
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

/** The SessionOptions part of a command's parsed options. */
export function sessionOptions(o: HostCommandOptions): { identity?: string; knownHosts?: string; acceptNewHostKey?: boolean; dryRun?: boolean } {
  return { identity: o.identity, knownHosts: o.knownHosts, acceptNewHostKey: o.acceptNewHostKey, dryRun: o.dryRun };
}
