import { VirtIscsiError } from '../errors.js';

/** One line for people. Our typed errors already carry it; anything else is a bug, so say so. */
export function renderError(err: unknown): string {
  const line = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();
  if (err instanceof VirtIscsiError) return line(err.message);
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && (err as NodeJS.ErrnoException).path) return line(err.message);
    return line(`internal error: ${err.message}`);
  }
  return line(`internal error: ${String(err)}`);
}
