// The CLI's side of a Session: opened for one command and always closed; under --dry-run
// the plan is printed after the command's own output.
import { Session, type SessionOptions } from '../runner/session.js';
import { printText } from './output.js';

export { Session, type SessionOptions };

/** Runs `fn` with a Session and always closes it; under --dry-run prints the plan after. */
export async function withSession<T>(options: SessionOptions, fn: (s: Session) => Promise<T>): Promise<T> {
  const session = new Session(options);
  try {
    const result = await fn(session);
    if (session.dryRun) {
      printText(`# dry run: nothing was changed. This would run:\n${session.renderPlan() || '# (nothing to do)'}`);
    }
    return result;
  } finally {
    await session.close();
  }
}
