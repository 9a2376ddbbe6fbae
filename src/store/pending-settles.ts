// Settles that Redis did not take (down, frozen, out of memory), kept in the process and resent
// until it does, for as long as its reservation holds (at most rules.ts MAX_SETTLE_RETRY_MS). A
// settle is idempotent by request id, and Redis remembers a settled id longer than any resend of
// it can come (rules.ts settledMemoryMs), so a resend that races the original (a frozen Redis runs
// both once it thaws) still charges once. Bounded: past `limit` the oldest is dropped, and past
// its lease a reservation is Redis's to release (the next admission sweeps it).
import type { Logger } from 'pino';
import type { SettleInput } from './types.js';

const RETRY_EVERY_MS = 1000;

export class PendingSettles {
  private readonly entries = new Map<string, { input: SettleInput; until: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly run: (input: SettleInput) => Promise<void>,
    private readonly log: Logger,
    private readonly limit = 10_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Keeps `input` and resends it until Redis takes it or `until` passes. `now`: a first try at once,
   * not at the next round of retries (a settle never tried yet: the cancel of a reserve whose
   * answer never came); it leaves with the settles of the next round of the event loop.
   */
  add(input: SettleInput, until: number, now = false): void {
    const id = `${input.reservation.userId}\n${input.reservation.requestId}`;
    if (!this.entries.has(id) && this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
      this.log.warn({ pending: this.entries.size }, 'too many settles waiting for redis: dropped the oldest (its lease will release it)');
    }
    const entry = { input, until };
    this.entries.set(id, entry);
    if (now) {
      this.run(input).then(
        () => {
          if (this.entries.get(id) === entry) this.entries.delete(id);
        },
        () => {},
      );
    }
    this.schedule();
  }

  /** Resends every waiting settle, oldest first; stops at the first failure (Redis is still away). */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
      this.schedule();
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    for (const [id, { input, until }] of this.entries) {
      if (until <= Date.now()) {
        this.entries.delete(id);
        continue;
      }
      try {
        await this.run(input);
        this.entries.delete(id);
      } catch {
        return;
      }
    }
  }

  private schedule(): void {
    if (this.timer || this.entries.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, RETRY_EVERY_MS);
    this.timer.unref();
  }

  /** One last attempt before the process goes; what still fails is left to the leases. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.entries.size > 0) await this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.entries.size > 0) this.log.warn({ pending: this.entries.size }, 'closing with settles redis never took: their leases will release them');
  }
}
