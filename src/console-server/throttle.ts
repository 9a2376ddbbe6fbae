// Sign-in failures, counted twice: per client address (as the gateway decides it: the
// connection's, or under inbound.trustedProxies the client a trusted proxy names), and per key
// being tried (the `sk-kr-` and 4 characters a key is listed by), so that neither one address
// trying many keys nor many addresses trying one key get past `limit` guesses within `windowMs`.
// Past it, the sign-in gets 429 without its token being looked at, until the window ends.
// In memory (FailureThrottle, one per kind, each with at most `maxEntries` windows: past that the
// oldest is forgotten first) or on Redis (redis-throttle.ts), so that processes on one Redis count
// together.
import { displayPrefix, isGatewayKeyShape } from '../keys.js';

export interface ThrottleOptions {
  limit: number;
  windowMs: number;
  maxEntries: number;
}

/** What a failure counts toward: the client's address, or the key being tried. */
export type FailureKind = 'address' | 'key';

/** Sign-in failures per address and per key, in one process or shared through the store. */
export interface FailureCounter {
  /** Seconds until `id` may try again (then nothing is counted), or 0 after counting one failure. */
  begin(kind: FailureKind, id: string, now: number): Promise<number>;
  /** Takes back the failure `begin` counted. */
  forgive(kind: FailureKind, id: string): Promise<void>;
}

/** What one sign-in counts toward: its client address, and the key it tries when it is one of
 * this gateway's shape. A token of another shape is tried against the admin token, which is not
 * counted apart: anyone could then keep the admin from signing in. */
export function signInBuckets(address: string, token: string): Array<[FailureKind, string]> {
  const buckets: Array<[FailureKind, string]> = [['address', throttleKey(address)]];
  if (isGatewayKeyShape(token)) buckets.push(['key', displayPrefix(token)]);
  return buckets;
}

/**
 * Counts one sign-in as failed toward each of its buckets before its token is looked up, so that
 * sign-ins sent all at once cannot each be looked up before the first failure is counted;
 * `forgiveSignIn` takes it back when the token was right (or the store could not tell). Answers
 * the seconds to wait when any bucket is full, and then counts nothing.
 */
export async function beginSignIn(counter: FailureCounter, buckets: Array<[FailureKind, string]>, now: number): Promise<number> {
  const waits = await Promise.all(buckets.map(([kind, id]) => counter.begin(kind, id, now)));
  const wait = Math.max(0, ...waits);
  if (wait > 0) await Promise.all(buckets.filter((_, i) => waits[i] === 0).map(([kind, id]) => counter.forgive(kind, id)));
  return wait;
}

export async function forgiveSignIn(counter: FailureCounter, buckets: Array<[FailureKind, string]>): Promise<void> {
  await Promise.all(buckets.map(([kind, id]) => counter.forgive(kind, id)));
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

export const SIGN_IN_THROTTLE: ThrottleOptions = { limit: 10, windowMs: 60_000, maxEntries: 10_000 };

interface Window {
  start: number;
  failures: number;
}

export class FailureThrottle {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly options: ThrottleOptions = SIGN_IN_THROTTLE) {}

  /** Seconds until `id` may try again, or 0 when it may now. */
  retryAfter(id: string, now: number): number {
    const window = this.windows.get(id);
    if (!window) return 0;
    const ends = window.start + this.options.windowMs;
    if (now >= ends) {
      this.windows.delete(id);
      return 0;
    }
    return window.failures >= this.options.limit ? Math.ceil((ends - now) / 1000) : 0;
  }

  failed(id: string, now: number): void {
    const window = this.windows.get(id);
    if (window && now < window.start + this.options.windowMs) {
      window.failures++;
      return;
    }
    this.windows.delete(id);
    // Oldest first in a Map: evicting the first entry drops the window that started longest ago.
    while (this.windows.size >= this.options.maxEntries) this.windows.delete(this.windows.keys().next().value as string);
    this.windows.set(id, { start: now, failures: 1 });
  }

  /**
   * Counts one sign-in toward `id` as failed before its token is looked up, so that sign-ins
   * sent all at once cannot each be looked up before the first failure is counted; `forgive`
   * takes it back when the token was right (or the store could not tell). Answers the seconds to
   * wait, and then counts nothing.
   */
  begin(id: string, now: number): number {
    const wait = this.retryAfter(id, now);
    if (wait === 0) this.failed(id, now);
    return wait;
  }

  /** Takes back the failure `begin` counted. */
  forgive(id: string): void {
    const window = this.windows.get(id);
    if (window && window.failures > 0) window.failures--;
  }

  /** How many windows are remembered (tests check the bound). */
  get size(): number {
    return this.windows.size;
  }
}

/** The counter of one process: a FailureThrottle per kind, so that addresses rotated by the
 * thousand push out only addresses, never the window of the key they try. */
export class MemoryFailureCounter implements FailureCounter {
  readonly windows: Record<FailureKind, FailureThrottle>;

  constructor(options: ThrottleOptions = SIGN_IN_THROTTLE) {
    this.windows = { address: new FailureThrottle(options), key: new FailureThrottle(options) };
  }

  async begin(kind: FailureKind, id: string, now: number): Promise<number> {
    return this.windows[kind].begin(id, now);
  }

  async forgive(kind: FailureKind, id: string): Promise<void> {
    this.windows[kind].forgive(id);
  }
}
