// The largest numbers the quota ledger takes: one request's worst case (tokens or micro-dollars)
// and every limit. The ledger adds amounts into counters that Redis keeps as signed 64-bit
// integers (HINCRBY refuses anything else) and that the Lua scripts read back as doubles, exact
// only up to 2^53 (about 9.007e15). With every amount and every limit at most 1e15, a window's
// counters stay exact while they hold up to nine such worst cases, and 64-bit for 9,000 of them;
// 1e15 is also written by JavaScript and Lua as plain digits, never in exponent form. It is far
// above any real use: 1e15 tokens a day, or $1,000,000,000 (1e15 micro-dollars).
// An amount past it is refused (src/quota/gate.ts answers 400); a limit past it is applied as it.
import type { Limits } from '../store/types.js';
import { MAX_RATE_LIMIT } from './bucket.js';

/** The largest worst case one request may reserve, and the largest token or money limit, in
 * tokens or micro-dollars. */
export const MAX_AMOUNT = 1e15;
/** The largest `tokensPerDay`, `tokensPerMonth` or `maxConcurrent` (and micro-dollar limit). */
export const MAX_LIMIT = MAX_AMOUNT;
/** The largest `usdPerDay` or `usdPerMonth`: MAX_LIMIT micro-dollars. */
export const MAX_USD_LIMIT = MAX_LIMIT / 1_000_000;

/** The largest value of each limit a user may hold: what the admin API must accept at most. */
export const LIMIT_MAXIMUM: Readonly<Record<keyof Limits, number>> = {
  rpm: MAX_RATE_LIMIT,
  tpm: MAX_RATE_LIMIT,
  tokensPerDay: MAX_LIMIT,
  tokensPerMonth: MAX_LIMIT,
  usdPerDay: MAX_USD_LIMIT,
  usdPerMonth: MAX_USD_LIMIT,
  maxConcurrent: MAX_LIMIT,
};

/** True when the ledger can count `value` as one request's amount: a whole number in 0..MAX_AMOUNT. */
export function isLedgerAmount(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0 && value <= MAX_AMOUNT;
}

/** Throws for a charge the ledger cannot count: a settle is refused whole rather than retried
 * (it would fail the same way every time) or charged in part. */
export function checkCharge(charge: { tokens: number; micros: number }): void {
  if (!isLedgerAmount(charge.tokens) || !isLedgerAmount(charge.micros)) {
    throw new RangeError(`a charge of ${charge.tokens} tokens and ${charge.micros} micro-dollars is not one the ledger counts (0 to ${MAX_AMOUNT}, whole)`);
  }
}

/**
 * A stored limit as the ledger applies it: a whole number in 0..max. Above max it is max (the
 * admin API refuses such a value; one written to the store some other way still cannot open
 * the ledger to amounts it cannot hold); a value that is not a number blocks (0), failing closed.
 */
export function ledgerLimit(value: number | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || Number.isNaN(value)) return 0;
  return Math.min(max, Math.max(0, Math.floor(value)));
}
