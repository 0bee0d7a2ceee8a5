// The Ceph client flags, declared once for every command that reaches a cluster.
import type { Command } from 'commander';
import { checkCephClient, type CephClient } from '../storage/rbd/client.js';

/** --ceph-conf, --ceph-id, --ceph-keyring. */
export function addCephOptions(cmd: Command): Command {
  return cmd
    .option('--ceph-conf <file>', "the cluster's ceph.conf on that host (default /etc/ceph/ceph.conf)")
    .option('--ceph-id <user>', 'cephx user without "client." (default admin)')
    .option('--ceph-keyring <file>', "keyring holding the user's key (default: the conf's keyring setting)");
}

export interface CephFlags {
  cephConf?: string;
  cephId?: string;
  cephKeyring?: string;
}

/** The flags as a checked CephClient (one-line ValidationError naming a bad value). */
export function cephClientFromFlags(o: CephFlags): CephClient {
  return checkCephClient({
    ...(o.cephConf !== undefined ? { conf: o.cephConf } : {}),
    ...(o.cephId !== undefined ? { id: o.cephId } : {}),
    ...(o.cephKeyring !== undefined ? { keyring: o.cephKeyring } : {}),
  });
}
