// RBD image references as users write them: `rbd:POOL/IMAGE`. The same names reach the
// rbd CLI (POOL/IMAGE), QEMU's rbd driver, tgt's rbd backing store and targets.conf, and
// libvirt's `<source name='POOL/IMAGE'>`, so they are held to a set every one of them
// passes through unchanged: no '/', '@' (a snapshot), ':' (QEMU's option separator), ','
// (tgtadm's), whitespace, quotes or shell characters.
import { ValidationError } from '../../errors.js';

/** One RBD image: `rbd:POOL/IMAGE`. */
export interface RbdImageRef {
  pool: string;
  image: string;
}

/** The prefix that marks an image argument as an RBD image rather than a path. */
export const RBD_PREFIX = 'rbd:';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;
const NAME_TEXT = "letters, digits and . _ + - (not starting with '.', '+' or '-')";
/** Ceph caps pool names at 255 characters (the OSD map's limit); image names likewise here. */
export const RBD_NAME_MAX = 255;

const show = (v: string): string => JSON.stringify(v);

function checkName(what: 'pool' | 'image', value: string, whole: string): string {
  if (value === '') throw new ValidationError(`RBD image ${show(whole)} has no ${what} name: expected rbd:POOL/IMAGE`, what);
  if (value.length > RBD_NAME_MAX) throw new ValidationError(`RBD ${what} name ${show(value)} is longer than ${RBD_NAME_MAX} characters`, what);
  if (!NAME.test(value)) throw new ValidationError(`RBD ${what} name ${show(value)} in ${show(whole)} is not allowed: expected ${NAME_TEXT}`, what);
  return value;
}

/** Whether an image argument names an RBD image (`rbd:...`) rather than a file. */
export function isRbdRef(text: string): boolean {
  return text.startsWith(RBD_PREFIX);
}

/**
 * `rbd:POOL/IMAGE` -> {pool, image}. Refused, in one line naming the value: no `rbd:`
 * prefix, no '/' or more than one (RBD namespaces, `rbd:POOL/NS/IMAGE`, are not taken:
 * tgt's rbd backing store cannot open them), a snapshot (`@snap`: images are exported
 * writable), and names outside the safe set.
 */
export function parseRbdRef(text: string): RbdImageRef {
  if (!isRbdRef(text)) throw new ValidationError(`RBD image ${show(text)} does not start with "${RBD_PREFIX}": expected rbd:POOL/IMAGE`, 'image');
  const body = text.slice(RBD_PREFIX.length);
  if (body.includes('@')) throw new ValidationError(`RBD image ${show(text)} names a snapshot ('@'): expected rbd:POOL/IMAGE, an image and not a snapshot`, 'image');
  const parts = body.split('/');
  if (parts.length === 1) throw new ValidationError(`RBD image ${show(text)} has no '/': expected rbd:POOL/IMAGE`, 'image');
  if (parts.length > 2) {
    throw new ValidationError(`RBD image ${show(text)} has ${parts.length - 1} '/': expected rbd:POOL/IMAGE (RBD namespaces are not supported)`, 'image');
  }
  return { pool: checkName('pool', parts[0]!, text), image: checkName('image', parts[1]!, text) };
}

/** A pool name given alone (a flag, a pool definition). */
export function parseRbdPoolName(pool: string): string {
  return checkName('pool', pool, `${RBD_PREFIX}${pool}/`);
}

/** {pool, image} -> "rbd:POOL/IMAGE", as users write it. */
export function formatRbdRef(ref: RbdImageRef): string {
  return `${RBD_PREFIX}${ref.pool}/${ref.image}`;
}

/**
 * "POOL/IMAGE": the image spec of the rbd CLI, the backing-store path of tgt's rbd store
 * and the `name` of libvirt's rbd network disk.
 */
export function rbdImageSpec(ref: RbdImageRef): string {
  return `${ref.pool}/${ref.image}`;
}

/** "POOL/IMAGE" (as tgtd shows an rbd LUN's path) -> {pool, image}; checked like parseRbdRef. */
export function parseRbdImageSpec(spec: string): RbdImageRef {
  return parseRbdRef(`${RBD_PREFIX}${spec}`);
}
