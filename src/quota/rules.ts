// The admission rules both backends apply (Lua in scripts.ts, JavaScript in ledger.ts), and the
// constants they share. A window limit admits a request when something is left and the
// request's worst case fits in what is left; checks run in the order below, so a spent quota
// (which waiting a few seconds cannot fix) is reported before a rate limit. A worst case the
// ledger cannot count (amounts.ts) is refused before them all, as `too_large`, once the rpm
// bucket has taken its request: it never fits, yet the client made it.
import type { Denial, QuotaLimits } from '../store/types.js';

/** Expired leases released per admission: bounded work inside the atomic step. */
export const SWEEP_LIMIT = 64;
/**
 * A settle that Redis did not answer is resent (src/store/pending-settles.ts) for as long as its
 * reservation holds (quota.leaseMs), and never longer than this: past it, the reservation is left
 * to lapse and be charged in full.
 */
export const MAX_SETTLE_RETRY_MS = 24 * 3_600_000;
/** How long a settle of a reservation made with `leaseMs` may be resent. */
export function settleRetryMs(leaseMs: number): number {
  return Math.min(leaseMs, MAX_SETTLE_RETRY_MS);
}
/** Margin a settled request id is remembered past the last resend of its settle: a resend that
 * lingered on its way, clocks of processes that differ. */
export const SETTLED_MEMORY_MS = 10 * 60 * 1000;
/**
 * How long a settled request id is remembered, so that a resent reserve or settle is a no-op: as
 * long as its settle may be resent, and SETTLED_MEMORY_MS more. A resend that came after the id
 * was forgotten would charge the request again.
 */
export function settledMemoryMs(leaseMs: number): number {
  return settleRetryMs(leaseMs) + SETTLED_MEMORY_MS;
}
/** A reservation swept past its lease is remembered this long: its lease is not known then, and
 * a settle of it may still be resent for up to MAX_SETTLE_RETRY_MS. Sweeps are rare. */
export const SWEPT_MEMORY_MS = MAX_SETTLE_RETRY_MS + SETTLED_MEMORY_MS;
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
