// A lock on a host, for changes to what several runs share there: tgt's target ids,
// IET's ietd.conf and initiators.allow, LIO's saved configuration, our record files.
// flock(1) on a lock file under /run/lock, held by a process that lives as long as we do:
// when virt-iscsi exits, is killed, or loses the SSH connection, the holder's stdin closes
// and the lock is free again. Who holds it is written beside it, so a run that waits too
// long can say whom it waited for.
import { hostname } from 'node:os';
import { ValidationError, VirtIscsiError } from '../errors.js';
import type { Runner } from './types.js';

export const LOCK_DIR = '/run/lock';
const READY = 'VIRT_ISCSI_LOCKED';
/** flock's exit code when --wait runs out (we choose it: flock's own default is 1, like other failures). */
const CONFLICT = 75;

/** Another run held the lock for longer than we would wait. */
export class LockTimeoutError extends VirtIscsiError {
  readonly kind = 'lock';
}

export interface LockOptions {
  /** What the lock guards, in its file name: "tgt", "tgt-3261", "lio". */
  key: string;
  /** What this run is doing, for whoever waits: "export web1-data". */
  what: string;
  /** Default 60 s. */
  timeoutMs?: number;
}

export function lockFile(key: string): string {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(key)) throw new ValidationError(`lock name ${JSON.stringify(key)} is not allowed`, 'lock');
  return `${LOCK_DIR}/virt-iscsi-${key}.lock`;
}

/**
 * Runs `fn` holding the host's lock `o.key`. A runner that cannot hold a process (a dry
 * run, which changes nothing) runs `fn` without one.
 */
export async function withHostLock<T>(runner: Runner, o: LockOptions, fn: () => Promise<T>): Promise<T> {
  if (!runner.hold) return fn();
  const file = lockFile(o.key);
  const owner = `${o.what} (pid ${process.pid} on ${hostname()}, since ${new Date().toISOString()})`;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const argv = [
    'flock', '--wait', String(Math.max(1, Math.round(timeoutMs / 1000))), '--conflict-exit-code', String(CONFLICT), file,
    'sh', '-c', `printf '%s\\n' "$1" > "$2"; echo ${READY}; exec cat >/dev/null`, 'sh', owner, `${file}.owner`,
  ];
  const r = await runner.hold(argv, { ready: READY, timeoutMs: timeoutMs + 15_000 });
  // No flock (util-linux) on the host: nothing else of ours could take the lock there either.
  if ('ended' in r && r.ended.exitCode === 127) return fn();
  if ('ended' in r) {
    if (r.ended.exitCode === CONFLICT) {
      const holder = (await runner.readFile(`${file}.owner`).catch(() => undefined))?.trim();
      throw new LockTimeoutError(
        `waited ${Math.round(timeoutMs / 1000)} s on ${runner.host} for ${file}${holder ? `, held by virt-iscsi ${holder}` : ''}; try again once that run is done`,
      );
    }
    const why = r.ended.stderr.trim().split('\n').pop() || `exit ${r.ended.exitCode}`;
    throw new LockTimeoutError(`cannot take the lock ${file} on ${runner.host}: ${why}`);
  }
  try {
    return await fn();
  } finally {
    await r.held.release();
  }
}
