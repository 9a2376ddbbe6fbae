// One suite, three backends: the in-memory store, Redis, and a three-master Redis Cluster must
// give the same answers, so that a single-process setup behaves as a fleet does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthRecord } from '../src/pool/health-sync.js';
import { quotaKeys } from '../src/store/redis.js';
import { RESPONSE_LIFETIME_MS } from '../src/pool/object-owners.js';
import { HEALTH_KEY } from '../src/store/redis-pool.js';
import { holdingsKey, objectKey } from '../src/store/redis-owners.js';
import type { KeyRecord, QuotaLimits, ReserveInput, Store, User } from '../src/store/types.js';
import { type Backend, STORE_BACKENDS as BACKENDS } from './helpers/store-backends.js';

// A fixed clock, well in the future so that absolute expiries written from it lie ahead.
const NOON = Date.UTC(2031, 4, 14, 12, 0, 0);
const END_OF_DAY = Date.UTC(2031, 4, 15);
const END_OF_MONTH = Date.UTC(2031, 5, 1);
const HOUR = 3_600_000;

function user(id: string, extra: Partial<User> = {}): User {
  return { id, limits: {}, createdAt: new Date(NOON).toISOString(), ...extra };
}

function key(id: string, userId: string, digest: string): KeyRecord {
  return { id, userId, prefix: 'sk-kr-abcd', digest, createdAt: new Date(NOON).toISOString() };
}

describe.each(BACKENDS)('the %s store', (name, make) => {
  let backend: Backend;
  let store: Store;
  let seq = 0;
  /** A fresh user id per test, so that tests never share counters. */
  const fresh = (): string => `u${++seq}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    backend = await make();
    store = backend.store;
  });
  afterAll(() => backend.stop());

  function reserve(userId: string, requestId: string, limits: QuotaLimits, tokens: number, micros = 0, now = NOON, leaseMs = HOUR) {
    const input: ReserveInput = { userId, requestId, limits, tokens, micros, now, leaseMs };
    return store.reserve(input);
  }
  async function settle(userId: string, requestId: string, limits: QuotaLimits, tokens: number, micros = 0, options: { now?: number; refund?: boolean; estimated?: boolean; held?: number } = {}) {
    const now = options.now ?? NOON;
    const reservation = { userId, requestId, tokens: options.held ?? 0, micros: 0, day: '2031-05-14', month: '2031-05' };
    await store.settle({ reservation, limits, tokens, micros, estimated: options.estimated ?? false, refundRequest: options.refund ?? false, now, leaseMs: HOUR });
  }

  describe('users and keys', () => {
    it('creates a user once, reads it back, and lists users oldest first', async () => {
      const a = fresh();
      const b = fresh();
      const first = user(a, { name: 'A', models: ['gpt-4o*'], expiresAt: '2040-01-01T00:00:00.000Z', limits: { rpm: 5, usdPerDay: 1.25 } });
      expect(await store.createUser(first)).toBe(true);
      expect(await store.createUser({ ...first, name: 'again' })).toBe(false);
      expect(await store.createUser(user(b, { createdAt: new Date(NOON + 1000).toISOString() }))).toBe(true);
      expect(await store.getUser(a)).toEqual(first);
      expect(await store.getUser(fresh())).toBeUndefined();
      const ids = (await store.listUsers()).map((u) => u.id);
      expect(ids.indexOf(a)).toBeGreaterThanOrEqual(0);
      expect(ids.indexOf(a)).toBeLessThan(ids.indexOf(b));
    });

    it('patches a user: given fields replace, limits as a whole; unknown users stay unknown', async () => {
      const id = fresh();
      await store.createUser(user(id, { name: 'before', limits: { rpm: 5, tpm: 100 } }));
      expect(await store.updateUser(id, { name: 'after', limits: { tokensPerDay: 10 } })).toEqual(user(id, { name: 'after', limits: { tokensPerDay: 10 } }));
      expect(await store.updateUser(id, { models: ['a'] })).toEqual(user(id, { name: 'after', models: ['a'], limits: { tokensPerDay: 10 } }));
      expect(await store.getUser(id)).toEqual(user(id, { name: 'after', models: ['a'], limits: { tokensPerDay: 10 } }));
      expect(await store.updateUser(fresh(), { name: 'x' })).toBeUndefined();
    });

    it('keeps keys by digest, lists them, and revokes them once', async () => {
      const id = fresh();
      await store.createUser(user(id));
      const k1 = key(`key_${fresh()}`, id, `digest-${fresh()}`);
      const k2 = { ...key(`key_${fresh()}`, id, `digest-${fresh()}`), createdAt: new Date(NOON + 5).toISOString(), expiresAt: '2040-01-01T00:00:00.000Z' };
      await store.createKey(k1);
      await store.createKey(k2);
      expect(await store.findKeyByDigest(k1.digest)).toEqual(k1);
      expect(await store.findKeyByDigest('no-such-digest')).toBeUndefined();
      expect(await store.getKey(k2.id)).toEqual(k2);
      expect(await store.listKeys(id)).toEqual([k1, k2]);
      const revoked = await store.revokeKey(k1.id, '2031-05-14T13:00:00.000Z');
      expect(revoked).toEqual({ ...k1, revokedAt: '2031-05-14T13:00:00.000Z' });
      expect(await store.revokeKey(k1.id, '2031-05-14T14:00:00.000Z')).toEqual(revoked);
      expect(await store.findKeyByDigest(k1.digest)).toEqual(revoked);
      expect(await store.revokeKey('key_none', '2031-05-14T14:00:00.000Z')).toBeUndefined();
    });

    it('deletes a user with every key of theirs', async () => {
      const id = fresh();
      await store.createUser(user(id));
      const k = key(`key_${fresh()}`, id, `digest-${fresh()}`);
      await store.createKey(k);
      expect(await store.deleteUser(id)).toBe(true);
      expect(await store.getUser(id)).toBeUndefined();
      expect(await store.findKeyByDigest(k.digest)).toBeUndefined();
      expect(await store.getKey(k.id)).toBeUndefined();
      expect(await store.listKeys(id)).toEqual([]);
      expect(await store.deleteUser(id)).toBe(false);
    });

    it("never gives a deleted user's id out again: their objects and counters outlive them", async () => {
      const id = fresh();
      const other = fresh();
      expect(await store.wasDeleted(id)).toBe(false);
      await store.createUser(user(id));
      expect(await store.wasDeleted(id)).toBe(false);
      expect(await store.deleteUser(id)).toBe(true);
      expect(await store.wasDeleted(id)).toBe(true);
      expect(await store.createUser(user(id, { name: 'impostor' }))).toBe(false);
      expect(await store.getUser(id)).toBeUndefined();
      expect((await store.listUsers()).map((u) => u.id)).not.toContain(id);
      // An id that never existed is not retired by a deletion that found nothing.
      expect(await store.deleteUser(other)).toBe(false);
      expect(await store.wasDeleted(other)).toBe(false);
      expect(await store.createUser(user(other))).toBe(true);
    });

    it('answers ping', async () => {
      expect(await store.ping()).toBe(true);
    });
  });

  describe('the quota ledger', () => {
    it('admits what fits in the daily token quota and refuses the rest until the UTC day ends', async () => {
      const id = fresh();
      const limits = { tokensPerDay: 100 };
      expect(await reserve(id, 'r1', limits, 60)).toEqual({
        admitted: true,
        reservation: { userId: id, requestId: 'r1', tokens: 60, micros: 0, day: '2031-05-14', month: '2031-05' },
        rate: {},
      });
      expect(await reserve(id, 'r2', limits, 41)).toEqual({ admitted: false, denial: 'tokens_per_day', retryAfterMs: END_OF_DAY - NOON, rate: {} });
      expect((await reserve(id, 'r3', limits, 40)).admitted).toBe(true);
      // Nothing left: even a request that reserves nothing is refused.
      expect(await reserve(id, 'r4', limits, 0)).toMatchObject({ admitted: false, denial: 'tokens_per_day' });
    });

    it.each([
      ['tokens_per_month', { tokensPerMonth: 100 }, 101, 0, END_OF_MONTH],
      ['usd_per_day', { microsPerDay: 5000 }, 1, 5001, END_OF_DAY],
      ['usd_per_month', { microsPerMonth: 5000 }, 1, 5001, END_OF_MONTH],
    ] as const)('refuses a worst case above what is left of %s', async (denial, limits, tokens, micros, end) => {
      const id = fresh();
      expect(await reserve(id, 'r1', limits, tokens, micros)).toEqual({ admitted: false, denial, retryAfterMs: end - NOON, rate: {} });
      expect((await reserve(id, 'r2', limits, tokens - 1, Math.max(0, micros - 1))).admitted).toBe(true);
    });

    it('settles to the real usage: the reservation goes, the usage stays', async () => {
      const id = fresh();
      const limits = { tokensPerDay: 1000, microsPerDay: 10_000 };
      await reserve(id, 'r1', limits, 400, 4000);
      const held = await store.usage(id, limits, NOON);
      expect(held.day).toEqual({
        window: '2031-05-14',
        resetsAt: '2031-05-15T00:00:00.000Z',
        requests: 1,
        tokens: 0,
        micros: 0,
        reservedTokens: 400,
        reservedMicros: 4000,
        estimatedRequests: 0,
      });
      expect(held.inFlight).toBe(1);
      await settle(id, 'r1', limits, 123, 987);
      const done = await store.usage(id, limits, NOON);
      expect(done.day).toEqual({ ...held.day, tokens: 123, micros: 987, reservedTokens: 0, reservedMicros: 0 });
      expect(done.month).toEqual({ ...done.day, window: '2031-05', resetsAt: '2031-06-01T00:00:00.000Z' });
      expect(done.inFlight).toBe(0);
      // What was released is there for the next request.
      expect((await reserve(id, 'r2', limits, 877, 9013)).admitted).toBe(true);
    });

    it('holds a reserve sent twice once, charges a settle sent twice once, and refuses a reserve after its settle', async () => {
      const id = fresh();
      const limits = { tokensPerDay: 100, maxConcurrent: 5 };
      expect((await reserve(id, 'same', limits, 60)).admitted).toBe(true);
      expect((await reserve(id, 'same', limits, 60)).admitted).toBe(true);
      expect((await store.usage(id, limits, NOON)).day).toMatchObject({ requests: 1, reservedTokens: 60 });
      await settle(id, 'same', limits, 50, 0, { estimated: true });
      await settle(id, 'same', limits, 50, 0, { estimated: true });
      expect((await store.usage(id, limits, NOON)).day).toMatchObject({ requests: 1, tokens: 50, reservedTokens: 0, estimatedRequests: 1 });
      expect(await reserve(id, 'same', limits, 10)).toMatchObject({ admitted: false, denial: 'settled' });
    });

    it('counts requests in flight against maxConcurrent', async () => {
      const id = fresh();
      const limits = { maxConcurrent: 2 };
      await reserve(id, 'a', limits, 0);
      await reserve(id, 'b', limits, 0);
      expect(await reserve(id, 'c', limits, 0)).toEqual({ admitted: false, denial: 'max_concurrent', retryAfterMs: 1000, rate: {} });
      await settle(id, 'a', limits, 0);
      expect((await reserve(id, 'c', limits, 0)).admitted).toBe(true);
      expect((await store.usage(id, limits, NOON)).inFlight).toBe(2);
    });

    it('refills the rpm bucket continuously, and a request given back does not count', async () => {
      const id = fresh();
      const limits = { rpm: 2 };
      expect(await reserve(id, 'a', limits, 0)).toMatchObject({ admitted: true, rate: { requests: { limit: 2, remaining: 1, resetMs: 30_000 } } });
      expect(await reserve(id, 'b', limits, 0)).toMatchObject({ admitted: true, rate: { requests: { limit: 2, remaining: 0, resetMs: 60_000 } } });
      expect(await reserve(id, 'c', limits, 0)).toEqual({
        admitted: false,
        denial: 'rpm',
        retryAfterMs: 30_000,
        rate: { requests: { limit: 2, remaining: 0, resetMs: 60_000 } },
      });
      expect(await reserve(id, 'c', limits, 0, 0, NOON + 29_999)).toMatchObject({ admitted: false, denial: 'rpm', retryAfterMs: 1 });
      expect((await reserve(id, 'c', limits, 0, 0, NOON + 30_000)).admitted).toBe(true);
      // An upstream failure before any answer gives the request back.
      await settle(id, 'c', limits, 0, 0, { now: NOON + 30_000, refund: true });
      const after = await store.usage(id, limits, NOON + 30_000);
      expect(after.rate).toEqual({ requests: { limit: 2, remaining: 1, resetMs: 30_000 } });
      expect(after.day).toMatchObject({ requests: 2, reservedTokens: 0 });
    });

    it('takes the worst case from the tpm bucket and gives back what was not used', async () => {
      const id = fresh();
      const limits = { tpm: 1000 };
      expect(await reserve(id, 'a', limits, 600)).toMatchObject({ admitted: true, rate: { tokens: { limit: 1000, remaining: 400, resetMs: 36_000 } } });
      expect(await reserve(id, 'b', limits, 600)).toMatchObject({ admitted: false, denial: 'tpm', retryAfterMs: 12_000 });
      expect(await reserve(id, 'big', limits, 1001)).toMatchObject({ admitted: false, denial: 'tpm_exceeded', retryAfterMs: 60_000 });
      await settle(id, 'a', limits, 100, 0, { held: 600 });
      expect((await store.usage(id, limits, NOON)).rate.tokens).toEqual({ limit: 1000, remaining: 900, resetMs: 6000 });
      expect((await reserve(id, 'b', limits, 600)).admitted).toBe(true);
    });

    it('charges a reservation whose process never settled it when its lease runs out, as estimated', async () => {
      const id = fresh();
      const limits = { tokensPerDay: 1000, maxConcurrent: 1 };
      await reserve(id, 'lost', limits, 300, 0, NOON, 1000);
      expect(await reserve(id, 'next', limits, 100, 0, NOON + 999)).toMatchObject({ admitted: false, denial: 'max_concurrent' });
      expect((await reserve(id, 'next', limits, 100, 0, NOON + 1000)).admitted).toBe(true);
      const day = (await store.usage(id, limits, NOON + 1000)).day;
      expect(day).toMatchObject({ requests: 2, tokens: 300, reservedTokens: 100, estimatedRequests: 1 });
      // Its settle, arriving after all, changes nothing.
      await settle(id, 'lost', limits, 5, 0, { now: NOON + 2000 });
      expect((await store.usage(id, limits, NOON + 2000)).day).toEqual(day);
    });

    it('settles a request admitted before midnight into the day it was admitted in', async () => {
      const id = fresh();
      const limits = { tokensPerDay: 1000 };
      const late = END_OF_DAY - 1000;
      await reserve(id, 'late', limits, 500, 0, late);
      await settle(id, 'late', limits, 200, 0, { now: END_OF_DAY + 1000 });
      expect((await store.usage(id, limits, late)).day).toMatchObject({ window: '2031-05-14', tokens: 200, reservedTokens: 0 });
      expect((await store.usage(id, limits, END_OF_DAY + 1000)).day).toMatchObject({ window: '2031-05-15', tokens: 0, requests: 0 });
      expect((await reserve(id, 'morning', limits, 1000, 0, END_OF_DAY + 1000)).admitted).toBe(true);
    });

    it('reports no rate windows for limits that are not set', async () => {
      const id = fresh();
      expect(await store.usage(id, {}, NOON)).toEqual({
        day: { window: '2031-05-14', resetsAt: '2031-05-15T00:00:00.000Z', requests: 0, tokens: 0, micros: 0, reservedTokens: 0, reservedMicros: 0, estimatedRequests: 0 },
        month: { window: '2031-05', resetsAt: '2031-06-01T00:00:00.000Z', requests: 0, tokens: 0, micros: 0, reservedTokens: 0, reservedMicros: 0, estimatedRequests: 0 },
        rate: {},
        inFlight: 0,
      });
    });

    it('keeps money in whole micro-dollars without drift', async () => {
      const id = fresh();
      const limits = { microsPerDay: 1_000_000 };
      for (let i = 0; i < 100; i++) {
        await reserve(id, `m${i}`, limits, 0, 10_000);
        await settle(id, `m${i}`, limits, 0, 3_333);
      }
      expect((await store.usage(id, limits, NOON)).day).toMatchObject({ micros: 333_300, reservedMicros: 0, requests: 100 });
    });
  });

  describe('pool key health', () => {
    const cooling = (updatedAt: number, extra: Partial<HealthRecord> = {}): HealthRecord => ({
      state: 'cooling',
      reason: 'rate_limited',
      until: updatedAt + 60_000,
      since: updatedAt,
      strikes: 0,
      updatedAt,
      ...extra,
    });

    it('keeps the newer record of each key, and loads them all', async () => {
      const ref = `main/${fresh()}`;
      const other = `main/${fresh()}`;
      await store.keyHealth.publish(ref, cooling(NOON + 2));
      // Older than what is stored: a late write from a process that saw less.
      await store.keyHealth.publish(ref, cooling(NOON + 1, { state: 'disabled', reason: 'invalid_api_key' }));
      await store.keyHealth.publish(other, cooling(NOON + 1, { state: 'disabled', reason: 'manual', until: undefined }));
      let loaded = await store.keyHealth.load();
      expect(loaded.get(ref)).toEqual(cooling(NOON + 2));
      expect(loaded.get(other)).toEqual({ state: 'disabled', reason: 'manual', since: NOON + 1, strikes: 0, updatedAt: NOON + 1 });
      await store.keyHealth.publish(ref, { state: 'active', since: NOON + 3, strikes: 0, updatedAt: NOON + 3 });
      loaded = await store.keyHealth.load();
      expect(loaded.get(ref)).toEqual({ state: 'active', since: NOON + 3, strikes: 0, updatedAt: NOON + 3 });
    });

    it('tells a subscriber of the records published', async () => {
      const ref = `main/${fresh()}`;
      let stop: (() => void) | undefined;
      const heard = new Promise<HealthRecord>((resolve) => {
        stop = store.keyHealth.subscribe?.((keyRef, record) => {
          if (keyRef === ref) resolve(record);
        });
      });
      await store.keyHealth.publish(ref, cooling(NOON + 5));
      expect(await heard).toEqual(cooling(NOON + 5));
      stop?.();
    });
  });

  describe('object owners', () => {
    it('records who owns an object, finds one or many, and forgets a deleted one', async () => {
      const alice = { userId: fresh(), upstreamId: 'main', keyId: 'a' };
      const bob = { userId: fresh(), upstreamId: 'main', keyId: 'b' };
      const [file, batch, unknown] = [`file-${fresh()}`, `batch_${fresh()}`, `file-${fresh()}`];
      await store.objectOwners.record(file, alice);
      await store.objectOwners.record(batch, bob);
      expect(await store.objectOwners.lookup(file)).toEqual(alice);
      expect(await store.objectOwners.lookup(unknown)).toBeUndefined();
      expect(await store.objectOwners.lookupMany([file, unknown, batch])).toEqual(new Map([[file, alice], [batch, bob]]));
      await store.objectOwners.forget(file);
      expect(await store.objectOwners.lookup(file)).toBeUndefined();
      expect(await store.objectOwners.lookup(batch)).toEqual(bob);
    });
  });

  if (name !== 'memory') {
    it('gives every quota key a time to live, and every script its keys in one slot', async () => {
      const id = fresh();
      // Buckets that take close to a minute to refill: a key lives until its bucket is full again,
      // and a bucket that refills in a second or two is gone before a slow machine lists it.
      const limits = { rpm: 2, tpm: 20, tokensPerDay: 1000, microsPerMonth: 1000, maxConcurrent: 3 };
      // Real time here: the keys' lifetimes are measured against Redis's own clock.
      const now = Date.now();
      await store.reserve({ userId: id, requestId: 'a', limits, tokens: 10, micros: 0, now, leaseMs: HOUR });
      const b = await store.reserve({ userId: id, requestId: 'b', limits, tokens: 10, micros: 0, now, leaseMs: HOUR });
      if (!b.admitted) throw new Error('b not admitted');
      await store.settle({ reservation: b.reservation, limits, tokens: 5, micros: 0, estimated: false, refundRequest: false, now, leaseMs: HOUR });
      const keys = await backend.keys!(`kr:{u:${id}}:*`);
      expect(keys.map((k) => k.key.split(':q:')[1]).sort()).toEqual(
        ['held', 'leases', 'rpm', 'settled', 'tpm', `d:${b.reservation.day}`, `m:${b.reservation.month}`].sort(),
      );
      for (const k of keys) expect(k.pttl, k.key).toBeGreaterThan(0);
      if (backend.slot) {
        const slots = new Set(await Promise.all(quotaKeys(id, b.reservation.day, b.reservation.month).map((k) => backend.slot!(k))));
        expect(slots.size).toBe(1);
      }
    });

    it('keeps a file owner until it is deleted, a response owner 30 days, and the health records in one hash without expiry', async () => {
      const userId = fresh();
      const [file, response] = [`file-${fresh()}`, `resp_${fresh()}`];
      await store.objectOwners.record(file, { userId, upstreamId: 'main', keyId: 'a' });
      expect(await backend.keys!(objectKey(file))).toEqual([{ key: objectKey(file), pttl: -1 }]);
      expect(await backend.keys!(holdingsKey(userId))).toEqual([{ key: holdingsKey(userId), pttl: -1 }]);
      await store.objectOwners.record(response, { userId, upstreamId: 'main', keyId: 'a' });
      const [owner] = await backend.keys!(objectKey(response));
      expect(owner?.pttl).toBeGreaterThan(RESPONSE_LIFETIME_MS - 60_000);
      expect(owner?.pttl).toBeLessThanOrEqual(RESPONSE_LIFETIME_MS);
      // A lookup does not extend it.
      await store.objectOwners.lookup(response);
      expect((await backend.keys!(objectKey(response)))[0]?.pttl).toBeLessThanOrEqual(owner?.pttl as number);
      // The file gone, the user's count lives as long as the response.
      await store.objectOwners.forget(file);
      expect(await backend.keys!(objectKey(file))).toEqual([]);
      const [holdings] = await backend.keys!(holdingsKey(userId));
      expect(holdings?.pttl).toBeGreaterThan(RESPONSE_LIFETIME_MS - 60_000);
      if (backend.slot) expect(await backend.slot(holdingsKey(userId))).toBe(await backend.slot(quotaKeys(userId, 'd', 'm')[0] as string));
      await store.keyHealth.publish(`main/${fresh()}`, { state: 'active', since: NOON, strikes: 0, updatedAt: NOON });
      expect(await backend.keys!(HEALTH_KEY)).toEqual([{ key: HEALTH_KEY, pttl: -1 }]);
    });
  }
});
