// Who talks to a Ceph cluster and how: the configuration file (which names the monitors),
// the cephx client id and its keyring. The same three reach the rbd and ceph CLIs (argv),
// QEMU's rbd driver (its `rbd:` filename) and tgt's rbd backing store (--bsopts), so they
// are checked once here, against a set every one of those syntaxes carries unchanged:
// QEMU's filename splits at ':', tgtadm's request at ',', tgt's bsopts at ';', and
// targets.conf is read through a shell by tgt-admin.
import { ValidationError } from '../../errors.js';
import { rbdImageSpec, type RbdImageRef } from './ref.js';

/** How to reach the cluster. Unset fields are Ceph's defaults (/etc/ceph/ceph.conf, client.admin, the conf's keyring). */
export interface CephClient {
  /** ceph.conf on the host the commands run on. */
  conf?: string;
  /** cephx user without the `client.` prefix, e.g. `admin` or `libvirt`. */
  id?: string;
  /** Keyring file holding the user's key; default: the conf's `keyring` setting. */
  keyring?: string;
  /** Seconds to wait for the monitors before giving up (default 20): a dead cluster never hangs a command. */
  timeoutSec?: number;
}

export const DEFAULT_CEPH_ID = 'admin';
export const DEFAULT_CEPH_CONF = '/etc/ceph/ceph.conf';
export const DEFAULT_CEPH_TIMEOUT_SEC = 20;

const PATH = /^\/[A-Za-z0-9._+@%=~/-]*[A-Za-z0-9._+@%=~-]$/;
const PATH_TEXT = "an absolute path of letters, digits and . _ + @ % = ~ - / (no spaces, ':', ',', ';' or quotes: QEMU, tgt and targets.conf could not carry them)";
const ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

const show = (v: unknown): string => JSON.stringify(v);

/** The client with each field checked; one-line ValidationError naming the bad value. */
export function checkCephClient(c: CephClient): CephClient {
  const out: CephClient = {};
  if (c.conf !== undefined) out.conf = checkPath('--ceph-conf', c.conf);
  if (c.keyring !== undefined) out.keyring = checkPath('--ceph-keyring', c.keyring);
  if (c.id !== undefined) {
    if (c.id.startsWith('client.')) throw new ValidationError(`Ceph id ${show(c.id)} starts with "client.": give the id alone, e.g. ${show(c.id.slice(7))}`, 'ceph-id');
    if (!ID.test(c.id)) throw new ValidationError(`Ceph id ${show(c.id)} is not allowed: expected letters, digits and . _ - (e.g. admin)`, 'ceph-id');
    out.id = c.id;
  }
  if (c.timeoutSec !== undefined) {
    if (!Number.isInteger(c.timeoutSec) || c.timeoutSec < 1 || c.timeoutSec > 3600) throw new ValidationError(`Ceph timeout ${show(c.timeoutSec)} is not a whole number of seconds from 1 to 3600`, 'ceph-timeout');
    out.timeoutSec = c.timeoutSec;
  }
  return out;
}

function checkPath(flag: string, value: string): string {
  if (!PATH.test(value)) throw new ValidationError(`${flag} ${show(value)} is not allowed: expected ${PATH_TEXT}`, flag.slice(2));
  return value;
}

/** "client.ID", as Ceph names the user in errors and `ceph auth`. */
export function cephUser(c: CephClient): string {
  return `client.${c.id ?? DEFAULT_CEPH_ID}`;
}

/** The options every rbd and ceph command takes: --conf, --id, --keyring (only those set). */
export function cephArgv(c: CephClient): string[] {
  return [...(c.conf ? ['--conf', c.conf] : []), ...(c.id ? ['--id', c.id] : []), ...(c.keyring ? ['--keyring', c.keyring] : [])];
}

/**
 * QEMU's rbd filename, `rbd:POOL/IMAGE:id=ID:conf=FILE:keyring=FILE:client_mount_timeout=N`
 * (QEMU 7.2 passes keys other than id and conf to librados as settings). The values
 * hold no ':' (checkCephClient), so nothing needs QEMU's '\:' escape.
 */
export function qemuRbdFilename(ref: RbdImageRef, c: CephClient): string {
  const v = checkCephClient(c);
  const opts = [
    ...(v.id ? [`id=${v.id}`] : []),
    ...(v.conf ? [`conf=${v.conf}`] : []),
    ...(v.keyring ? [`keyring=${v.keyring}`] : []),
    `client_mount_timeout=${v.timeoutSec ?? DEFAULT_CEPH_TIMEOUT_SEC}`,
  ];
  return `rbd:${rbdImageSpec(ref)}:${opts.join(':')}`;
}

// ---- tgt's rbd backing store ---------------------------------------------------------------

/**
 * tgt's `--bsopts` for an rbd LUN: "conf=FILE;id=USER" (tgt 1.0.85 bs_rbd takes conf, id
 * and cluster, ';'-separated, and refuses anything else). It has no keyring option: the
 * key comes from the conf's `keyring` setting (default /etc/ceph/ceph.client.ID.keyring).
 * Undefined when neither is set (tgt then reads /etc/ceph/ceph.conf as client.admin).
 */
export function rbdBsOpts(c: CephClient): string | undefined {
  const v = checkCephClient(c);
  if (v.keyring !== undefined) {
    throw new ValidationError(
      `tgt's rbd backing store has no keyring option (got --ceph-keyring ${show(v.keyring)}): name the keyring in the conf's "keyring" setting, or keep the key in /etc/ceph/ceph.${cephUser(v)}.keyring`,
      'ceph-keyring',
    );
  }
  const parts = [...(v.conf ? [`conf=${v.conf}`] : []), ...(v.id ? [`id=${v.id}`] : [])];
  return parts.length ? parts.join(';') : undefined;
}

/** "conf=FILE;id=USER" (as rbdBsOpts writes it, or a record holds it) -> the client; anything else is refused. */
export function parseRbdBsOpts(text: string | undefined): CephClient {
  const c: CephClient = {};
  if (text === undefined || text === '') return c;
  for (const part of text.split(';')) {
    const m = /^(conf|id)=(.+)$/.exec(part);
    if (!m) throw new ValidationError(`rbd bsopts ${show(text)}: ${show(part)} is not conf=FILE or id=USER`, 'bsopts');
    const key = m[1] as 'conf' | 'id';
    if (c[key] !== undefined) throw new ValidationError(`rbd bsopts ${show(text)} gives ${key} twice`, 'bsopts');
    c[key] = m[2]!;
  }
  return checkCephClient(c);
}
