// Quota leases (docs/quota.md) at the store: several Redis stores with leases on one real Redis,
// each standing for one gateway process. The ledger in Redis is read directly, while requests are
// admitted and settled, and must hold charged + reserved <= limit at every read; at the end it
// must hold exactly what was settled.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCALE } from '../src/quota/bucket.js';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import { createRedisStore, quotaKeys } from '../src/store/redis.js';
import type { QuotaLimits, Reservation, Store } from '../src/store/types.js';
import { capturedLines, capturingLogger } from './helpers/log-capture.js';
import { startRedisLink } from './helpers/redis-link.js';
import { until } from './helpers/quota-fixture.js';
import { type RedisServer, redisCli, startRedis, startRedisCluster } from './helpers/redis-server.js';

const HOUR = 3_600_000;
const log = capturingLogger();
let redis: RedisServer;
let reader: Redis;
let serial = 0;

beforeAll(async () => {
  redis = await startRedis();
  reader = new Redis(redis.url);
}, 30_000);
afterAll(async () => {
  reader.disconnect();
  await redis.stop();
});

const stores = (n: number, leases = true): Promise<Store[]> =>
  Promise.all(Array.from({ length: n }, () => createRedisStore({ url: redis.url, commandTimeoutMs: 2000, log, ...(leases ? { leases: { ttlMs: 10_000 } } : {}) })));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The user's ledger as Redis holds it now. */
async function ledger(userId: string) {
  const now = Date.now();
  const [day, month, rpm, tpm, held, leases] = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id) as [string, string, string, string, string, string];
  const [d, r, t, h, z] = await Promise.all([reader.hgetall(day), reader.hgetall(rpm), reader.hgetall(tpm), reader.hgetall(held), reader.zcard(leases)]);
  const n = (v: string | undefined) => Number(v ?? 0);
  void month;
  return {
    charged: n(d.t),
    reserved: n(d.rt),
    requests: n(d.n),
    estimated: n(d.e),
    rpm: { level: r.s === undefined ? undefined : n(r.s) / SCALE, leased: n(r.r) },
    tpm: { level: t.s === undefined ? undefined : n(t.s) / SCALE, leased: n(t.r) },
    inFlight: z - n(h['#later']) + n(h['#slots']),
    leaseRecords: Object.keys(h).filter((k) => k.startsWith('lease:')).length,
  };
}

/** Every invariant of docs/quota.md, on what Redis holds now. */
async function checkLedger(userId: string, limits: QuotaLimits, problems: string[]): Promise<void> {
  const l = await ledger(userId);
  if (limits.tokensPerDay !== undefined && l.charged + l.reserved > limits.tokensPerDay) problems.push(`charged ${l.charged} + reserved ${l.reserved} > ${limits.tokensPerDay}`);
  if (limits.rpm !== undefined && l.rpm.level !== undefined && l.rpm.level + l.rpm.leased > limits.rpm) problems.push(`rpm level ${l.rpm.level} + leased ${l.rpm.leased} > ${limits.rpm}`);
  if (limits.tpm !== undefined && l.tpm.level !== undefined && l.tpm.level + l.tpm.leased > limits.tpm) problems.push(`tpm level ${l.tpm.level} + leased ${l.tpm.leased} > ${limits.tpm}`);
  if (limits.maxConcurrent !== undefined && l.inFlight > limits.maxConcurrent) problems.push(`in flight ${l.inFlight} > ${limits.maxConcurrent}`);
}

interface Run {
  admitted: number;
  refused: number;
  /** Refusals made while fewer than `stopAt` requests had been admitted. */
  refusedBefore: number;
  charged: number;
  peakInFlight: number;
  problems: string[];
  ms: number;
}

/** `loops` concurrent clients on each store send requests of `worst` tokens until `stopAt` have
 * been admitted (or `ms` pass), each held a few ms and settled at `used(worst)`. */
async function drive(all: Store[], userId: string, limits: QuotaLimits, o: { loops: number; worst: number; used: (worst: number) => number; stopAt: number; ms: number; check: boolean }): Promise<Run> {
  const run: Run = { admitted: 0, refused: 0, refusedBefore: 0, charged: 0, peakInFlight: 0, problems: [], ms: 0 };
  const started = Date.now();
  let inFlight = 0;
  let done = false;
  const client = async (store: Store) => {
    while (!done && run.admitted < o.stopAt && Date.now() - started < o.ms) {
      const requestId = `r${++serial}`;
      const a = await store.reserve({ userId, requestId, limits, tokens: o.worst, micros: 0, now: Date.now(), leaseMs: HOUR });
      if (!a.admitted) {
        run.refused++;
        if (run.admitted < o.stopAt) run.refusedBefore++;
        await sleep(3);
        continue;
      }
      run.admitted++;
      inFlight++;
      run.peakInFlight = Math.max(run.peakInFlight, inFlight);
      if (limits.maxConcurrent !== undefined && inFlight > limits.maxConcurrent) run.problems.push(`${inFlight} in flight at once`);
      await sleep(Math.random() * 4);
      const used = o.used(o.worst);
      run.charged += used;
      inFlight--;
      await store.settle({ reservation: a.reservation as Reservation, limits, tokens: used, micros: 0, estimated: false, refundRequest: false, now: Date.now(), leaseMs: HOUR });
    }
  };
  const checker = async () => {
    while (!done) {
      await checkLedger(userId, limits, run.problems);
      await sleep(2);
    }
  };
  const watching = o.check ? checker() : Promise.resolve();
  await Promise.all(all.flatMap((store) => Array.from({ length: o.loops }, () => client(store))));
  done = true;
  await watching;
  run.ms = Date.now() - started;
  return run;
}

describe('quota leases on one Redis', () => {
  it('never let charged + reserved pass a limit, nor a bucket or the slots, across 4 processes with 12 clients each', async () => {
    const userId = `guarantee-${Date.now()}`;
    const limits: QuotaLimits = { tokensPerDay: 3000, rpm: 400, tpm: 100_000, maxConcurrent: 40 };
    const all = await stores(4);
    let run: Run;
    try {
      run = await drive(all, userId, limits, { loops: 12, worst: 10, used: () => Math.floor(Math.random() * 11), stopAt: Infinity, ms: 4000, check: true });
    } finally {
      await Promise.all(all.map((s) => s.close()));
    }
    expect(run.problems).toEqual([]);
    // The rpm bucket: at most its limit plus what refilled while the run lasted.
    expect(run.admitted).toBeLessThanOrEqual(limits.rpm! + Math.ceil((run.ms * limits.rpm!) / 60_000));
    expect(run.admitted).toBeGreaterThan(100);
    // Every lease given back: the ledger holds exactly what was settled, nothing reserved.
    const end = await ledger(userId);
    expect(end).toMatchObject({ charged: run.charged, reserved: 0, requests: run.admitted, inFlight: 0, leaseRecords: 0 });
    expect(end.rpm.leased).toBe(0);
    expect(end.tpm.leased).toBe(0);
    console.info(`quota leases, 4 processes x 12 clients: ${run.admitted} admitted, ${run.refused} refused in ${run.ms} ms; peak ${run.peakInFlight} in flight of ${limits.maxConcurrent}; charged ${run.charged} of ${limits.tokensPerDay} tokens`);
  }, 60_000);

  it('charge a usage above the worst case in full, past the lease, as a settle does without leases', async () => {
    const userId = `overage-${Date.now()}`;
    const limits: QuotaLimits = { tokensPerDay: 100_000 };
    const [store] = (await stores(1)) as [Store];
    try {
      // The first goes to Redis and asks for a lease; the next ones are admitted from it.
      const first = await store.reserve({ userId, requestId: `o${++serial}`, limits, tokens: 10, micros: 0, now: Date.now(), leaseMs: HOUR });
      expect(first.admitted).toBe(true);
      await sleep(300);
      const leased = (await ledger(userId)).reserved;
      expect(leased).toBeGreaterThan(10);
      const second = await store.reserve({ userId, requestId: `o${++serial}`, limits, tokens: 10, micros: 0, now: Date.now(), leaseMs: HOUR });
      if (!second.admitted || !first.admitted) throw new Error('not admitted');
      expect((await ledger(userId)).reserved).toBe(leased);
      for (const a of [first, second]) {
        await store.settle({ reservation: a.reservation, limits, tokens: 25, micros: 0, estimated: false, refundRequest: false, now: Date.now(), leaseMs: HOUR });
      }
    } finally {
      await store.close();
    }
    expect(await ledger(userId)).toMatchObject({ charged: 50, reserved: 0, requests: 2, leaseRecords: 0 });
  }, 30_000);

  it('cost some refusals near a limit of 100 requests across 4 processes, and still admit all 100', async () => {
    const report: string[] = [];
    for (const leases of [false, true]) {
      const userId = `cost-${leases}-${Date.now()}`;
      const limits: QuotaLimits = { tokensPerDay: 100 * 10 };
      const all = await stores(4, leases);
      let run: Run;
      try {
        run = await drive(all, userId, limits, { loops: 4, worst: 10, used: (w) => w, stopAt: 100, ms: 20_000, check: true });
      } finally {
        await Promise.all(all.map((s) => s.close()));
      }
      expect(run.problems).toEqual([]);
      expect(run.admitted).toBe(100);
      expect(await ledger(userId)).toMatchObject({ charged: 1000, reserved: 0, requests: 100 });
      // Without leases a refusal counted "before" is one whose answer overtook that of the 100th
      // admission on its way back (16 clients at once): at most one per client.
      if (!leases) expect(run.refusedBefore).toBeLessThanOrEqual(16);
      // Loose: the free parts of other processes' leases refuse some, for moments.
      else expect(run.refusedBefore).toBeLessThan(2000);
      report.push(`leases ${leases ? 'on' : 'off'}: ${run.refusedBefore} refused before the 100th admission, in ${run.ms} ms`);
    }
    console.info(`quota leases, refusal cost (4 processes x 4 clients, a limit of 100 requests): ${report.join('; ')}`);
  }, 90_000);
});

describe('quota leases on a Redis Cluster', () => {
  it('admit from a lease and settle into it, with every key of a step in the user\'s slot', async () => {
    const cluster = await startRedisCluster();
    const all = await Promise.all(
      [0, 1].map(() => createRedisStore({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000, log, leases: { ttlMs: 10_000 } })),
    );
    const userId = `cluster-${Date.now()}`;
    const limits: QuotaLimits = { tokensPerDay: 1000, rpm: 200, maxConcurrent: 40 };
    const now = Date.now();
    const keys = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id) as [string, string, string, string, string];
    // -c follows the cluster to the master of the key's slot.
    const hash = async (key: string) => (await redisCli(cluster.ports[0] as number, '-c', 'hgetall', key)).split('\n');
    let run: Run;
    try {
      // A first request asks for a lease: it is taken (the lease step's keys share the user's slot).
      const first = await all[0]!.reserve({ userId, requestId: `c${++serial}`, limits, tokens: 10, micros: 0, now, leaseMs: HOUR });
      await until(async () => (await hash(keys[4])).some((k) => k.startsWith('lease:')), 'a lease on the cluster', 5000);
      if (!first.admitted) throw new Error('not admitted');
      await all[0]!.settle({ reservation: first.reservation, limits, tokens: 10, micros: 0, estimated: false, refundRequest: false, now: Date.now(), leaseMs: HOUR });
      run = await drive(all, userId, limits, { loops: 4, worst: 10, used: (w) => w, stopAt: 99, ms: 20_000, check: false });
      await Promise.all(all.map((s) => s.close()));
      const answer = await hash(keys[0]);
      const field = (name: string) => Number(answer[answer.indexOf(name) + 1] ?? 0);
      expect(run.admitted).toBe(99);
      expect({ charged: field('t'), reserved: field('rt'), requests: field('n') }).toEqual({ charged: 1000, reserved: 0, requests: 100 });
    } finally {
      await Promise.all(all.map((s) => s.close()));
      await cluster.stop();
    }
  }, 90_000);
});

describe('quota leases without a window limit', () => {
  it('charge the tokens and dollars of requests admitted from a lease taken for rpm alone', async () => {
    const userId = `uncapped-${Date.now()}`;
    // No token nor dollar limit: the lease reserves none of them, yet what is used is charged.
    const limits: QuotaLimits = { rpm: 1000 };
    const [store] = (await stores(1)) as [Store];
    try {
      for (let i = 0; i < 20; i++) {
        const a = await store.reserve({ userId, requestId: `u${++serial}`, limits, tokens: 10, micros: 500, now: Date.now(), leaseMs: HOUR });
        if (!a.admitted) throw new Error('not admitted');
        await store.settle({ reservation: a.reservation, limits, tokens: 7, micros: 300, estimated: false, refundRequest: false, now: Date.now(), leaseMs: HOUR });
        if (i === 0) await until(async () => (await ledger(userId)).leaseRecords === 1, 'a lease', 5000);
      }
      // Admitted from the lease, not one by one in Redis (else this tested the path without leases).
      expect((await ledger(userId)).rpm.leased).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
    const now = Date.now();
    const month = await reader.hgetall(quotaKeys(userId, dayWindow(now).id, monthWindow(now).id)[1] as string);
    expect(await ledger(userId)).toMatchObject({ charged: 140, reserved: 0, requests: 20, leaseRecords: 0 });
    expect({ t: Number(month.t), m: Number(month.m), rm: Number(month.rm ?? 0) }).toEqual({ t: 140, m: 6000, rm: 0 });
  }, 30_000);
});

describe('a lease dropped while its request runs', () => {
  it('still charges that request its tokens and dollars when no window limits them', async () => {
    const userId = `dropped-${Date.now()}`;
    const limits: QuotaLimits = { rpm: 1000 };
    // This process's own path to Redis, so that only it sees Redis freeze.
    const link = await startRedisLink(redis.port);
    const store = await createRedisStore({ url: link.url, commandTimeoutMs: 300, log, leases: { ttlMs: 10_000 } });
    const settle = (reservation: Reservation) =>
      store.settle({ reservation, limits, tokens: 7, micros: 300, estimated: false, refundRequest: false, now: Date.now(), leaseMs: HOUR });
    try {
      const first = await store.reserve({ userId, requestId: `d${++serial}`, limits, tokens: 10, micros: 500, now: Date.now(), leaseMs: HOUR });
      if (!first.admitted) throw new Error('not admitted');
      await settle(first.reservation);
      await until(async () => (await ledger(userId)).leaseRecords === 1 && (await ledger(userId)).charged === 7, 'a lease', 5000);
      const second = await store.reserve({ userId, requestId: `d${++serial}`, limits, tokens: 10, micros: 500, now: Date.now(), leaseMs: HOUR });
      if (!second.admitted) throw new Error('not admitted');
      // From the lease: Redis did not count it.
      expect((await ledger(userId)).requests).toBe(1);
      // Its next exchange times out: the process drops the lease while the request runs.
      const logFrom = capturedLines().length;
      link.pause();
      await until(() => capturedLines().slice(logFrom).some((l) => l.includes('quota lease exchange failed')), 'the exchange to fail', 5000);
      link.resume();
      await settle(second.reservation);
    } finally {
      await store.close();
      await link.cut();
    }
    const now = Date.now();
    const day = await reader.hgetall(quotaKeys(userId, dayWindow(now).id, monthWindow(now).id)[0] as string);
    expect({ t: Number(day.t), m: Number(day.m) }).toEqual({ t: 14, m: 600 });
  }, 30_000);
});
