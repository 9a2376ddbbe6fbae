// The store's side of charges made later, on the three backends: a later reservation holds the
// user's windows but no maxConcurrent slot; its record is taken by one caller only, however many
// ask at once; a lease that ends before the work was seen ended is charged its worst case, marked
// estimated, and a charge arriving after that changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LaterLedger, type LaterRecord } from '../src/quota/later.js';
import { PriceTable } from '../src/quota/prices.js';
import type { Store, User } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const NOON = Date.UTC(2031, 4, 14, 12, 0, 0);
const HOUR = 3_600_000;
const WORST = { input: 100, cachedInput: 0, output: 200 };

describe.each(STORE_BACKENDS)('later charges on the %s store', (_name, make) => {
  let backend: Backend;
  let store: Store;
  let clock = NOON;
  let seq = 0;
  const fresh = (limits: User['limits']): User => ({ id: `later-${++seq}-${Math.random().toString(36).slice(2, 8)}`, limits, createdAt: new Date(NOON).toISOString() });
  const ledger = (leaseMs = 2 * HOUR) => new LaterLedger({ store: backend.store, prices: new PriceTable(), log: capturingLogger(), leaseMs, now: () => clock });
  const record = (user: User, requestId: string, reservation: LaterRecord['reservation']): LaterRecord => ({
    kind: 'batch',
    userId: user.id,
    reservation,
    model: 'gpt-4o-mini',
    createdBy: requestId,
    operation: 'createBatch',
    upstreamId: 'default',
    keyId: 'env-1',
    requests: 1,
    worst: WORST,
  });

  beforeAll(async () => {
    backend = await make();
    store = backend.store;
  });
  afterAll(() => backend.stop());

  it('holds the windows, not a maxConcurrent slot', async () => {
    clock = NOON;
    const user = fresh({ maxConcurrent: 1, tokensPerDay: 1000 });
    await ledger().reserve(user, 'batch-1', 'batch', 'gpt-4o-mini', WORST);
    const limits = { maxConcurrent: 1, tokensPerDay: 1000 };
    const ordinary = await store.reserve({ userId: user.id, requestId: 'r1', limits, tokens: 10, micros: 0, now: clock, leaseMs: HOUR });
    expect(ordinary.admitted).toBe(true);
    const second = await store.reserve({ userId: user.id, requestId: 'r2', limits, tokens: 10, micros: 0, now: clock, leaseMs: HOUR });
    expect(second).toMatchObject({ admitted: false, denial: 'max_concurrent' });
    // The window counts the batch: 300 + 10 held, 700 left, so 800 more does not fit.
    const usage = await store.usage(user.id, limits, clock);
    expect(usage.day.reservedTokens).toBe(310);
    expect(usage.inFlight).toBe(1);
    if (ordinary.admitted) await store.settle({ reservation: ordinary.reservation, limits, tokens: 10, micros: 0, estimated: false, refundRequest: false, now: clock, leaseMs: HOUR });
    const big = await store.reserve({ userId: user.id, requestId: 'r3', limits, tokens: 800, micros: 0, now: clock, leaseMs: HOUR });
    expect(big).toMatchObject({ admitted: false, denial: 'tokens_per_day' });
  });

  it('counts requests in flight exactly once a later reservation has been swept at its deadline', async () => {
    clock = NOON;
    const user = fresh({ maxConcurrent: 2, tokensPerDay: 100_000 });
    await ledger(HOUR).reserve(user, 'batch-swept', 'batch', 'gpt-4o-mini', WORST);
    clock = NOON + 2 * HOUR;
    const limits = { maxConcurrent: 2, tokensPerDay: 100_000 };
    const reserve = (requestId: string) => store.reserve({ userId: user.id, requestId, limits, tokens: 10, micros: 0, now: clock, leaseMs: HOUR });
    // The first admission sweeps the batch's lease: what is left in flight is the two requests.
    expect((await reserve('s1')).admitted).toBe(true);
    expect((await reserve('s2')).admitted).toBe(true);
    expect(await reserve('s3')).toMatchObject({ admitted: false, denial: 'max_concurrent' });
    expect((await store.usage(user.id, limits, clock)).inFlight).toBe(2);
  });

  it('gives its record to one taker of many', async () => {
    clock = NOON;
    const user = fresh({});
    const later = ledger();
    const reservation = await later.reserve(user, 'batch-2', 'batch', 'gpt-4o-mini', WORST);
    await later.keep('batch_two', record(user, 'batch-2', reservation));
    expect(await later.pending('batch', 'batch_two')).toBe(true);
    const taken = await Promise.all(Array.from({ length: 8 }, () => later.take('batch', 'batch_two')));
    expect(taken.filter((t) => t !== undefined)).toHaveLength(1);
    expect(taken.find((t) => t !== undefined)?.createdBy).toBe('batch-2');
    expect(await later.pending('batch', 'batch_two')).toBe(false);
  });

  it('charges its worst case, estimated, when its lease ends unseen; a charge after that adds nothing', async () => {
    clock = NOON;
    const user = fresh({ tokensPerDay: 10_000 });
    const later = ledger(HOUR);
    const reservation = await later.reserve(user, 'batch-3', 'batch', 'gpt-4o-mini', WORST);
    // An hour and a bit on, the user's next request sweeps the lapsed lease.
    clock = NOON + HOUR + 1;
    const next = await store.reserve({ userId: user.id, requestId: 'after', limits: { tokensPerDay: 10_000 }, tokens: 1, micros: 0, now: clock, leaseMs: HOUR });
    expect(next.admitted).toBe(true);
    const swept = await store.usage(user.id, {}, clock);
    expect(swept.day).toMatchObject({ tokens: 300, estimatedRequests: 1, reservedTokens: 1 });
    // The batch seen ended just after: the ledger has already charged it.
    await later.settle('batch', reservation, 'gpt-4o-mini', { usage: { input: 10, cachedInput: 0, output: 10 }, estimated: false });
    expect((await store.usage(user.id, {}, clock)).day).toMatchObject({ tokens: 300, estimatedRequests: 1 });
  });

  it('lets the record lapse before the lease, so no charge can follow the sweep', async () => {
    clock = NOON;
    const user = fresh({});
    // A lease 2 s longer than the record's margin: the record lives 2 s of real time.
    const later = ledger(10 * 60_000 + 2000);
    const reservation = await later.reserve(user, 'batch-4', 'batch', 'gpt-4o-mini', WORST);
    await later.keep('batch_four', record(user, 'batch-4', reservation));
    expect(await later.pending('batch', 'batch_four')).toBe(true);
    await until(async () => !(await later.pending('batch', 'batch_four')), 'the record to lapse', 10_000);
    expect(await later.take('batch', 'batch_four')).toBeUndefined();
  });
});
