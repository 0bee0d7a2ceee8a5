// Host URIs to Runners: `local` runs here, `ssh://[user@]host[:port]` over one SSH connection.
import { parseHostUri } from './host-uri.js';
import { LocalRunner } from './local.js';
import type { SshOptions } from './ssh.js';
import type { Runner } from './types.js';

export type { SshOptions };

export async function openRunner(uri: string, ssh: SshOptions = {}): Promise<Runner> {
  const spec = parseHostUri(uri);
  if (spec.kind === 'local') return new LocalRunner();
  // Loaded only for ssh:// hosts: ssh2 takes a while to load, and local commands need none of it.
  const { SshRunner } = await import('./ssh.js');
  return SshRunner.connect(spec, ssh);
}
