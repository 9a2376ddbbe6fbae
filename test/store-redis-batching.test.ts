// Admissions and settles issued in one round of the event loop reach Redis as one script call
// (src/store/script-batch.ts): each request still gets its own answer, in order, as if it had run
// alone after those before it; on a cluster, one call per user. Counted from Redis's own command
// statistics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisStore } from '../src/store/redis.js';
import type { QuotaLimits, Store } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';
import { type RedisCluster, type RedisServer, redisCli, startRedis, startRedisCluster } from './helpers/redis-server.js';

const log = capturingLogger();
// Now, not a fixed date: counters expire at the end of their window (plus a day), in real time.
const NOW = Date.now();
const HOUR = 3_600_000;

/** EVALSHA and EVAL calls Redis has run, summed over `ports`. */
async function scriptCalls(ports: number[]): Promise<number> {
  let calls = 0;
  for (const port of ports) {
    const stats = await redisCli(port, 'INFO', 'commandstats');
    for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) calls += Number(m[1]);
  }
  return calls;
}

function reserveMany(store: Store, userId: string, ids: string[], limits: QuotaLimits) {
  return Promise.all(ids.map((requestId) => store.reserve({ userId, requestId, limits, tokens: 100, micros: 0, now: NOW, leaseMs: HOUR })));
}

describe('on one Redis', () => {
  let server: RedisServer;
  let store: Store;
  beforeAll(async () => {
    server = await startRedis();
    store = await createRedisStore({ url: server.url, commandTimeoutMs: 2000, log });
  });
  afterAll(async () => {
    await store.close();
    await server.stop();
  });

  it('ten admissions of one round are one call, each answered in turn', async () => {
    const before = await scriptCalls([server.port]);
    // Room for exactly 6 of the 10 (100 tokens each): the first six in order are admitted.
    const answers = await reserveMany(store, 'batch-a', Array.from({ length: 10 }, (_, i) => `r${i}`), { tokensPerDay: 600 });
    expect(await scriptCalls([server.port])).toBe(before + 1);
    expect(answers.map((a) => a.admitted)).toEqual([true, true, true, true, true, true, false, false, false, false]);
    expect(answers.filter((a) => !a.admitted).map((a) => !a.admitted && a.denial)).toEqual(Array(4).fill('tokens_per_day'));

    // Their settles, in one round too: one call; then the window holds what they used.
    const before2 = await scriptCalls([server.port]);
    await Promise.all(
      answers.flatMap((a) =>
        a.admitted
          ? [store.settle({ reservation: a.reservation, limits: { tokensPerDay: 600 }, tokens: 10, micros: 0, estimated: false, refundRequest: false, now: NOW, leaseMs: HOUR })]
          : [],
      ),
    );
    expect(await scriptCalls([server.port])).toBe(before2 + 1);
    const usage = await store.usage('batch-a', { tokensPerDay: 600 }, NOW);
    expect(usage.day).toMatchObject({ tokens: 60, reservedTokens: 0, requests: 6 });
  });

  it('users of one round share the call', async () => {
    const before = await scriptCalls([server.port]);
    const [a, b] = await Promise.all([reserveMany(store, 'batch-b', ['x', 'y'], {}), reserveMany(store, 'batch-c', ['x'], {})]);
    expect([...a, ...b].every((r) => r.admitted)).toBe(true);
    expect(await scriptCalls([server.port])).toBe(before + 1);
  });

  it('a request id seen before gets its own answer inside a batch', async () => {
    const [first] = await reserveMany(store, 'batch-d', ['same'], {});
    expect(first?.admitted).toBe(true);
    // Held already (code 2: admitted again, idempotent), beside a new one.
    const again = await reserveMany(store, 'batch-d', ['same', 'other'], {});
    expect(again.map((r) => r.admitted)).toEqual([true, true]);
  });
});

describe('on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let store: Store;
  beforeAll(async () => {
    cluster = await startRedisCluster();
    store = await createRedisStore({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000, log });
  });
  afterAll(async () => {
    await store.close();
    await cluster.stop();
  });

  it('one call per user: a user\'s keys share a slot, two users\' need not', async () => {
    const before = await scriptCalls(cluster.ports);
    const [a, b] = await Promise.all([
      reserveMany(store, 'cluster-a', ['1', '2', '3'], { tokensPerDay: 250 }),
      reserveMany(store, 'cluster-b', ['1', '2'], {}),
    ]);
    expect(a.map((r) => r.admitted)).toEqual([true, true, false]);
    expect(b.map((r) => r.admitted)).toEqual([true, true]);
    expect(await scriptCalls(cluster.ports)).toBe(before + 2);
  });
});
