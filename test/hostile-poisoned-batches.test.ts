// One request's bad entry in a batched ledger call fails that request alone. Admissions made in
// one round of the event loop reach Redis as one script call (src/store/script-batch.ts); an
// amount the ledger cannot count, or a step Redis refuses, once failed the whole call, and so
// every request batched with it. Each store, given a batch with poisoned entries among good
// ones: the good ones are admitted and charged, each poisoned one gets its own answer, and the
// rpm bucket still counts the poisoned requests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { MAX_AMOUNT } from '../src/quota/amounts.js';
import { quotaKeys } from '../src/store/redis.js';
import type { Admission, QuotaLimits, Store } from '../src/store/types.js';
import { redisCli } from './helpers/redis-server.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const HOUR = 3_600_000;
// A fixed clock, well in the future so that absolute expiries written from it lie ahead.
const NOON = Date.UTC(2032, 2, 9, 12, 0, 0);
const DAY = '2032-03-09';
const MONTH = '2032-03';

// Worst cases no ledger holds: a /v1/completions worst case past 64 bits, and the values a bug
// upstream of the store could hand it.
const POISONS: Array<[string, number]> = [
  ['past 64 bits', 1.15e21],
  ['one past the bound', MAX_AMOUNT + 1],
  ['not a number', Number.NaN],
  ['infinite', Number.POSITIVE_INFINITY],
  ['negative', -5],
  ['a fraction', 1.5],
];

describe.each(STORE_BACKENDS)('the %s store', (name, make) => {
  let backend: Backend;
  let store: Store;
  let seq = 0;
  const fresh = (what: string): string => `${what}${++seq}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    backend = await make();
    store = backend.store;
  });
  afterAll(() => backend.stop());

  const reserve = (userId: string, requestId: string, limits: QuotaLimits, tokens: number, micros = 0, now = NOON): Promise<Admission> =>
    store.reserve({ userId, requestId, limits, tokens, micros, now, leaseMs: HOUR });

  it('refuses each poisoned worst case alone: its neighbours in the batch are admitted, and rpm counts it', async () => {
    const mallory = fresh('mallory');
    const others = Array.from({ length: 20 }, (_, i) => fresh(`good${i}`));
    const malloryLimits: QuotaLimits = { rpm: 100, microsPerDay: 1_000_000 };
    const goodLimits: QuotaLimits = { rpm: 10, tokensPerDay: 10_000 };
    // All issued in one tick: one batch on a single Redis; on a cluster, one per user, so mallory
    // also sends good requests of her own beside her poisoned ones.
    const calls: Array<Promise<Admission>> = [];
    calls.push(reserve(mallory, 'fine-before', malloryLimits, 100));
    for (const [i, user] of others.entries()) {
      calls.push(reserve(user, 'r', goodLimits, 100));
      const poison = POISONS[i % POISONS.length] as [string, number];
      if (i < POISONS.length) calls.push(reserve(mallory, `tokens ${poison[0]}`, malloryLimits, poison[1]));
      if (i < POISONS.length) calls.push(reserve(mallory, `micros ${poison[0]}`, malloryLimits, 100, poison[1]));
    }
    calls.push(reserve(mallory, 'fine-after', malloryLimits, 100));
    const settled = await Promise.allSettled(calls);
    const answers = settled.map((s) => (s.status === 'fulfilled' ? s.value : { failed: (s.reason as Error).message }));

    const denials = answers.map((a) => ('failed' in a ? a.failed : a.admitted ? 'admitted' : a.denial));
    expect(denials).toEqual([
      'admitted',
      ...others.flatMap((_, i) => (i < POISONS.length ? ['admitted', 'too_large', 'too_large'] : ['admitted'])),
      'admitted',
    ]);
    for (const user of others) {
      expect((await store.usage(user, goodLimits, NOON)).day).toMatchObject({ requests: 1, reservedTokens: 100 });
    }
    // The poisoned requests reserved nothing, yet each took its unit of rpm: 2 good, 12 poisoned.
    const usage = await store.usage(mallory, malloryLimits, NOON);
    expect(usage.day).toMatchObject({ requests: 2, reservedTokens: 200, reservedMicros: 0 });
    expect(usage.inFlight).toBe(2);
    expect(usage.rate.requests?.remaining).toBe(100 - 2 - 2 * POISONS.length);
  });

  it('answers a poisoned request rpm first: with its bucket empty it is a rate limit, and takes nothing more', async () => {
    const mallory = fresh('mallory');
    const limits: QuotaLimits = { rpm: 1 };
    const [first, second, third] = await Promise.all([
      reserve(mallory, 'a', limits, 1.15e21),
      reserve(mallory, 'b', limits, 1.15e21),
      reserve(mallory, 'c', limits, 100),
    ]);
    expect(first).toMatchObject({ admitted: false, denial: 'too_large', rate: { requests: { limit: 1, remaining: 0 } } });
    expect(second).toMatchObject({ admitted: false, denial: 'rpm' });
    expect(third).toMatchObject({ admitted: false, denial: 'rpm' });
    expect(!second.admitted && second.retryAfterMs).toBeGreaterThan(0);
  });

  it('takes limits past the bound as they are, and still refuses what the ledger cannot count', async () => {
    const lavish = fresh('lavish');
    const limits: QuotaLimits = { tokensPerDay: 1e300, microsPerDay: 1e300 };
    const neighbour = fresh('neighbour');
    const answers = await Promise.all([
      reserve(lavish, 'huge', limits, 1.15e21),
      reserve(neighbour, 'fine', {}, 100),
      reserve(lavish, 'fine', limits, 100, 100),
    ]);
    expect(answers.map((a) => (a.admitted ? 'admitted' : a.denial))).toEqual(['too_large', 'admitted', 'admitted']);
    expect((await store.usage(lavish, limits, NOON)).day).toMatchObject({ requests: 1, reservedTokens: 100, reservedMicros: 100 });
  });

  it('settles good charges beside a charge it refuses, which leaves its reservation held', async () => {
    const user = fresh('settler');
    const limits: QuotaLimits = { tokensPerDay: 10_000 };
    const ids = ['a', 'b', 'poisoned', 'c'];
    for (const a of await Promise.all(ids.map((id) => reserve(user, id, limits, 100)))) expect(a.admitted).toBe(true);
    const settle = (requestId: string, tokens: number) =>
      store.settle({
        reservation: { userId: user, requestId, tokens: 100, micros: 0, day: DAY, month: MONTH },
        limits,
        tokens,
        micros: 0,
        estimated: false,
        refundRequest: false,
        now: NOON,
        leaseMs: HOUR,
      });
    const results = await Promise.allSettled(ids.map((id) => settle(id, id === 'poisoned' ? 1.15e21 : 10)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(RangeError);
    expect((await store.usage(user, limits, NOON)).day).toMatchObject({ requests: 4, tokens: 30, reservedTokens: 100 });
  });

  // Only Redis can refuse one step of a batched script (the memory ledger has no such fault).
  if (name !== 'memory') it('fails a request whose step Redis refuses alone, as 503, and runs the requests after it', async () => {
    // One user, two days: one batch on a cluster too (a user's keys share a slot). The first
    // day's counters are not a hash, so Redis refuses that request's step (WRONGTYPE).
    const user = fresh('broken');
    const before = NOON - 24 * HOUR;
    const [dayKey] = quotaKeys(user, '2032-03-08', MONTH);
    // -c: on a cluster, redis-cli follows the redirect to the master of the key's slot.
    await redisCli(backend.ports?.[0] as number, '-c', 'SET', dayKey as string, 'not a hash');
    const others = Array.from({ length: 5 }, (_, i) => fresh(`beside${i}`));
    const settled = await Promise.allSettled([
      reserve(user, 'yesterday', {}, 100, 0, before),
      ...others.map((o) => reserve(o, 'r', {}, 100)),
      reserve(user, 'today', {}, 100),
    ]);
    const failed = settled[0] as PromiseRejectedResult;
    expect(failed.status).toBe('rejected');
    expect(failed.reason).toBeInstanceOf(GatewayError);
    expect((failed.reason as GatewayError).code).toBe('quota_backend_unavailable');
    expect(settled.slice(1).map((s) => s.status === 'fulfilled' && s.value.admitted)).toEqual(Array(others.length + 1).fill(true));
  });
});
