// The libvirt secret that holds a CHAP password for a pool or a disk, as one step for
// every caller (`pool create`, `export`, `repair`). The value goes to virsh on stdin,
// never argv; undone, the step removes the secret only when it defined it.
import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { Step } from '../plan/plan.js';
import { cephKeySecret, iscsiChapSecret } from '../xml/secret.js';
import type { Virsh } from './virsh.js';

export interface SecretSpec {
  /** iscsi (default): a CHAP password, set as plain text; ceph: a cephx key, set as the base64 Ceph prints. */
  type?: 'iscsi' | 'ceph';
  usage: string;
  description: string;
  /** The password; undefined when it cannot be known (then `missing` says why and what to do). */
  value: () => string | undefined;
  missing?: string;
  /** Set the value even when a secret with this usage is there (a new password); else it is left alone. */
  replace: boolean;
  /** For the title: whose password it is. */
  user?: string;
}

export function secretStep(virsh: Virsh, spec: SecretSpec): Step {
  const type = spec.type ?? 'iscsi';
  let created: string | undefined;
  return {
    id: 'secret',
    host: virsh.runner.host,
    title: `define libvirt ${type} secret ${spec.usage}${spec.user ? ` holding the ${type === 'ceph' ? 'cephx key' : 'CHAP password'} of ${spec.user}` : ''} and set its value`,
    check: async () => !spec.replace && (await virsh.secretByUsage(spec.usage, type)) !== undefined,
    async apply() {
      const value = spec.value();
      if (value === undefined) throw new ValidationError(spec.missing ?? `the value of libvirt secret ${spec.usage} is unknown`, 'chap');
      const existing = await virsh.secretByUsage(spec.usage, type);
      const def = (type === 'ceph' ? cephKeySecret : iscsiChapSecret)({ usage: spec.usage, description: spec.description });
      const uuid = existing?.uuid ?? (await virsh.secretDefine({ ...def, uuid: randomUUID() }));
      if (!existing) created = uuid;
      if (type === 'ceph') await virsh.secretSetValueBase64(uuid, value);
      else await virsh.secretSetValue(uuid, value);
    },
    async undo() {
      if (created) await virsh.secretUndefine(created);
    },
  };
}

/** Removes the secret with this usage; already gone is done. */
export function secretDeleteStep(virsh: Virsh, usage: string, known?: { uuid: string } | null, type: 'iscsi' | 'ceph' = 'iscsi'): Step {
  return {
    id: 'secret',
    host: virsh.runner.host,
    title: `undefine libvirt secret ${usage}`,
    check: async () => (known === undefined ? (await virsh.secretByUsage(usage, type)) === undefined : known === null),
    async apply() {
      const uuid = known?.uuid ?? (await virsh.secretByUsage(usage, type))?.uuid;
      if (uuid) await virsh.secretUndefine(uuid);
    },
  };
}
