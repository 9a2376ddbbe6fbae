// Sign-in failures per client address: past `limit` failures within `windowMs`, that address
// gets 429 (without its token being looked at) until the window ends. One process's memory, with
// at most `maxAddresses` addresses: past that the oldest window is forgotten first.
export interface ThrottleOptions {
  limit: number;
  windowMs: number;
  maxAddresses: number;
}

/**
 * Whose failures a client address counts toward: an IPv4 address (also one a dual-stack socket
 * shows as `::ffff:a.b.c.d`) is itself; an IPv6 address counts toward its /64, since one host
 * commonly holds a whole /64 and could otherwise try from a new address each time.
 */
export function throttleKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] as string;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('%')[0]!.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
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
