// A counting semaphore: at most `size` tasks at once, the rest wait in FIFO order.
// The SSH runner uses it to stay under the server's channels-per-connection limit.
export class Slots {
  private busy = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`slot count ${size} is not a positive integer`);
  }

  async use<T>(task: () => Promise<T>): Promise<T> {
    if (this.busy >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.busy++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, or free it.
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}
