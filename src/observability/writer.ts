// Writes records to Redis in the background so that the request path never waits on it: `push`
// is synchronous and only appends to a bounded in-process buffer; batches go out one at a time.
// When Redis is slow or gone the buffer fills, the oldest records are dropped (and counted), and
// writing resumes by itself. Loss under a long outage is the price of never blocking a request.

export interface WriterOptions<T> {
  write(batch: T[]): Promise<void>;
  /** Records held at most; past it the oldest go. */
  maxPending: number;
  maxBatch: number;
  /** Wait before trying again after a failed batch. */
  retryMs: number;
  /** How long a record waits for others to go with it (one write for many requests). */
  batchMs?: number;
  onError(err: unknown): void;
  onDrop(count: number): void;
  /** A batch went through (after failures: the backend is back). */
  onWritten?(): void;
}

export class BackgroundWriter<T> {
  private pending: T[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: WriterOptions<T>) {}

  get size(): number {
    return this.pending.length;
  }

  push(item: T): void {
    if (this.closed) {
      this.options.onDrop(1);
      return;
    }
    this.pending.push(item);
    this.trim();
    this.schedule(this.options.batchMs ?? 0);
  }

  /** Tries to write what is pending now; resolves after one attempt, whether it worked or not. */
  async flush(): Promise<void> {
    if (this.running) await this.running;
    if (this.pending.length === 0) return;
    this.cancelTimer();
    await this.start();
  }

  /** Takes no more records, and tries once to write what it holds. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.cancelTimer();
  }

  private trim(): void {
    const over = this.pending.length - this.options.maxPending;
    if (over > 0) {
      this.pending.splice(0, over);
      this.options.onDrop(over);
    }
  }

  private cancelTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.running || this.timer || this.closed) return;
    // Records of one tick (a burst of requests ending together) go out in one batch.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.start();
    }, ms);
    this.timer.unref();
  }

  private start(): Promise<void> {
    const run = this.drain().then((ok) => {
      this.running = undefined;
      if (!ok) this.schedule(this.options.retryMs);
      else if (this.pending.length > 0) this.schedule(this.options.batchMs ?? 0);
    });
    this.running = run;
    return run;
  }

  /** Resolves false when a batch failed (it is put back, to be tried again). */
  private async drain(): Promise<boolean> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.options.maxBatch);
      try {
        await this.options.write(batch);
      } catch (err) {
        this.pending.unshift(...batch);
        this.trim();
        this.options.onError(err);
        return false;
      }
      this.options.onWritten?.();
    }
    return true;
  }
}
