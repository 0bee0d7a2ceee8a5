// Host URIs to Runners: `local` runs here, `ssh://[user@]host[:port]` over one SSH connection.
import { parseHostUri } from './host-uri.js';
import { LocalRunner } from './local.js';
import { SshRunner, type SshOptions } from './ssh.js';
import type { Runner } from './types.js';

export type { SshOptions };

export async function openRunner(uri: string, ssh: SshOptions = {}): Promise<Runner> {
  const spec = parseHostUri(uri);
  if (spec.kind === 'local') return new LocalRunner();
  return SshRunner.connect(spec, ssh);
}
