// An RBD image as a LUN of a tgt target (the iSCSI gateway): tgt's rbd backing store
// (package tgt-rbd) opens the image through librbd inside tgtd, so the storage host needs
// the cluster's conf and the client's keyring, and tgtd must have been started after
// tgt-rbd was installed (it loads backing-store modules only at its start).
import type { LunSpec } from '../backend.js';
import { RBD_BS_TYPE } from '../backing.js';
import { rbdBsOpts, type CephClient } from './client.js';
import { rbdImageSpec, type RbdImageRef } from './ref.js';

/**
 * The LunSpec that serves `ref` through tgt: path POOL/IMAGE, bs-type rbd, bs-opts
 * "conf=FILE;id=USER" (only those set). tgt's store takes no keyring option: the key
 * must be where the conf's `keyring` setting points (see rbdBsOpts).
 */
export function rbdLun(lun: number, ref: RbdImageRef, client: CephClient = {}, extra: Omit<LunSpec, 'lun' | 'path' | 'bsType' | 'bsOpts'> = {}): LunSpec {
  const bsOpts = rbdBsOpts(client);
  return { ...extra, lun, path: rbdImageSpec(ref), bsType: RBD_BS_TYPE, ...(bsOpts !== undefined ? { bsOpts } : {}) };
}
