// What serves a LUN's data: a file or block device on the storage host, or an RBD image
// in a Ceph cluster (tgt's rbd backing store, package tgt-rbd). Each kind's rules live in
// this one table: how its path is written, how its image is checked before a target is
// made, and which target backends can serve it.
import { ValidationError } from '../errors.js';
import type { Runner } from '../runner/types.js';
import type { LunSpec } from './backend.js';
import { checkServableImage, type ImageInfo } from './image.js';
import { parseRbdBsOpts } from './rbd/client.js';
import { Rbd } from './rbd/rbd.js';
import { formatRbdRef, parseRbdImageSpec } from './rbd/ref.js';

export type BackingKind = 'file' | 'rbd';

/** The tgt backing-store type (`--bstype`) that makes a LUN an RBD image. */
export const RBD_BS_TYPE = 'rbd';

export interface BackingRule {
  /** What the LUN's `path` is, for errors. */
  pathText: string;
  /** Checks the path's form (no I/O); returns it as stored. */
  checkPath(lun: Pick<LunSpec, 'lun' | 'path'>): string;
  /** Reads the image on the host: it must exist and be servable as it is. */
  checkImage(runner: Runner, lun: Pick<LunSpec, 'lun' | 'path' | 'bsOpts'>): Promise<ImageInfo>;
  /** Target backends that can serve it. */
  backends: readonly string[];
}

const show = (v: unknown): string => JSON.stringify(v);

export const BACKINGS: Record<BackingKind, BackingRule> = {
  file: {
    pathText: 'an absolute path of an image file or block device',
    checkPath(l) {
      if (typeof l.path !== 'string' || !l.path.startsWith('/')) throw new ValidationError(`image path ${show(l.path)} for LUN ${l.lun} is not an absolute path`, 'lun');
      return l.path;
    },
    checkImage: (runner, l) => checkServableImage(runner, l.path),
    backends: ['tgt', 'lio', 'iet'],
  },
  rbd: {
    pathText: 'POOL/IMAGE of an RBD image',
    checkPath(l) {
      const ref = parseRbdImageSpec(l.path);
      return `${ref.pool}/${ref.image}`;
    },
    async checkImage(runner, l) {
      const ref = parseRbdImageSpec(l.path);
      const info = await new Rbd(runner, parseRbdBsOpts(l.bsOpts)).require(ref);
      return { path: l.path, kind: 'rbd', sizeBytes: info.sizeBytes, format: 'raw' };
    },
    backends: ['tgt'],
  },
};

export function backingKind(l: Pick<LunSpec, 'bsType'>): BackingKind {
  return l.bsType === RBD_BS_TYPE ? 'rbd' : 'file';
}

/** The LUN's image, checked by its kind's rule. */
export function checkLunImage(runner: Runner, l: Pick<LunSpec, 'lun' | 'path' | 'bsType' | 'bsOpts'>): Promise<ImageInfo> {
  return BACKINGS[backingKind(l)].checkImage(runner, l);
}

/** Refuses LUNs the backend cannot serve (an RBD image on LIO or IET), naming the first. */
export function checkBackingsServedBy(backend: string, luns: readonly LunSpec[]): void {
  for (const l of luns) {
    const kind = backingKind(l);
    if (!BACKINGS[kind].backends.includes(backend)) {
      const what = kind === 'rbd' ? `RBD image ${formatRbdRef(parseRbdImageSpec(l.path))}` : show(l.path);
      throw new ValidationError(`LUN ${l.lun} is ${what}, which the ${backend} backend cannot serve: use ${BACKINGS[kind].backends.join(' or ')}`, 'backend');
    }
  }
}
