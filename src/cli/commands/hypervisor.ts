// The hypervisor-side commands, registered together (one entry in main.ts).
import type { Command } from 'commander';
import { registerAttach } from './attach.js';
import { registerInitiator } from './initiator.js';
import { registerMedia } from './media.js';
import { registerPool } from './pool.js';

export function registerHypervisor(program: Command): void {
  registerInitiator(program);
  registerPool(program);
  registerAttach(program);
  registerMedia(program);
}
