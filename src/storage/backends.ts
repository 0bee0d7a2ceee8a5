// Picking a TargetBackend by name, or by what the storage host has installed and running.
import { PrerequisiteError, ValidationError } from '../errors.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from './backend.js';
import { parsePortal } from '../names/portal.js';
import { IetBackend, type IetBackendOptions } from './iet/backend.js';
import { LioBackend, type LioBackendOptions } from './lio/backend.js';
import { TgtBackend, type TgtBackendOptions } from './tgt/backend.js';
import { tgtStatus, type TgtStatus } from './tgt/daemon.js';
import { Tgtadm } from './tgt/tgtadm.js';

export const BACKEND_NAMES = ['tgt', 'lio', 'iet'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** Options for every backend; each reads the part it knows (tgt: control port, portal, conf dir; LIO: portals, saveconfig file; IET: file paths). */
export type BackendOptions = TgtBackendOptions & LioBackendOptions & IetBackendOptions;

type Factory = (runner: Runner, options: BackendOptions) => TargetBackend;

/** One entry per backend. LIO's portals default to tgt's `portal` option when only that is given. */
const FACTORIES: Record<BackendName, Factory> = {
  tgt: (runner, options) => new TgtBackend(runner, options),
  lio: (runner, options) =>
    new LioBackend(runner, options.portals === undefined && options.portal !== undefined ? { ...options, portals: [parsePortal(options.portal)] } : options),
  iet: (runner, options) => new IetBackend(runner, options),
};

export function parseBackendName(name: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new ValidationError(`backend ${JSON.stringify(name)} is not one of ${BACKEND_NAMES.join(', ')}`, 'backend');
}

export function createBackend(name: BackendName, runner: Runner, options: BackendOptions = {}): TargetBackend {
  return FACTORIES[name](runner, options);
}

/** What a probe found of one target implementation on the host. */
export interface BackendProbe {
  name: BackendName;
  installed: boolean;
  running: boolean;
}

async function ok(runner: Runner, argv: string[]): Promise<boolean> {
  return (await runner.run(argv, { query: true })).exitCode === 0;
}

/** Exit 127: the shell (or we) found no such program. Any other answer means it is there. */
async function installed(runner: Runner, argv: string[]): Promise<boolean> {
  return (await runner.run(argv, { query: true })).exitCode !== 127;
}

/** Read-only checks, in the order detectBackend prefers. */
export async function probeBackends(runner: Runner, options: BackendOptions = {}): Promise<BackendProbe[]> {
  const tgt: TgtStatus = await tgtStatus(new Tgtadm(runner, options.controlPort));
  // LIO: targetcli (targetcli-fb) installed; running = the kernel's target configfs is mounted.
  const lioInstalled = await installed(runner, ['targetcli', '--version']);
  const lioRunning = lioInstalled && (await ok(runner, ['test', '-d', '/sys/kernel/config/target/iscsi']));
  // IET: ietadm installed; running = the iscsi_trgt module's /proc entry.
  const ietInstalled = await installed(runner, ['ietadm', '--version']);
  const ietRunning = ietInstalled && (await ok(runner, ['test', '-e', '/proc/net/iet/volume']));
  return [
    { name: 'tgt', installed: tgt !== 'not-installed', running: tgt === 'running' },
    { name: 'lio', installed: lioInstalled, running: lioRunning },
    { name: 'iet', installed: ietInstalled, running: ietRunning },
  ];
}

/**
 * The backend the host uses: the first one running (tgt, LIO, IET), else the first one
 * installed. A tgt control port in `options` means a tgt instance: tgt is chosen.
 */
export async function detectBackend(runner: Runner, options: BackendOptions = {}): Promise<BackendName> {
  if (options.controlPort !== undefined) return 'tgt';
  const probes = await probeBackends(runner, options);
  const pick = probes.find((p) => p.running) ?? probes.find((p) => p.installed);
  if (pick) return pick.name;
  throw new PrerequisiteError(
    `no iSCSI target software on ${runner.host}: install tgt ("apt-get install tgt" or "dnf install scsi-target-utils"; or pass --backend tgt --install) or LIO's targetcli ("apt-get install targetcli-fb")`,
  );
}
