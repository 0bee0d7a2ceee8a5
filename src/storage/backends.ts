// The target backends as one table: how each is made, which lock guards its shared state
// on the host, and how it is found. Everything a workflow needs to know of a backend is
// on the TargetBackend it gets (status, persisted, stored CHAP, capabilities), never in an
// `if (name === ...)` of its own.
import { PrerequisiteError, ValidationError } from '../errors.js';
import { parsePortal } from '../names/portal.js';
import { withHostLock } from '../runner/lock.js';
import type { Runner } from '../runner/types.js';
import type { TargetBackend } from './backend.js';
import { IetBackend, type IetBackendOptions } from './iet/backend.js';
import { LioBackend, type LioBackendOptions } from './lio/backend.js';
import { TgtBackend, type TgtBackendOptions } from './tgt/backend.js';

export const BACKEND_NAMES = ['tgt', 'lio', 'iet'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** Options for every backend; each reads the part it knows (tgt: control port, portal, conf dir; LIO: portals, saveconfig file; IET: file paths). */
export type BackendOptions = TgtBackendOptions & LioBackendOptions & IetBackendOptions & {
  /** What the run is doing, told to another run that waits for the host's lock. */
  lockOwner?: string;
  /** How long to wait for another run's lock on the host; default 60 s. */
  lockTimeoutMs?: number;
};

interface BackendEntry {
  make(runner: Runner, options: BackendOptions): TargetBackend;
  /**
   * The lock that serialises changes to what runs share on the host: tgt's target ids,
   * conf.d and the daemon's start (per tgtd instance); LIO's one saveconfig.json; IET's
   * ietd.conf and initiators.allow.
   */
  lockKey(options: BackendOptions): string;
}

const BACKENDS: Record<BackendName, BackendEntry> = {
  tgt: {
    make: (runner, options) => new TgtBackend(runner, options),
    lockKey: (o) => (o.controlPort === undefined ? 'tgt' : `tgt-${o.controlPort}`),
  },
  // LIO's portals default to tgt's `portal` option when only that is given.
  lio: {
    make: (runner, options) => new LioBackend(runner, options.portals === undefined && options.portal !== undefined ? { ...options, portals: [parsePortal(options.portal)] } : options),
    lockKey: () => 'lio',
  },
  iet: {
    make: (runner, options) => new IetBackend(runner, options),
    lockKey: () => 'iet',
  },
};

export function parseBackendName(name: string): BackendName {
  if ((BACKEND_NAMES as readonly string[]).includes(name)) return name as BackendName;
  throw new ValidationError(`backend ${JSON.stringify(name)} is not one of ${BACKEND_NAMES.join(', ')}`, 'backend');
}

/** The backend, its changes (start, create, delete, sync) each made holding the host's lock. */
export function createBackend(name: BackendName, runner: Runner, options: BackendOptions = {}): TargetBackend {
  const entry = BACKENDS[name];
  const inner = entry.make(runner, options);
  const key = entry.lockKey(options);
  const lock = <T>(what: string, fn: () => Promise<T>): Promise<T> =>
    withHostLock(runner, { key, what: options.lockOwner ? `${options.lockOwner}: ${what}` : what, ...(options.lockTimeoutMs !== undefined ? { timeoutMs: options.lockTimeoutMs } : {}) }, fn);
  const locked: TargetBackend = {
    name: inner.name,
    capabilities: inner.capabilities,
    status: () => inner.status(),
    persisted: (iqn) => inner.persisted(iqn),
    storedChapSecret: (iqn, user) => inner.storedChapSecret(iqn, user),
    list: () => inner.list(),
    show: (iqn) => inner.show(iqn),
    ensureRunning: async () => {
      if ((await inner.status()) === 'running') return;
      await lock(`start ${name}`, () => inner.ensureRunning());
    },
    create: (spec, o) => lock(`create target ${spec.iqn}`, () => inner.create(spec, o)),
    delete: (iqn, o) => lock(`delete target ${iqn}`, () => inner.delete(iqn, o)),
    growLun: (iqn, lun, o) => lock(`grow LUN ${lun} of ${iqn}`, () => inner.growLun(iqn, lun, o)),
    restoreHint: () => inner.restoreHint(),
  };
  if (inner.sync) locked.sync = (o) => lock('sync targets', () => inner.sync!(o));
  if (inner.allowInitiators) locked.allowInitiators = (iqn, initiators) => lock(`change the ACL of ${iqn}`, () => inner.allowInitiators!(iqn, initiators));
  if (inner.complete) locked.complete = (spec, o) => lock(`complete target ${spec.iqn}`, () => inner.complete!(spec, o));
  if (inner.configured) locked.configured = () => inner.configured!();
  if (inner.listening) locked.listening = () => inner.listening!();
  if (inner.listen) locked.listen = (p) => lock('listen on a portal', () => inner.listen!(p));
  if (inner.unlisten) locked.unlisten = (p) => lock('stop listening on a portal', () => inner.unlisten!(p));
  if (inner.unboundAccounts) locked.unboundAccounts = () => inner.unboundAccounts!();
  if (inner.deleteAccount) locked.deleteAccount = (user) => lock(`delete CHAP account ${user}`, () => inner.deleteAccount!(user));
  return locked;
}

/** What a probe found of one target implementation on the host. */
export interface BackendProbe {
  name: BackendName;
  installed: boolean;
  running: boolean;
}

/** Read-only checks, in the order detectBackend prefers. */
export async function probeBackends(runner: Runner, options: BackendOptions = {}): Promise<BackendProbe[]> {
  return Promise.all(
    BACKEND_NAMES.map(async (name) => {
      const status = await BACKENDS[name].make(runner, options).status();
      return { name, installed: status !== 'not-installed', running: status === 'running' };
    }),
  );
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
