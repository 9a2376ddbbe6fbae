// Property test of the quota ledger (docs/quota.md, "The guarantee"), on the memory store and on a
// real Redis without leases: random interleavings of reserves, settles below, at and above the
// worst case, resends of a reserve or a settle, aborts, reservations left to expire, Redis command
// timeouts (a frozen Redis and a client that gives up after 1 ms) and window rollovers (minute,
// day, month), driven by a clock the test moves. A model of its own keeps what was admitted,
// settled and swept; after every step the store must report exactly the model's counters for the
// current day and month, charged + reserved must stay within each limit (plus what usage above a
// worst case added, the one documented way past a limit), and the rpm bucket must never have let
// more through in any interval than its limit plus its refill.
// Seeded: KEYRELAY_FC_SEED and KEYRELAY_FC_RUNS replay a failure (fast-check prints its seed).
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTLED_MEMORY_MS, WINDOW_CHECKS, windowDenies } from '../src/quota/rules.js';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import { createMemoryStore } from '../src/store/memory.js';
import { createRedisStore, quotaKeys } from '../src/store/redis.js';
import type { Denial, QuotaLimits, Reservation, Store, UsageSnapshot } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const SEED = Number(process.env.KEYRELAY_FC_SEED ?? 20261207);
const RUNS = Number(process.env.KEYRELAY_FC_RUNS ?? 30);
// A run that takes longer fails (with its seed): a hang is found, not waited out. Past the time
// budget no new run starts (on a machine busy enough to make 30 runs slow).
const BOUNDS = { timeout: 30_000, interruptAfterTimeLimit: 75_000, markInterruptAsFailure: false };
const log = capturingLogger();

/** The test's clock: real time plus an offset that only grows, so that it never runs slower than
 * Redis's own clock (a key's time to live, set relative to it, never ends early for the ledger). */
class Clock {
  private offset = 0;
  now(): number {
    return Date.now() + this.offset;
  }
  advance(ms: number): void {
    this.offset += ms;
  }
}

type Usage = 'below' | 'at' | 'above';
type Action =
  | { k: 'reserve'; tokens: number; micros: number }
  | { k: 'settle'; pick: number; usage: Usage; frac: number; estimated: boolean }
  | { k: 'abort'; pick: number }
  | { k: 'resendReserve'; pick: number }
  | { k: 'resendSettle'; pick: number }
  | { k: 'tick'; ms: number }
  | { k: 'expire' }
  | { k: 'rollover'; window: 'minute' | 'day' | 'month' }
  | { k: 'timeout'; reserve: boolean; frozen: boolean; tokens: number; pick: number; usage: Usage; frac: number };

const usageArb = fc.constantFrom<Usage>('below', 'at', 'above');
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('reserve' as const), tokens: fc.integer({ min: 0, max: 60 }), micros: fc.integer({ min: 0, max: 60_000 }) }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('settle' as const), pick: fc.nat(), usage: usageArb, frac: fc.double({ min: 0, max: 1, noNaN: true }), estimated: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('abort' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('resendReserve' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('resendSettle' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 8000 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('expire' as const) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('rollover' as const), window: fc.constantFrom('minute' as const, 'day' as const, 'month' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('timeout' as const),
      reserve: fc.boolean(),
      frozen: fc.boolean(),
      tokens: fc.integer({ min: 0, max: 60 }),
      pick: fc.nat(),
      usage: usageArb,
      frac: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
);
const maybe = (arb: fc.Arbitrary<number>) => fc.option(arb, { nil: undefined, freq: 2 });
const limitsArb: fc.Arbitrary<QuotaLimits> = fc
  .record({
    tokensPerDay: maybe(fc.integer({ min: 0, max: 300 })),
    tokensPerMonth: maybe(fc.integer({ min: 0, max: 600 })),
    microsPerDay: maybe(fc.integer({ min: 0, max: 300_000 })),
    microsPerMonth: maybe(fc.integer({ min: 0, max: 600_000 })),
    maxConcurrent: maybe(fc.integer({ min: 1, max: 5 })),
    rpm: maybe(fc.integer({ min: 1, max: 12 })),
    tpm: maybe(fc.integer({ min: 30, max: 400 })),
  })
  .map((l) => Object.fromEntries(Object.entries(l).filter(([, v]) => v !== undefined)) as QuotaLimits);

interface Counters {
  tokens: number;
  micros: number;
  reservedTokens: number;
  reservedMicros: number;
  requests: number;
  estimatedRequests: number;
  /** Usage above worst cases settled into this window: the one way past a limit. */
  overTokens: number;
  overMicros: number;
}
const zero = (): Counters => ({ tokens: 0, micros: 0, reservedTokens: 0, reservedMicros: 0, requests: 0, estimatedRequests: 0, overTokens: 0, overMicros: 0 });

interface Req {
  id: string;
  reservation: Reservation;
  deadline: number;
  state: 'held' | 'settled' | 'swept' | 'cancelled';
  /** When it left the held state (settle or sweep): a resend is a resend only while remembered. */
  endedAt: number;
  lastSettle?: { tokens: number; micros: number; estimated: boolean; refundRequest: boolean };
}

/** What the ledger must hold, kept apart from it. */
class Model {
  readonly windows = new Map<string, Counters>();
  readonly reqs: Req[] = [];
  /** rpm units taken (+1) and given back (-1), with their times. */
  readonly rpmEvents: Array<{ at: number; n: number }> = [];

  win(key: string): Counters {
    let c = this.windows.get(key);
    if (!c) this.windows.set(key, (c = zero()));
    return c;
  }
  held(): Req[] {
    return this.reqs.filter((r) => r.state === 'held');
  }
  /** A reserve of a new id first charges every held reservation past its deadline, in full, in
   * the current windows only (a past window's leftovers are history). */
  sweep(now: number): void {
    const day = dayWindow(now).id;
    const month = monthWindow(now).id;
    for (const r of this.held()) {
      if (r.deadline > now) continue;
      const keys = [r.reservation.day === day ? `d:${day}` : '', r.reservation.month === month ? `m:${month}` : ''].filter(Boolean);
      for (const key of keys) {
        const c = this.win(key);
        c.reservedTokens -= r.reservation.tokens;
        c.reservedMicros -= r.reservation.micros;
        c.tokens += r.reservation.tokens;
        c.micros += r.reservation.micros;
        c.estimatedRequests += 1;
      }
      r.state = 'swept';
      r.endedAt = now;
    }
  }
  /** What a reserve of `tokens`/`micros` must answer on the windows and slots; 'rate' when only
   * the buckets (not modelled to the unit) decide. */
  expected(limits: QuotaLimits, tokens: number, micros: number, now: number): Denial | 'rate' {
    const c = { day: this.win(`d:${dayWindow(now).id}`), month: this.win(`m:${monthWindow(now).id}`) };
    for (const check of WINDOW_CHECKS) {
      const limit = limits[check.limit];
      if (limit === undefined) continue;
      const w = c[check.window];
      const left = check.unit === 'tokens' ? limit - w.tokens - w.reservedTokens : limit - w.micros - w.reservedMicros;
      if (windowDenies(left, check.unit === 'tokens' ? tokens : micros)) return check.denial;
    }
    if (limits.maxConcurrent !== undefined && this.held().length >= limits.maxConcurrent) return 'max_concurrent';
    return 'rate';
  }
  admit(reservation: Reservation, now: number, leaseMs: number, limits: QuotaLimits): void {
    for (const key of [`d:${reservation.day}`, `m:${reservation.month}`]) {
      const c = this.win(key);
      c.reservedTokens += reservation.tokens;
      c.reservedMicros += reservation.micros;
      c.requests += 1;
    }
    this.reqs.push({ id: reservation.requestId, reservation, deadline: now + leaseMs, state: 'held', endedAt: 0 });
    if (limits.rpm !== undefined) this.rpmEvents.push({ at: now, n: 1 });
  }
  settle(r: Req, s: { tokens: number; micros: number; estimated: boolean; refundRequest: boolean }, now: number, limits: QuotaLimits): void {
    if (r.state !== 'held') return;
    for (const key of [`d:${r.reservation.day}`, `m:${r.reservation.month}`]) {
      const c = this.win(key);
      c.reservedTokens -= r.reservation.tokens;
      c.reservedMicros -= r.reservation.micros;
      c.tokens += s.tokens;
      c.micros += s.micros;
      c.overTokens += Math.max(0, s.tokens - r.reservation.tokens);
      c.overMicros += Math.max(0, s.micros - r.reservation.micros);
      if (s.estimated) c.estimatedRequests += 1;
      if (s.refundRequest) c.requests -= 1;
    }
    if (s.refundRequest && limits.rpm !== undefined) this.rpmEvents.push({ at: now, n: -1 });
    r.state = 'settled';
    r.endedAt = now;
    r.lastSettle = s;
  }
}

const remembered = (r: Req, now: number) => now - r.endedAt < SETTLED_MEMORY_MS - 60_000;

function usageOf(r: Req, usage: Usage, frac: number): { tokens: number; micros: number } {
  const scale = (v: number) => (usage === 'below' ? Math.floor(v * frac) : usage === 'at' ? v : v + 1 + Math.floor(frac * 40));
  return { tokens: scale(r.reservation.tokens), micros: scale(r.reservation.micros) };
}

/** Every invariant, on what the store reports now; throws with what differs. */
function check(limits: QuotaLimits, model: Model, got: UsageSnapshot, now: number): void {
  const fail = (what: string) => {
    throw new Error(`${what} at ${new Date(now).toISOString()}`);
  };
  for (const [name, w, limitTokens, limitMicros] of [
    ['day', got.day, limits.tokensPerDay, limits.microsPerDay],
    ['month', got.month, limits.tokensPerMonth, limits.microsPerMonth],
  ] as const) {
    const want = model.win(`${name[0]}:${w.window}`);
    const seen = { tokens: w.tokens, micros: w.micros, reservedTokens: w.reservedTokens, reservedMicros: w.reservedMicros, requests: w.requests, estimatedRequests: w.estimatedRequests };
    const wanted = { tokens: want.tokens, micros: want.micros, reservedTokens: want.reservedTokens, reservedMicros: want.reservedMicros, requests: want.requests, estimatedRequests: want.estimatedRequests };
    if (JSON.stringify(seen) !== JSON.stringify(wanted)) fail(`${name} ${w.window}: the store holds ${JSON.stringify(seen)}, the model ${JSON.stringify(wanted)}`);
    if (limitTokens !== undefined && w.tokens + w.reservedTokens > limitTokens + want.overTokens) fail(`${name}: ${w.tokens} charged + ${w.reservedTokens} reserved tokens > ${limitTokens} (+${want.overTokens} over worst cases)`);
    if (limitMicros !== undefined && w.micros + w.reservedMicros > limitMicros + want.overMicros) fail(`${name}: ${w.micros} charged + ${w.reservedMicros} reserved micros > ${limitMicros} (+${want.overMicros} over worst cases)`);
    if (w.reservedTokens < 0 || w.reservedMicros < 0) fail(`${name}: reserved below zero`);
  }
  const live = model.held().filter((r) => r.deadline > now).length;
  if (got.inFlight !== live) fail(`${got.inFlight} in flight, the model ${live}`);
  if (limits.maxConcurrent !== undefined && got.inFlight > limits.maxConcurrent) fail(`${got.inFlight} in flight > ${limits.maxConcurrent}`);
  if (limits.rpm !== undefined) {
    const rate = limits.rpm / 60_000;
    const events = model.rpmEvents;
    for (let i = 0; i < events.length; i++) {
      let net = 0;
      for (let j = i; j < events.length; j++) {
        net += (events[j] as { n: number }).n;
        const span = (events[j] as { at: number }).at - (events[i] as { at: number }).at;
        if (net > limits.rpm + rate * span + 1e-9) fail(`${net} rpm units taken in ${span} ms > ${limits.rpm} + refill`);
      }
    }
    const r = got.rate.requests;
    if (!r || r.remaining < 0 || r.remaining > limits.rpm) fail(`rpm remaining ${JSON.stringify(r)}`);
  }
}

interface Backend {
  store: Store;
  /** Runs `op` against a store whose Redis command times out (frozen or after 1 ms), then `resend`
   * on the store that answers (what the first would resend: the settle, or the cancel of a reserve
   * that got no answer; either may run first in Redis), and waits until the request id has settled
   * there. Absent on the memory store, which has no commands to time out. */
  withTimeout?(frozen: boolean, userId: string, requestId: string, op: (store: Store) => Promise<void>, resend: (store: Store) => Promise<void>): Promise<void>;
}

const stats = { steps: 0, admitted: 0, denied: new Map<string, number>(), timeouts: 0, timeoutsAnswered: 0 };

async function runActions(backend: Backend, clock: Clock, limits: QuotaLimits, leaseMs: number, actions: Action[], tag: string): Promise<void> {
  const { store } = backend;
  const userId = `${tag}-${Math.random().toString(36).slice(2, 10)}`;
  const model = new Model();
  let serial = 0;
  const pick = <T>(list: T[], n: number): T | undefined => (list.length ? list[n % list.length] : undefined);

  const reserveNew = async (s: Store, tokens: number, micros: number, now: number) => {
    const requestId = `q${++serial}`;
    model.sweep(now);
    const want = model.expected(limits, tokens, micros, now);
    const a = await s.reserve({ userId, requestId, limits, tokens, micros, now, leaseMs });
    if (a.admitted) {
      if (want !== 'rate') throw new Error(`admitted ${tokens} tokens, ${micros} micros where the model refuses: ${want}`);
      model.admit(a.reservation, now, leaseMs, limits);
      stats.admitted++;
    } else {
      stats.denied.set(a.denial, (stats.denied.get(a.denial) ?? 0) + 1);
      const rateDenial = ['rpm', 'tpm', 'tpm_exceeded'].includes(a.denial);
      if (want === 'rate' ? !rateDenial : a.denial !== want) throw new Error(`refused as ${a.denial}, the model says ${want}`);
    }
  };

  for (const action of actions) {
    stats.steps++;
    let now = clock.now();
    switch (action.k) {
      case 'reserve':
        await reserveNew(store, action.tokens, action.micros, now);
        break;
      case 'settle':
      case 'abort':
      case 'resendSettle': {
        const candidates = action.k === 'resendSettle' ? model.reqs.filter((r) => r.lastSettle && remembered(r, now)) : model.reqs.filter((r) => r.state === 'held' || ((r.state === 'settled' || r.state === 'swept') && remembered(r, now)));
        const r = pick(candidates, action.pick);
        if (!r) break;
        const s =
          action.k === 'resendSettle'
            ? (r.lastSettle as NonNullable<Req['lastSettle']>)
            : action.k === 'abort'
              ? { tokens: 0, micros: 0, estimated: false, refundRequest: true }
              : { ...usageOf(r, action.usage, action.frac), estimated: action.estimated, refundRequest: false };
        await store.settle({ reservation: r.reservation, limits, ...s, now, leaseMs });
        model.settle(r, s, now, limits);
        break;
      }
      case 'resendReserve': {
        const r = pick(model.reqs.filter((q) => q.state === 'held' || (q.state !== 'cancelled' && remembered(q, now))), action.pick);
        if (!r) break;
        const a = await store.reserve({ userId, requestId: r.id, limits, tokens: r.reservation.tokens, micros: r.reservation.micros, now, leaseMs });
        if (r.state === 'held' && !a.admitted) throw new Error(`a resent reserve of held ${r.id} was refused (${a.denial})`);
        if (r.state !== 'held' && (a.admitted || a.denial !== 'settled')) throw new Error(`a resent reserve of ${r.state} ${r.id} answered ${a.admitted ? 'admitted' : a.denial}`);
        break;
      }
      case 'tick':
        clock.advance(action.ms);
        break;
      case 'expire':
        clock.advance(leaseMs + 1);
        break;
      case 'rollover': {
        const end = action.window === 'minute' ? now + 60_000 : action.window === 'day' ? dayWindow(now).end : monthWindow(now).end;
        clock.advance(end - now + 1);
        break;
      }
      case 'timeout': {
        if (!backend.withTimeout) break;
        // A reserve that got no answer may have swept: keep the model certain by sending it only
        // when nothing is waiting to be swept.
        if (model.held().some((r) => r.deadline <= now)) break;
        stats.timeouts++;
        if (action.reserve) {
          const requestId = `t${++serial}`;
          await backend.withTimeout(action.frozen, userId, requestId, async (s) => {
            try {
              const a = await s.reserve({ userId, requestId, limits, tokens: action.tokens, micros: 0, now, leaseMs });
              // Answered in time after all (1 ms is not always too short): give it back.
              stats.timeoutsAnswered++;
              if (a.admitted) await s.settle({ reservation: a.reservation, limits, tokens: 0, micros: 0, estimated: false, refundRequest: true, now, leaseMs });
              else await s.settle({ reservation: { userId, requestId, tokens: 0, micros: 0, day: dayWindow(now).id, month: monthWindow(now).id }, limits, tokens: 0, micros: 0, estimated: false, refundRequest: true, now, leaseMs });
            } catch (err) {
              expect((err as { code?: string }).code).toBe('quota_backend_unavailable');
            }
          }, (s) => s.settle({ reservation: { userId, requestId, tokens: action.tokens, micros: 0, day: dayWindow(now).id, month: monthWindow(now).id }, limits, tokens: 0, micros: 0, estimated: false, refundRequest: true, now, leaseMs }));
        } else {
          const r = pick(model.held(), action.pick);
          if (!r) break;
          const s = { ...usageOf(r, action.usage, action.frac), estimated: false, refundRequest: false };
          const settle = (store: Store) => store.settle({ reservation: r.reservation, limits, ...s, now, leaseMs });
          await backend.withTimeout(action.frozen, userId, r.id, settle, settle);
          model.settle(r, s, now, limits);
        }
        break;
      }
    }
    now = clock.now();
    check(limits, model, await store.usage(userId, limits, now), now);
  }
}

const runParams = fc.record({ limits: limitsArb, leaseMs: fc.integer({ min: 5_000, max: 120_000 }), actions: fc.array(actionArb, { minLength: 5, maxLength: 40 }) });

describe('the quota ledger under random interleavings', () => {
  let redis: RedisServer;
  let reader: Redis;
  let redisStore: Store;

  beforeAll(async () => {
    redis = await startRedis();
    reader = new Redis(redis.url);
    redisStore = await createRedisStore({ url: redis.url, commandTimeoutMs: 5000, log });
    // The scripts are loaded by this store: the 1 ms client below then finds them cached.
    const limits = {};
    const now = Date.now();
    const a = await redisStore.reserve({ userId: 'warm', requestId: 'w', limits, tokens: 1, micros: 0, now, leaseMs: 1000 });
    if (!a.admitted) throw new Error('warm-up refused');
    await redisStore.settle({ reservation: a.reservation, limits, tokens: 1, micros: 0, estimated: false, refundRequest: false, now, leaseMs: 1000 });
  }, 30_000);
  afterAll(async () => {
    await redisStore?.close();
    reader?.disconnect();
    await redis?.stop();
  });

  it('keeps the memory store equal to the model, and within every limit, after every step', async () => {
    const clock = new Clock();
    await fc.assert(
      fc.asyncProperty(runParams, async ({ limits, leaseMs, actions }) => {
        const store = createMemoryStore();
        try {
          await runActions({ store }, clock, limits, leaseMs, actions, 'mem');
        } finally {
          await store.close();
        }
      }),
      { seed: SEED, numRuns: RUNS * 4, ...BOUNDS },
    );
  }, 120_000);

  it('keeps a real Redis equal to the model, and within every limit, after every step, through command timeouts', async () => {
    const clock = new Clock();
    const backend: Backend = {
      store: redisStore,
      async withTimeout(frozen, userId, requestId, op, resend) {
        const flaky = await createRedisStore({ url: redis.url, commandTimeoutMs: 1, log });
        if (frozen) redis.freeze();
        try {
          await op(flaky);
        } finally {
          if (frozen) redis.thaw();
          // Closing resends what got no answer once (a settle, or the cancel of a reserve); the
          // reserve itself, when Redis ran it, runs before, on the same connection.
          await flaky.close();
        }
        // On a busy machine the 1 ms client may not even have connected: what it never sent, the
        // resend does (charged once whichever runs first).
        await resend(redisStore);
        const now = clock.now();
        const settledKey = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id)[6] as string;
        await until(async () => (await reader.zscore(settledKey, requestId)) !== null, `${requestId} to settle in Redis`, 10_000);
      },
    };
    stats.timeouts = 0;
    await fc.assert(
      fc.asyncProperty(runParams, async ({ limits, leaseMs, actions }) => {
        await runActions(backend, clock, limits, leaseMs, actions, 'redis');
      }),
      { seed: SEED, numRuns: RUNS, ...BOUNDS },
    );
    console.info(`quota ledger properties: ${stats.steps} steps, ${stats.admitted} admitted, refused ${JSON.stringify(Object.fromEntries(stats.denied))}; ${stats.timeouts} Redis timeouts (${stats.timeoutsAnswered} answered within 1 ms anyway)`);
    expect(stats.timeouts).toBeGreaterThan(0);
  }, 120_000);
});
