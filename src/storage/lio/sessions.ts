// Who is logged in to a LIO target, read from configfs: per ACL, the `info` file; in
// demo mode (generate_node_acls=1, no ACL per initiator), `dynamic_sessions`.
// `targetcli sessions` is not used: it names no target, and it leaves demo-mode
// sessions out (seen with targetcli-fb 2.1.53, test/fixtures/lio/README.md).
import type { SessionInfo } from '../backend.js';

/**
 * /sys/kernel/config/target/iscsi/IQN/tpgt_1/acls/INITIATOR/info with a session:
 *   InitiatorName: iqn.1993-08.org.debian:01:de888379e257
 *   InitiatorAlias: lab
 *   LIO Session ID: 2   ISID: 0x00 02 3d 00 00 0b  TSIH: 6  SessionType: Normal
 *   Session State: TARG_SESS_STATE_LOGGED_IN
 *   ...
 *   CID: 0  Connection State: TARG_CONN_STATE_LOGGED_IN
 *      Address 127.0.0.1 TCP  StatSN: 0x5dab8d2b
 * and without one:
 *   No active iSCSI Session for Initiator Endpoint: iqn.1993-08.org.debian:01:de888379e257
 * Returns one SessionInfo per connection address (one when the address is not shown).
 */
export function parseAclInfo(text: string): SessionInfo[] {
  if (/^No active iSCSI Session/m.test(text)) return [];
  const name = /^InitiatorName: (\S+)/m.exec(text)?.[1];
  if (!name) return [];
  const addresses = [...text.matchAll(/^\s*Address (\S+) (?:TCP|SCTP|iSER)/gm)].map((m) => m[1]!.replace(/^\[(.*)\]$/, '$1'));
  if (addresses.length === 0) return [{ initiator: name }];
  return [...new Set(addresses)].map((address) => ({ initiator: name, address }));
}

/**
 * tpgt_1/dynamic_sessions: one initiator name per line, ended by a NUL byte:
 *   iqn.1993-08.org.debian:01:de888379e257
 */
export function parseDynamicSessions(text: string): SessionInfo[] {
  return text
    .replace(/\0/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((initiator) => ({ initiator }));
}
