// `qemu-img convert -p` progress. It writes to stdout, each update ending in a carriage
// return (captured from qemu-img 7.2):
//   "    (0.00/100%)\r    (1.01/100%)\r    (2.02/100%)\r ... (100.00/100%)\r\n"
// Chunks from the runner may split an update anywhere, so the unfinished tail is kept.

const UPDATE = /\((\d{1,3}(?:\.\d+)?)\/100%\)/g;

/** Returns a function to feed output chunks to; it calls `onPercent` for every complete update. */
export function qemuProgressParser(onPercent: (percent: number) => void): (chunk: string) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk;
    let end = 0;
    for (const m of pending.matchAll(UPDATE)) {
      onPercent(Math.min(100, Number(m[1])));
      end = m.index + m[0].length;
    }
    // Keep only what may be the start of an update still arriving.
    const rest = pending.slice(end);
    const open = rest.lastIndexOf('(');
    pending = open < 0 ? '' : rest.slice(open);
  };
}
