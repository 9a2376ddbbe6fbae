// The quota ledger in process memory: the JavaScript twin of the Lua scripts in scripts.ts, step
// for step, for the in-memory store. One process, one thread: each method runs to completion
// without awaiting, which is what makes it atomic.
import type {
  Admission,
  QuotaLimits,
  RateState,
  ReserveInput,
  SettleInput,
  UsageSnapshot,
  WindowUsage,
} from '../store/types.js';
import { checkCharge, isLedgerAmount } from './amounts.js';
import { type BucketState, SCALE, levelAt, msUntilFull, rateWindow, waitFor } from './bucket.js';
import { BLOCKED_RETRY_MS, CONCURRENCY_RETRY_MS, LATER_PREFIX, SETTLED_MEMORY_MS, SWEEP_LIMIT, WINDOW_CHECKS, windowDenies } from './rules.js';
import { WINDOW_GRACE_MS, dayWindow, monthWindow, windowEnd } from './windows.js';

interface Counters {
  tokens: number;
  micros: number;
  reservedTokens: number;
  reservedMicros: number;
  requests: number;
  estimated: number;
  expiresAt: number;
}

interface Held {
  tokens: number;
  micros: number;
  day: string;
  month: string;
  rpmTaken: boolean;
  tpmTaken: boolean;
}

interface Bucket extends BucketState {
  expiresAt: number;
}

interface UserLedger {
  windows: Map<string, Counters>;
  rpm?: Bucket;
  tpm?: Bucket;
  held: Map<string, Held>;
  /** request id -> lease deadline */
  leases: Map<string, number>;
  /** How many of `leases` are charges made later (rules.ts LATER_PREFIX), not requests in flight. */
  later: number;
  /**
   * request id -> when it may be forgotten. SETTLED_MEMORY_MS, not the store's longer
   * settledMemoryMs: in one process nothing between a settle and this ledger can fail, so no
   * settle is ever resent here (the Redis store resends them: src/store/pending-settles.ts), and a
   * busy process would hold an hour of request ids for nothing.
   */
  settled: Map<string, number>;
}

const emptyCounters = (expiresAt: number): Counters => ({
  tokens: 0,
  micros: 0,
  reservedTokens: 0,
  reservedMicros: 0,
  requests: 0,
  estimated: 0,
  expiresAt,
});

/** True when some lease has passed its deadline; no allocation on the common path of none. */
function hasExpired(leases: Map<string, number>, now: number): boolean {
  for (const deadline of leases.values()) if (deadline <= now) return true;
  return false;
}

/** Leases of requests in flight: those charged later (rules.ts LATER_PREFIX) are not. */
function inFlight(ledger: UserLedger): number {
  return ledger.leases.size - ledger.later;
}

function setLease(ledger: UserLedger, id: string, deadline: number): void {
  if (!ledger.leases.has(id) && id.startsWith(LATER_PREFIX)) ledger.later += 1;
  ledger.leases.set(id, deadline);
}

function dropLease(ledger: UserLedger, id: string): void {
  if (ledger.leases.delete(id) && id.startsWith(LATER_PREFIX)) ledger.later -= 1;
}

/** Remembers a settled request id until now + keep, never for less than before (scripts.ts remember). */
function remember(settled: Map<string, number>, id: string, now: number, keep: number): void {
  const was = settled.get(id);
  if (was === undefined || was < now + keep) settled.set(id, now + keep);
}

/**
 * Forgets settled request ids whose time has come. The map is in settling order, nearly the order
 * they are forgotten in (most share quota.leaseMs), so on a settle the walk stops at the first
 * one still remembered: O(forgotten), not O(remembered). One remembered longer (swept, charged
 * later) holds those behind it until the next prune, which walks them all.
 */
function forgetSettled(settled: Map<string, number>, now: number, all = false): void {
  for (const [id, until] of settled) {
    if (until <= now) settled.delete(id);
    else if (!all) return;
  }
}

export class MemoryLedger {
  private readonly users = new Map<string, UserLedger>();

  private user(id: string): UserLedger {
    let ledger = this.users.get(id);
    if (!ledger) {
      ledger = { windows: new Map(), held: new Map(), leases: new Map(), later: 0, settled: new Map() };
      this.users.set(id, ledger);
    }
    return ledger;
  }

  private counters(ledger: UserLedger, key: string, now: number): Counters | undefined {
    const c = ledger.windows.get(key);
    if (c && c.expiresAt <= now) {
      ledger.windows.delete(key);
      return undefined;
    }
    return c;
  }

  private countersFor(ledger: UserLedger, key: string, id: string, now: number): Counters {
    let c = this.counters(ledger, key, now);
    if (!c) {
      c = emptyCounters(windowEnd(id) + WINDOW_GRACE_MS);
      ledger.windows.set(key, c);
    }
    return c;
  }

  private bucket(ledger: UserLedger, which: 'rpm' | 'tpm', now: number): Bucket | undefined {
    const b = ledger[which];
    if (b && b.expiresAt <= now) {
      ledger[which] = undefined;
      return undefined;
    }
    return b;
  }

  private saveBucket(ledger: UserLedger, which: 'rpm' | 'tpm', level: number, limit: number, now: number): void {
    // A full bucket is no bucket, exactly as a Redis key that expired.
    if (level >= limit * SCALE) ledger[which] = undefined;
    else ledger[which] = { s: level, t: now, expiresAt: now + msUntilFull(level, limit) + 1000 };
  }

  /** Releases leases whose holder never settled (a crashed process): charged in full, as estimated. */
  private sweep(ledger: UserLedger, now: number, day: string, month: string): void {
    if (!hasExpired(ledger.leases, now)) return;
    const expired = [...ledger.leases]
      .filter(([, deadline]) => deadline <= now)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, SWEEP_LIMIT);
    for (const [id] of expired) {
      const held = ledger.held.get(id);
      if (held) {
        // Only the current windows matter for admission; a past window's leftovers are history.
        const keys = [held.day === day ? `d:${day}` : '', held.month === month ? `m:${month}` : ''];
        for (const key of keys) {
          const c = key ? this.counters(ledger, key, now) : undefined;
          if (!c) continue;
          c.reservedTokens -= held.tokens;
          c.reservedMicros -= held.micros;
          c.tokens += held.tokens;
          c.micros += held.micros;
          c.estimated += 1;
        }
        ledger.held.delete(id);
      }
      dropLease(ledger, id);
      remember(ledger.settled, id, now, SETTLED_MEMORY_MS);
    }
  }

  reserve(input: ReserveInput): Admission {
    const { limits, now, requestId: id, tokens, micros } = input;
    const ledger = this.user(input.userId);
    const day = dayWindow(now);
    const month = monthWindow(now);
    const reservation = { userId: input.userId, requestId: id, tokens, micros, day: day.id, month: month.id };

    const rpmLevel = limits.rpm === undefined ? undefined : levelAt(this.bucket(ledger, 'rpm', now), limits.rpm, now);
    const tpmLevel = limits.tpm === undefined ? undefined : levelAt(this.bucket(ledger, 'tpm', now), limits.tpm, now);
    const rateOf = (rpm: number | undefined, tpm: number | undefined): RateState => {
      const rate: RateState = {};
      if (rpm !== undefined && limits.rpm !== undefined) rate.requests = rateWindow(rpm, limits.rpm);
      if (tpm !== undefined && limits.tpm !== undefined) rate.tokens = rateWindow(tpm, limits.tpm);
      return rate;
    };

    if (ledger.held.has(id)) return { admitted: true, reservation, rate: rateOf(rpmLevel, tpmLevel) };
    if (ledger.settled.has(id)) return { admitted: false, denial: 'settled', retryAfterMs: 0, rate: rateOf(rpmLevel, tpmLevel) };

    this.sweep(ledger, now, day.id, month.id);
    const windows = {
      day: this.counters(ledger, `d:${day.id}`, now) ?? emptyCounters(0),
      month: this.counters(ledger, `m:${month.id}`, now) ?? emptyCounters(0),
    };
    const ends = { day: day.end, month: month.end };
    const deny = (denial: Admission & { admitted: false }): Admission => denial;
    const rpmWait = (): number | undefined => {
      if (limits.rpm === undefined || rpmLevel === undefined || rpmLevel >= SCALE) return undefined;
      const wait = waitFor(rpmLevel, 1, limits.rpm);
      return wait === Infinity ? BLOCKED_RETRY_MS : wait;
    };

    if (!isLedgerAmount(tokens) || !isLedgerAmount(micros)) {
      // Never admitted, whatever the limits; still a request the client made, so it takes its
      // unit of rpm (a client that sends them in a loop is slowed like any other).
      const wait = rpmWait();
      if (wait !== undefined) return deny({ admitted: false, denial: 'rpm', retryAfterMs: wait, rate: rateOf(rpmLevel, tpmLevel) });
      let rpmAfter = rpmLevel;
      if (limits.rpm !== undefined && rpmAfter !== undefined) {
        rpmAfter -= SCALE;
        this.saveBucket(ledger, 'rpm', rpmAfter, limits.rpm, now);
      }
      return deny({ admitted: false, denial: 'too_large', retryAfterMs: 0, rate: rateOf(rpmAfter, tpmLevel) });
    }

    for (const check of WINDOW_CHECKS) {
      const limit = limits[check.limit];
      if (limit === undefined) continue;
      const c = windows[check.window];
      const left = check.unit === 'tokens' ? limit - c.tokens - c.reservedTokens : limit - c.micros - c.reservedMicros;
      if (windowDenies(left, check.unit === 'tokens' ? tokens : micros)) {
        return deny({ admitted: false, denial: check.denial, retryAfterMs: ends[check.window] - now, rate: rateOf(rpmLevel, tpmLevel) });
      }
    }
    if (limits.maxConcurrent !== undefined && inFlight(ledger) >= limits.maxConcurrent) {
      return deny({ admitted: false, denial: 'max_concurrent', retryAfterMs: CONCURRENCY_RETRY_MS, rate: rateOf(rpmLevel, tpmLevel) });
    }
    const rpmDelay = rpmWait();
    if (rpmDelay !== undefined) return deny({ admitted: false, denial: 'rpm', retryAfterMs: rpmDelay, rate: rateOf(rpmLevel, tpmLevel) });
    if (limits.tpm !== undefined && tpmLevel !== undefined) {
      if (tokens > limits.tpm) {
        return deny({ admitted: false, denial: 'tpm_exceeded', retryAfterMs: BLOCKED_RETRY_MS, rate: rateOf(rpmLevel, tpmLevel) });
      }
      const wait = waitFor(tpmLevel, tokens, limits.tpm);
      if (wait > 0) {
        return deny({ admitted: false, denial: 'tpm', retryAfterMs: wait === Infinity ? BLOCKED_RETRY_MS : wait, rate: rateOf(rpmLevel, tpmLevel) });
      }
    }

    for (const [key, w] of [[`d:${day.id}`, day.id], [`m:${month.id}`, month.id]] as const) {
      const c = this.countersFor(ledger, key, w, now);
      c.reservedTokens += tokens;
      c.reservedMicros += micros;
      c.requests += 1;
    }
    let rpmAfter = rpmLevel;
    let tpmAfter = tpmLevel;
    if (limits.rpm !== undefined && rpmAfter !== undefined) {
      rpmAfter -= SCALE;
      this.saveBucket(ledger, 'rpm', rpmAfter, limits.rpm, now);
    }
    if (limits.tpm !== undefined && tpmAfter !== undefined) {
      tpmAfter -= tokens * SCALE;
      this.saveBucket(ledger, 'tpm', tpmAfter, limits.tpm, now);
    }
    ledger.held.set(id, {
      tokens,
      micros,
      day: day.id,
      month: month.id,
      rpmTaken: limits.rpm !== undefined,
      tpmTaken: limits.tpm !== undefined,
    });
    setLease(ledger, id, now + input.leaseMs);
    return { admitted: true, reservation, rate: rateOf(rpmAfter, tpmAfter) };
  }

  settle(input: SettleInput): void {
    checkCharge(input);
    const { reservation: r, limits, now } = input;
    const ledger = this.user(r.userId);
    if (ledger.settled.has(r.requestId)) {
      remember(ledger.settled, r.requestId, now, SETTLED_MEMORY_MS);
      return;
    }
    const held = ledger.held.get(r.requestId);
    const day = this.countersFor(ledger, `d:${r.day}`, r.day, now);
    const month = this.countersFor(ledger, `m:${r.month}`, r.month, now);
    if (held) {
      for (const c of [day, month]) {
        c.reservedTokens -= held.tokens;
        c.reservedMicros -= held.micros;
      }
      if (held.tpmTaken && limits.tpm !== undefined && limits.tpm > 0) {
        const level = levelAt(this.bucket(ledger, 'tpm', now), limits.tpm, now) + (held.tokens - input.tokens) * SCALE;
        this.saveBucket(ledger, 'tpm', Math.min(level, limits.tpm * SCALE), limits.tpm, now);
      }
      if (input.refundRequest) for (const c of [day, month]) c.requests -= 1;
      if (input.refundRequest && held.rpmTaken && limits.rpm !== undefined && limits.rpm > 0) {
        const level = levelAt(this.bucket(ledger, 'rpm', now), limits.rpm, now) + SCALE;
        this.saveBucket(ledger, 'rpm', Math.min(level, limits.rpm * SCALE), limits.rpm, now);
      }
      ledger.held.delete(r.requestId);
      dropLease(ledger, r.requestId);
    }
    for (const c of [day, month]) {
      c.tokens += input.tokens;
      c.micros += input.micros;
      if (input.estimated) c.estimated += 1;
    }
    forgetSettled(ledger.settled, now);
    remember(ledger.settled, r.requestId, now, SETTLED_MEMORY_MS);
  }

  usage(userId: string, limits: QuotaLimits, now: number): UsageSnapshot {
    const ledger = this.user(userId);
    const day = dayWindow(now);
    const month = monthWindow(now);
    const view = (key: string, id: string, end: number): WindowUsage => {
      const c = this.counters(ledger, key, now) ?? emptyCounters(0);
      return {
        window: id,
        resetsAt: new Date(end).toISOString(),
        requests: c.requests,
        tokens: c.tokens,
        micros: c.micros,
        reservedTokens: c.reservedTokens,
        reservedMicros: c.reservedMicros,
        estimatedRequests: c.estimated,
      };
    };
    let inFlight = 0;
    for (const [id, deadline] of ledger.leases) if (deadline > now && !id.startsWith(LATER_PREFIX)) inFlight++;
    const rate: RateState = {};
    if (limits.rpm !== undefined) rate.requests = rateWindow(levelAt(this.bucket(ledger, 'rpm', now), limits.rpm, now), limits.rpm);
    if (limits.tpm !== undefined) rate.tokens = rateWindow(levelAt(this.bucket(ledger, 'tpm', now), limits.tpm, now), limits.tpm);
    return { day: view(`d:${day.id}`, day.id, day.end), month: view(`m:${month.id}`, month.id, month.end), rate, inFlight };
  }

  /** Drops what has expired; the memory store calls it now and then so idle users cost nothing.
   * Held records and leases are never dropped here: only their settle or their sweep ends them,
   * so no amount stays reserved in the counters without a record to release it. */
  prune(now: number): void {
    for (const [id, ledger] of this.users) {
      for (const [key, c] of ledger.windows) if (c.expiresAt <= now) ledger.windows.delete(key);
      this.bucket(ledger, 'rpm', now);
      this.bucket(ledger, 'tpm', now);
      forgetSettled(ledger.settled, now, true);
      if (!ledger.windows.size && !ledger.rpm && !ledger.tpm && !ledger.held.size && !ledger.settled.size) this.users.delete(id);
    }
  }
}
