// The admission rules both backends apply (Lua in scripts.ts, JavaScript in ledger.ts), and the
// constants they share. A window limit admits a request when something is left and the
// request's worst case fits in what is left; checks run in the order below, so a spent quota
// (which waiting a few seconds cannot fix) is reported before a rate limit. A worst case the
// ledger cannot count (amounts.ts) is refused before them all, as `too_large`, once the rpm
// bucket has taken its request: it never fits, yet the client made it.
import type { Denial, QuotaLimits } from '../store/types.js';

/** Expired leases released per admission: bounded work inside the atomic step. */
export const SWEEP_LIMIT = 64;
/** How long a settled request id is remembered, so that a resent reserve or settle is a no-op. */
export const SETTLED_MEMORY_MS = 10 * 60 * 1000;
/**
 * Reservations whose request id starts with this are charged later (a batch, a background
 * response: src/quota/later.ts). They hold the user's windows until then, but they are not
 * requests in flight: `maxConcurrent` does not count them, or one batch would take a slot for a day.
 */
export const LATER_PREFIX = 'later:';
/** Quota leases (src/store/redis-leases.ts, docs/quota.md) are reservations under ids with this
 * prefix: like those charged later, not requests in flight (their slots are counted apart). */
export const LEASE_PREFIX = 'lease:';
/** The longest quota lease (setting quota.leaseSeconds), in ms. */
export const MAX_LEASE_MS = 300_000;
/** A bucket that a lease holds part of lives at least this long: past the longest lease, and the
 * minute a bucket takes to refill from empty, so that it never reads as full too early. */
export const LEASE_BUCKET_KEEP_MS = MAX_LEASE_MS + 61_000;
/** A lease takes at most this share (1/D) of what is left of each limit. */
export const LEASE_DIVISOR = 8;

/** A concurrency slot frees when some request ends, which no clock predicts: retry soon. */
export const CONCURRENCY_RETRY_MS = 1000;
/** A limit of zero blocks; tell the client to come back in a minute rather than never. */
export const BLOCKED_RETRY_MS = 60_000;

export const WINDOW_CHECKS: ReadonlyArray<{
  denial: Denial;
  window: 'day' | 'month';
  unit: 'tokens' | 'micros';
  limit: keyof QuotaLimits;
}> = [
  { denial: 'tokens_per_day', window: 'day', unit: 'tokens', limit: 'tokensPerDay' },
  { denial: 'tokens_per_month', window: 'month', unit: 'tokens', limit: 'tokensPerMonth' },
  { denial: 'usd_per_day', window: 'day', unit: 'micros', limit: 'microsPerDay' },
  { denial: 'usd_per_month', window: 'month', unit: 'micros', limit: 'microsPerMonth' },
];

/** True when a window with `left` still free cannot take `need`. */
export function windowDenies(left: number, need: number): boolean {
  return left <= 0 || need > left;
}
