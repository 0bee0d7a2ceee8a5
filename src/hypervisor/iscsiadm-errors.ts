// iscsiadm's exit codes (open-iscsi include/iscsi_err.h, iscsiadm(8) EXIT STATUS) and
// the typed error a failed call becomes. Codes that mean "already done" are handled by
// the callers (15 on login, 21 on logout/delete/listing); the rest fail with a hint
// that says what usually causes them.
import { CommandError } from '../errors.js';
import { commandError } from '../runner/check.js';
import type { RunOptions, RunResult, Runner } from '../runner/types.js';

export const ISCSI_ERR = {
  GENERIC: 1,
  SESS_NOT_FOUND: 2,
  TRANS: 4,
  LOGIN: 5,
  IDBM: 6,
  INVAL: 7,
  TRANS_TIMEOUT: 8,
  INTERNAL: 9,
  LOGOUT: 10,
  PDU_TIMEOUT: 11,
  TRANS_NOT_FOUND: 12,
  ACCESS: 13,
  SESS_EXISTS: 15,
  ISCSID_COMM_ERR: 18,
  FATAL_LOGIN: 19,
  ISCSID_NOTCONN: 20,
  NO_OBJS_FOUND: 21,
  HOST_NOT_FOUND: 23,
  LOGIN_AUTH_FAILED: 24,
} as const;

/** What a failure means, for callers that branch on it (retry, tell the user...). */
export type IscsiadmFailure =
  | 'connect'
  | 'timeout'
  | 'auth'
  | 'login-refused'
  | 'no-iscsid'
  | 'no-transport'
  | 'not-found'
  | 'permission'
  | 'other';

const MEANING: Record<number, { failure: IscsiadmFailure; hint: string }> = {
  [ISCSI_ERR.TRANS]: { failure: 'connect', hint: 'could not connect to the portal: is the target running and the address and port right?' },
  [ISCSI_ERR.TRANS_TIMEOUT]: { failure: 'timeout', hint: 'the connection timed out: is the portal reachable (firewall, port 3260)?' },
  // Seen on discovery against a closed port: five "Connection refused", then 11.
  [ISCSI_ERR.PDU_TIMEOUT]: { failure: 'timeout', hint: 'the portal did not answer: is the target listening on that address and port?' },
  [ISCSI_ERR.TRANS_NOT_FOUND]: { failure: 'no-transport', hint: 'the iscsi_tcp kernel module is not loaded (modprobe iscsi_tcp)' },
  [ISCSI_ERR.ACCESS]: { failure: 'permission', hint: 'iscsiadm needs root' },
  [ISCSI_ERR.ISCSID_COMM_ERR]: { failure: 'no-iscsid', hint: 'iscsid did not answer: start it (systemctl start iscsid)' },
  [ISCSI_ERR.ISCSID_NOTCONN]: { failure: 'no-iscsid', hint: 'iscsid is not running: start it (systemctl start iscsid)' },
  // Pitfall 3: a non-retryable login failure is almost always the target's ACL or CHAP.
  // Seen in the lab: the initiator rejecting the target's answer to mutual CHAP (a wrong
  // mutual secret) also ends in 19 (test/fixtures/lab/login-lio-wrong-mutual.txt).
  [ISCSI_ERR.FATAL_LOGIN]: {
    failure: 'login-refused',
    hint: "the login was refused for good: check the target's ACL and CHAP (users and secrets on both sides, the mutual secret included)",
  },
  // LIO answers 24 both for a wrong CHAP secret and for an initiator missing from its ACL.
  [ISCSI_ERR.LOGIN_AUTH_FAILED]: { failure: 'auth', hint: "authorization failed: check the target's ACL lists this initiator and the CHAP user and secret on both sides" },
  [ISCSI_ERR.LOGIN]: { failure: 'other', hint: 'login failed: is the target served on this portal?' },
  [ISCSI_ERR.NO_OBJS_FOUND]: { failure: 'not-found', hint: 'no matching node record or session' },
  [ISCSI_ERR.SESS_NOT_FOUND]: { failure: 'not-found', hint: 'no such session' },
  [ISCSI_ERR.HOST_NOT_FOUND]: { failure: 'not-found', hint: 'no such iSCSI host' },
};

/** A failed iscsiadm call: a CommandError that also says what the exit code means. */
export class IscsiadmError extends CommandError {
  constructor(
    base: CommandError,
    readonly failure: IscsiadmFailure,
  ) {
    super(base.host, base.argv, base.display, base.exitCode, base.stderr, base.hint);
  }
}

export function iscsiadmError(runner: Runner, argv: readonly string[], result: RunResult, options: RunOptions = {}): IscsiadmError {
  const meaning = MEANING[result.exitCode];
  return new IscsiadmError(commandError(runner, argv, result, options, meaning?.hint), meaning?.failure ?? 'other');
}
