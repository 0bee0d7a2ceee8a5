// What a failed virsh call means. virsh exits 1 for every failure, so the meaning is in
// its stderr: "error: <what virsh tried>" then "error: <libvirt's reason>". The patterns
// below are the real messages of libvirt 9.0 (test/fixtures/virsh/errors/*.txt); they
// are English only, so under another locale a failure stays a plain CommandError.
import { CommandError, ValidationError } from '../errors.js';
import { commandError } from '../runner/check.js';
import type { RunOptions, RunResult, Runner } from '../runner/types.js';

export type VirshFailure =
  | 'unreachable'
  | 'no-domain'
  | 'no-pool'
  | 'no-volume'
  | 'no-secret'
  | 'no-device'
  | 'pool-exists'
  | 'pool-active'
  | 'pool-inactive'
  | 'secret-exists'
  | 'dev-taken'
  | 'not-running'
  | 'no-hotplug'
  | 'no-media'
  | 'has-media'
  | 'iscsi-auth'
  | 'iscsi-no-target'
  | 'iscsi-connect'
  | 'no-iscsiadm'
  | 'stale-label'
  | 'other';

interface Rule {
  failure: VirshFailure;
  pattern: RegExp;
  hint?: string;
}

// First match wins; the capture group, when there is one, is the object's name.
const RULES: readonly Rule[] = [
  // error: failed to connect to the hypervisor
  // error: Failed to connect socket to '/nonexistent/libvirt-sock': No such file or directory
  { failure: 'unreachable', pattern: /failed to connect to the hypervisor/ },
  // error: failed to get domain 'vit-nonexistent'
  { failure: 'no-domain', pattern: /failed to get domain '(.*)'/ },
  { failure: 'no-domain', pattern: /Domain not found: no domain with matching (?:name|uuid) '(.*)'/ },
  // error: Storage pool not found: no storage pool with matching name 'vit-nonexistent'
  { failure: 'no-pool', pattern: /failed to get pool '(.*)'/ },
  { failure: 'no-pool', pattern: /Storage pool not found: no storage pool with matching (?:name|uuid) '(.*)'/ },
  // error: failed to get vol 'unit:0:0:9'
  { failure: 'no-volume', pattern: /failed to get vol '(.*)'/ },
  // error: failed to get secret '00000000-0000-4000-8000-000000000000'
  { failure: 'no-secret', pattern: /failed to get secret '(.*)'/ },
  { failure: 'no-secret', pattern: /Secret not found: no secret with matching \w+ '(.*)'/ },
  // error: device not found: disk sda not found / error: No disk found whose source path or target is sdz
  { failure: 'no-device', pattern: /device not found: (?:disk (\S+) not found|no target device (\S+))/ },
  { failure: 'no-device', pattern: /No disk found whose source path or target is (.*)$/ },
  // error: invalid argument: invalid path sdz not assigned to domain (domblkinfo)
  { failure: 'no-device', pattern: /invalid path (\S+) not assigned to domain/ },
  // error: operation failed: pool 'vit-fcap' already exists with uuid 73f7...
  { failure: 'pool-exists', pattern: /pool '(.*)' already exists/ },
  // error: Requested operation is not valid: storage pool 'vit-fcap' is already active
  { failure: 'pool-active', pattern: /storage pool '(.*)' is already active/ },
  { failure: 'pool-inactive', pattern: /storage pool '(.*)' is not active/ },
  // error: internal error: a secret with UUID c919... already defined for use with vit-fcap-chap
  { failure: 'secret-exists', pattern: /already defined for use with (.*)$/ },
  // error: XML error: target 'sdh' duplicated for disk sources ... / target sda already exists
  { failure: 'dev-taken', pattern: /target '(\S+)' duplicated/ },
  { failure: 'dev-taken', pattern: /target (\S+) already exists/ },
  { failure: 'not-running', pattern: /domain is not running/ },
  // error: internal error: unable to execute QEMU command 'device_add': Bus 'ide.1' does not support hotplugging
  {
    failure: 'no-hotplug',
    pattern: /Bus '(.*)' does not support hotplugging/,
    hint: 'QEMU cannot hot-plug on this bus (IDE/SATA never, PCI only with ACPI); attach with --config for the next boot',
  },
  // error: The disk device 'hdc' doesn't have media / already has media
  { failure: 'no-media', pattern: /disk device '(.*)' doesn't have media/ },
  { failure: 'has-media', pattern: /disk device '(.*)' already has media/ },
  // QEMU's and libvirt's libiscsi logins: "... Failed to log in to target. Status: Authentication failure(513)"
  {
    failure: 'iscsi-auth',
    pattern: /Status: Authentication failure/,
    hint: "the target refused the CHAP login: the CHAP user or the libvirt secret's value does not match the target's account",
  },
  { failure: 'iscsi-no-target', pattern: /Status: Target not found/, hint: 'the portal does not serve that target IQN' },
  {
    failure: 'iscsi-connect',
    pattern: /iSCSI: Failed to connect to LUN/,
    hint: 'QEMU could not log in to the target: is the portal reachable from the hypervisor, and the initiator allowed by its ACL?',
  },
  // error: internal error: /usr/bin/iscsiadm failed new mode for target '...' with status '127'
  {
    failure: 'no-iscsiadm',
    pattern: /iscsiadm failed .* with status '127'/,
    hint: "libvirt's iscsi pools log in with open-iscsi, which the hypervisor lacks; use an iscsi-direct pool",
  },
  // libvirt 9.0 with remember_owner (its default) keeps the owner a device node had, in
  // xattrs on the node inside the domain's private /dev. When the device went away under the
  // running domain (its session logged out while attached), that node is never released, and
  // a new LUN that gets the same major:minor cannot be attached to this domain again.
  // error: Requested operation is not valid: Setting different DAC user or group on /dev/disk/by-path/... which is already in use
  {
    failure: 'stale-label',
    pattern: /Setting different DAC user or group on (\S+) which is already in use/,
    hint: "libvirt still holds the label of an earlier device with this device number in the domain's /dev (a LUN that went away while attached, e.g. a session logged out under the running domain); shut the domain down and start it again (a reboot inside the guest keeps the same QEMU), then export again",
  },
];

export interface VirshFailureInfo {
  failure: VirshFailure;
  /** The object the message names (domain, pool, volume, secret, device). */
  name?: string;
  hint?: string;
}

/** Reads a failed virsh call's stderr. */
export function classifyVirshError(stderr: string): VirshFailureInfo {
  for (const rule of RULES) {
    for (const line of stderr.split('\n')) {
      const m = rule.pattern.exec(line);
      if (!m) continue;
      const name = m.slice(1).find((g) => g !== undefined);
      const info: VirshFailureInfo = { failure: rule.failure };
      if (name !== undefined) info.name = name;
      if (rule.hint !== undefined) info.hint = rule.hint;
      return info;
    }
  }
  return { failure: 'other' };
}

/** A failed virsh call, with what its failure means. */
export class VirshError extends CommandError {
  constructor(
    base: CommandError,
    readonly failure: VirshFailure,
    readonly objectName?: string,
  ) {
    super(base.host, base.argv, base.display, base.exitCode, base.stderr, base.hint);
  }
}

export function virshError(runner: Runner, argv: readonly string[], result: RunResult, options: RunOptions = {}): VirshError {
  const info = classifyVirshError(result.stderr);
  return new VirshError(commandError(runner, argv, result, options, info.hint), info.failure, info.name);
}

export type LibvirtObjectKind = 'domain' | 'pool' | 'volume' | 'secret' | 'disk';

/** Bad input: the named domain, pool, volume, secret or disk is not there. */
export class NotFoundError extends ValidationError {
  constructor(
    readonly what: LibvirtObjectKind,
    readonly objectName: string,
    where: string,
    advice?: string,
  ) {
    super(`no ${what} ${JSON.stringify(objectName)} on ${where}${advice ? `; ${advice}` : ''}`, what);
  }
}

/** True when `e` says the object is gone: what teardown counts as already done. */
export function isMissing(e: unknown, what: LibvirtObjectKind): boolean {
  return e instanceof NotFoundError && e.what === what;
}
