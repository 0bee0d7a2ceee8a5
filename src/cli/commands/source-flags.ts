// Flag checks shared by the commands that name an iSCSI disk source (`xml disk`,
// `attach`, `media insert`) or a CHAP secret (`xml pool`): one wording for one mistake.
import { ValidationError } from '../../errors.js';
import { MAX_LUN } from '../../xml/disk.js';
import type { SecretRef } from '../../xml/secret.js';

export interface ChapFlags {
  chapUser?: string;
  chapSecretUsage?: string;
  chapSecretUuid?: string;
}

export interface SourceFormFlags {
  byPath?: string;
  portal?: string;
  target?: string;
  lun?: string;
  pool?: string;
  volume?: string;
}

/** --lun N */
export function parseLunFlag(text: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > MAX_LUN) throw new ValidationError(`--lun ${JSON.stringify(text)} is not a LUN number from 0 to ${MAX_LUN}`, 'lun');
  return Number(text);
}

/** --chap-user with --chap-secret-usage or --chap-secret-uuid, or none of them. */
export function chapAuth(o: ChapFlags): { username: string; secret: SecretRef } | undefined {
  if (o.chapSecretUsage !== undefined && o.chapSecretUuid !== undefined) throw new ValidationError('give --chap-secret-usage or --chap-secret-uuid, not both', 'chap');
  const secret: SecretRef | undefined =
    o.chapSecretUsage !== undefined ? { usage: o.chapSecretUsage } : o.chapSecretUuid !== undefined ? { uuid: o.chapSecretUuid } : undefined;
  if (o.chapUser === undefined && secret === undefined) return undefined;
  if (o.chapUser === undefined) throw new ValidationError('--chap-secret-usage/--chap-secret-uuid needs --chap-user', 'chap');
  if (secret === undefined) {
    throw new ValidationError(`--chap-user ${JSON.stringify(o.chapUser)} needs --chap-secret-usage NAME (or --chap-secret-uuid) naming the libvirt secret with the password`, 'chap');
  }
  return { username: o.chapUser, secret };
}

/** The one source form the flags give: --by-path, --portal/--target/--lun, or --pool/--volume. */
export function sourceForm(o: SourceFormFlags): 'block' | 'network' | 'volume' {
  const forms = [
    { kind: 'block' as const, flags: ['--by-path'], given: [o.byPath] },
    { kind: 'network' as const, flags: ['--portal', '--target', '--lun'], given: [o.portal, o.target, o.lun] },
    { kind: 'volume' as const, flags: ['--pool', '--volume'], given: [o.pool, o.volume] },
  ];
  const used = forms.filter((f) => f.given.some((v) => v !== undefined));
  const expected = 'give --by-path PATH, or --portal HOST[:PORT] --target IQN --lun N, or --pool P --volume V';
  if (used.length === 0) throw new ValidationError(`no disk source: ${expected}`, 'source');
  if (used.length > 1) throw new ValidationError(`${used.map((f) => f.flags.join('/')).join(' and ')} are different disk sources; ${expected}`, 'source');
  const form = used[0]!;
  const missing = form.flags.filter((_, i) => form.given[i] === undefined);
  if (missing.length > 0) throw new ValidationError(`${form.flags.join(', ')} go together; missing ${missing.join(', ')}`, 'source');
  return form.kind;
}
