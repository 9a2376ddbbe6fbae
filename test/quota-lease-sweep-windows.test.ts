// A quota lease's exchange sweeps the user's reservations past their deadline, as an admission
// does. A lease keeps the day and month it was taken in, and goes on exchanging after a rollover
// until its requests end: its sweep must not release a reservation of a later day (or month)
// against the lease's own windows, which left the later window's reserved tokens held for good.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import { createRedisStore, quotaKeys } from '../src/store/redis.js';
import type { Reservation, Store } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const log = capturingLogger();
let redis: RedisServer;
let reader: Redis;

beforeAll(async () => {
  redis = await startRedis();
  reader = new Redis(redis.url);
}, 30_000);
afterAll(async () => {
  reader.disconnect();
  await redis.stop();
});

async function admit(store: Store, userId: string, requestId: string, tokens: number, now: number, leaseMs: number): Promise<Reservation> {
  const a = await store.reserve({ userId, requestId, limits: { tokensPerDay: 100_000 }, tokens, micros: 0, now, leaseMs });
  if (!a.admitted) throw new Error(`${requestId} not admitted: ${a.denial}`);
  return a.reservation;
}

describe('a lease that outlives a day rollover', () => {
  it('leaves the reservations of the new day to be swept against the new day', async () => {
    const userId = 'lease-across-days';
    const limits = { tokensPerDay: 100_000 };
    // Ten seconds before midnight, on a clock the test moves.
    let offset = dayWindow(Date.now()).end - 10_000 - Date.now();
    const now = () => Date.now() + offset;
    const leased = await createRedisStore({ url: redis.url, commandTimeoutMs: 2000, log, leases: { ttlMs: 20_000, now } });
    const other = await createRedisStore({ url: redis.url, commandTimeoutMs: 2000, log });
    const keys = (at: number) => quotaKeys(userId, dayWindow(at).id, monthWindow(at).id);
    try {
      // The first admission is in Redis and asks for a lease; the next comes out of the lease.
      const first = await admit(leased, userId, 'first', 10, now(), 60_000);
      await leased.settle({ reservation: first, limits, tokens: 10, micros: 0, estimated: false, refundRequest: false, now: now(), leaseMs: 60_000 });
      const heldKey = keys(now())[4] as string;
      let running: Reservation | undefined;
      await until(async () => {
        const r = await admit(leased, userId, `old-day-${Math.random()}`, 10, now(), 60_000);
        if ((await reader.hexists(heldKey, r.requestId)) === 0) {
          running = r;
          return true;
        }
        await leased.settle({ reservation: r, limits, tokens: 10, micros: 0, estimated: false, refundRequest: false, now: now(), leaseMs: 60_000 });
        return false;
      }, 'an admission out of the lease');

      // Midnight passes. Another process admits a request in the new day and dies holding it: its
      // reservation, with a lease of one second, is past its deadline two seconds later.
      offset += 10_001;
      const newDay = keys(now());
      await admit(other, userId, 'new-day', 300, now(), 1000);
      expect(Number(await reader.hget(newDay[0] as string, 'rt'))).toBe(300);
      offset += 2000;

      // The old lease still runs a request, and exchanges with Redis; then the request ends and
      // the lease closes.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await leased.settle({ reservation: running as Reservation, limits, tokens: 10, micros: 0, estimated: false, refundRequest: false, now: now(), leaseMs: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      // An admission in the new day sweeps what lapsed, against the new day.
      const last = await admit(other, userId, 'last', 1, now(), 60_000);
      await other.settle({ reservation: last, limits, tokens: 1, micros: 0, estimated: false, refundRequest: false, now: now(), leaseMs: 60_000 });

      // The dead request is charged in full in its own day, and nothing stays reserved there.
      const day = await reader.hgetall(newDay[0] as string);
      expect({ reserved: Number(day.rt), charged: Number(day.t) }).toEqual({ reserved: 0, charged: 301 });
    } finally {
      await leased.close();
      await other.close();
    }
  });
});
