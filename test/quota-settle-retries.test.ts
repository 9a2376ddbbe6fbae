// Settles that Redis did not answer are kept and resent (src/store/pending-settles.ts). The first
// try may have run all the same (a frozen Redis runs what was queued once it thaws), so the store
// must remember a settled request id for as long as a resend of its settle can arrive: a resend
// that finds the id forgotten would charge the request a second time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../src/store/memory.js';
import { createRedisStore, quotaKeys } from '../src/store/redis.js';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import type { QuotaLimits, Reservation, Store } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const HOUR = 3_600_000;

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  redis.thaw();
  await redis.stop();
});

async function admitted(store: Store, userId: string, requestId: string, limits: QuotaLimits, now: number, leaseMs: number): Promise<Reservation> {
  const admission = await store.reserve({ userId, requestId, limits, tokens: 100, micros: 0, now, leaseMs });
  if (!admission.admitted) throw new Error(`not admitted: ${admission.denial}`);
  return admission.reservation;
}

/** Three requests of one user admitted at `now` under an hour's lease, and the settle of one. */
async function threeAdmitted(store: Store, userId: string, limits: QuotaLimits, now: number): Promise<Reservation[]> {
  return [await admitted(store, userId, 'a', limits, now, HOUR), await admitted(store, userId, 'b', limits, now, HOUR), await admitted(store, userId, 'c', limits, now, HOUR)];
}

const settleOf = (reservation: Reservation, limits: QuotaLimits, tokens: number, now: number) => ({ reservation, limits, tokens, micros: 0, estimated: false, refundRequest: false, now, leaseMs: HOUR });

/** The ledger as a fresh store reads it (the one under test may be closed). */
async function usage(userId: string, limits: QuotaLimits) {
  const reader = await createRedisStore({ url: redis.url, commandTimeoutMs: 1000, log: capturingLogger() });
  try {
    return await reader.usage(userId, limits, Date.now());
  } finally {
    await reader.close();
  }
}

describe('a settle whose answer was lost', () => {
  it('charges once when it is resent after a later settle of the same user ran', async () => {
    const store = await createRedisStore({ url: redis.url, commandTimeoutMs: 300, log: capturingLogger() });
    let closed = false;
    try {
      const limits = { tokensPerDay: 10_000 };
      const now = Date.now();
      // quota.leaseMs of an hour (the default): a settle is resent for up to an hour.
      const first = await admitted(store, 'resent', 'first', limits, now, HOUR);
      const second = await admitted(store, 'resent', 'second', limits, now, HOUR);

      redis.freeze();
      // Both settles time out and are kept for resending. Redis runs both once it thaws, in the
      // order sent: the first settle, then the second, made 20 minutes later (Redis was away
      // that long), whose step forgets settled ids older than what it remembers.
      await store.settle({ reservation: first, limits, tokens: 10, micros: 0, estimated: false, refundRequest: false, now, leaseMs: HOUR });
      await store.settle({ reservation: second, limits, tokens: 20, micros: 0, estimated: false, refundRequest: false, now: now + 20 * 60_000, leaseMs: HOUR });
      redis.thaw();

      // Then the store resends both, and once more before it closes: each must find its id
      // remembered.
      await until(async () => (await store.usage('resent', limits, Date.now())).day.reservedTokens === 0, 'both settles to land');
      closed = true;
      await store.close();
      expect((await usage('resent', limits)).day).toMatchObject({ requests: 2, tokens: 30, reservedTokens: 0 });
    } finally {
      if (!closed) await store.close();
    }
  });
});

describe('the memory store', () => {
  // In one process a settle is never resent (nothing between it and the ledger fails): ids are
  // kept the ten minutes a resent reserve or settle of a caller's own may take, not a lease long.
  it('remembers a settled id ten minutes, then forgets it', async () => {
    const store = createMemoryStore();
    const userId = 'remember-memory';
    try {
      const limits = { tokensPerDay: 10_000 };
      const now = Date.now();
      const [a, b, c] = (await threeAdmitted(store, userId, limits, now)) as [Reservation, Reservation, Reservation];
      const settleA = settleOf(a, limits, 10, now);
      await store.settle(settleA);
      await store.settle(settleOf(b, limits, 20, now + 9 * 60_000));
      await store.settle({ ...settleA, now: now + 9 * 60_000 });
      expect((await store.usage(userId, limits, now)).day).toMatchObject({ requests: 3, tokens: 30 });
      // Ten minutes after it was last seen (the resend at 9 minutes), the id is forgotten: a
      // settle of it then is a new charge.
      await store.settle(settleOf(c, limits, 0, now + 20 * 60_000));
      await store.settle({ ...settleA, now: now + 20 * 60_000 });
      expect((await store.usage(userId, limits, now)).day).toMatchObject({ tokens: 40 });
    } finally {
      await store.close();
    }
  });
});

describe('the redis store', () => {
  it('remembers a settled id as long as its settle may be resent, then forgets it', async () => {
    const store = await createRedisStore({ url: redis.url, commandTimeoutMs: 2000, log: capturingLogger() });
    const userId = 'remember-redis';
    try {
      const limits = { tokensPerDay: 10_000 };
      const now = Date.now();
      const [a, b, c] = (await threeAdmitted(store, userId, limits, now)) as [Reservation, Reservation, Reservation];
      const settleA = settleOf(a, limits, 10, now);
      await store.settle(settleA);
      // 50 minutes on, another settle of the user's runs; then the first is resent.
      await store.settle(settleOf(b, limits, 20, now + 50 * 60_000));
      await store.settle(settleA);
      expect((await store.usage(userId, limits, now)).day).toMatchObject({ requests: 3, tokens: 30 });
      // Past the hour of its lease and the ten minutes after it, the id is forgotten: the set
      // holds only what may still be resent.
      const settled = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id)[6] as string;
      expect(await redis.cli('ZSCORE', settled, 'a')).not.toBe('');
      await store.settle(settleOf(c, limits, 0, now + HOUR + 11 * 60_000));
      expect(await redis.cli('ZSCORE', settled, 'a')).toBe('');
      expect(await redis.cli('ZSCORE', settled, 'c')).not.toBe('');
    } finally {
      await store.close();
    }
  });
});
