// Sign-in failures per client address: past `limit` failures within `windowMs`, that address
// gets 429 (without its token being looked at) until the window ends. One process's memory, with
// at most `maxAddresses` addresses: past that the oldest window is forgotten first.
export interface ThrottleOptions {
  limit: number;
  windowMs: number;
  maxAddresses: number;
}

export const SIGN_IN_THROTTLE: ThrottleOptions = { limit: 10, windowMs: 60_000, maxAddresses: 10_000 };

interface Window {
  start: number;
  failures: number;
}

export class FailureThrottle {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly options: ThrottleOptions = SIGN_IN_THROTTLE) {}

  /** Seconds until `address` may try again, or 0 when it may now. */
  retryAfter(address: string, now: number): number {
    const window = this.windows.get(address);
    if (!window) return 0;
    const ends = window.start + this.options.windowMs;
    if (now >= ends) {
      this.windows.delete(address);
      return 0;
    }
    return window.failures >= this.options.limit ? Math.ceil((ends - now) / 1000) : 0;
  }

  failed(address: string, now: number): void {
    const window = this.windows.get(address);
    if (window && now < window.start + this.options.windowMs) {
      window.failures++;
      return;
    }
    this.windows.delete(address);
    // Oldest first in a Map: evicting the first entry drops the window that started longest ago.
    while (this.windows.size >= this.options.maxAddresses) this.windows.delete(this.windows.keys().next().value as string);
    this.windows.set(address, { start: now, failures: 1 });
  }

  /**
   * Counts one sign-in from `address` as failed before its token is looked up, so that sign-ins
   * sent all at once cannot each be looked up before the first failure is counted; `forgive`
   * takes it back when the token was right (or the store could not tell). Answers the seconds to
   * wait, and then counts nothing.
   */
  begin(address: string, now: number): number {
    const wait = this.retryAfter(address, now);
    if (wait === 0) this.failed(address, now);
    return wait;
  }

  /** Takes back the failure `begin` counted. */
  forgive(address: string): void {
    const window = this.windows.get(address);
    if (window && window.failures > 0) window.failures--;
  }

  /** How many addresses are remembered (tests check the bound). */
  get size(): number {
    return this.windows.size;
  }
}
