/** Cleanups run last-added first by `close()`; one that fails does not stop the rest. */
export function cleanupStack(): { cleanup(fn: () => unknown): void; close(): Promise<void> } {
  const cleanups: Array<() => unknown> = [];
  return {
    cleanup: (fn) => void cleanups.push(fn),
    async close() {
      for (const fn of cleanups.reverse()) {
        try {
          await fn();
        } catch {
          /* keep cleaning */
        }
      }
      cleanups.length = 0;
    },
  };
}
