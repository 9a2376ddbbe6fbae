// The per-minute limits (rpm, tpm) are token buckets that refill continuously, as OpenAI's own
// limits do, so there is no burst of twice the limit at a minute boundary. The level is kept
// scaled by 60,000 (ms per minute): refilling `limit` units per minute is then `limit` scaled
// units per ms, and every quantity stays a whole number, in Lua (doubles) as in JavaScript.
// scripts.ts carries the same arithmetic in Lua; the contract suite holds the two together.
import type { RateWindow } from '../store/types.js';

export const SCALE = 60_000;
/** Above this a limit would overflow exact double arithmetic once scaled; it means "unlimited". */
export const MAX_RATE_LIMIT = 100_000_000_000;

export interface BucketState {
  /** Scaled level; negative when a request used more than it reserved. */
  s: number;
  /** When `s` was written, epoch ms. */
  t: number;
}

/** The level at `now`; a missing bucket is full. */
export function levelAt(state: BucketState | undefined, limit: number, now: number): number {
  const cap = limit * SCALE;
  if (!state) return cap;
  const refilled = state.s + Math.max(0, now - state.t) * limit;
  return refilled > cap ? cap : refilled;
}

/** ms until the bucket holds `units` (0 when it does); Infinity when it never will. */
export function waitFor(level: number, units: number, limit: number): number {
  const need = units * SCALE - level;
  if (need <= 0) return 0;
  return limit === 0 ? Infinity : Math.ceil(need / limit);
}

/** ms until the bucket is full: how long its key must live (a missing key reads as full). */
export function msUntilFull(level: number, limit: number): number {
  return limit === 0 ? 0 : Math.max(0, Math.ceil((limit * SCALE - level) / limit));
}

export function rateWindow(level: number, limit: number): RateWindow {
  return { limit, remaining: Math.max(0, Math.floor(level / SCALE)), resetMs: msUntilFull(level, limit) };
}
