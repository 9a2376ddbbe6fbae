// The kept request log, in memory (a ring) and in Redis (a capped stream): bounded, newest first,
// filtered, paged with `before`; and on Redis, appends never wait on it: while it is down they are
// held (bounded, drops counted) and written once it is back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import type { RequestRecord } from '../src/observability/record.js';
import { createObservabilityRedis } from '../src/observability/redis.js';
import { type RequestLogStore, createMemoryRequestLog } from '../src/observability/request-log.js';
import { REQUEST_LOG_KEY, createRedisRequestLog } from '../src/observability/request-log-redis.js';
import { type RedisCluster, type RedisServer, startRedis, startRedisCluster } from './helpers/redis-server.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';

function record(n: number, extra: Partial<RequestRecord> = {}): RequestRecord {
  return {
    requestId: `req-${n}`,
    time: new Date(1_700_000_000_000 + n).toISOString(),
    userId: n % 2 === 0 ? 'even' : 'odd',
    method: 'POST',
    route: '/v1/chat/completions',
    stream: false,
    status: n % 3 === 0 ? 429 : 200,
    outcome: n % 3 === 0 ? 'quota_rejected' : 'ok',
    retries: 0,
    durationMs: 1,
    bytesOut: 10,
    ...extra,
  };
}

const ids = (records: Array<{ requestId: string }>): string[] => records.map((r) => r.requestId);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

let redis: RedisServer;
let cluster: RedisCluster;
const log = createLogger('silent');

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
});
afterAll(async () => {
  await Promise.all([redis.stop(), cluster.stop()]);
});

function redisLog(capacity: number, metrics = createMetrics(), env: Record<string, string> = { REDIS_URL: redis.url }) {
  const config = loadConfig({ KEYRELAY_CONFIG: undefined, ...env });
  const connection = createObservabilityRedis(config, log);
  if (!connection) throw new Error('no redis connection');
  const store = createRedisRequestLog(connection, capacity, metrics);
  return {
    store,
    metrics,
    async close() {
      await store.close();
      await connection.close();
    },
  };
}

const backends: Array<[string, (capacity: number) => Promise<{ store: RequestLogStore; close(): Promise<void> }>]> = [
  ['memory', async (capacity) => ({ store: createMemoryRequestLog(capacity), close: async () => {} })],
  [
    'redis',
    async (capacity) => {
      await redis.cli('DEL', REQUEST_LOG_KEY);
      return redisLog(capacity);
    },
  ],
  [
    'a redis cluster',
    async (capacity) => {
      const opened = redisLog(capacity, createMetrics(), { REDIS_CLUSTER_NODES: cluster.nodes.join(',') });
      const connection = createObservabilityRedis(loadConfig({ KEYRELAY_CONFIG: undefined, REDIS_CLUSTER_NODES: cluster.nodes.join(',') }), log);
      await connection?.ready();
      await connection?.client.del(REQUEST_LOG_KEY);
      await connection?.close();
      return opened;
    },
  ],
];

describe.each(backends)('the request log in %s', (_name, open) => {
  it('serves the newest first, filters by user, status and outcome, and pages with before', async () => {
    const { store, close } = await open(100);
    for (let n = 1; n <= 12; n++) store.append(record(n));
    await store.flush();

    const first = await store.page({ limit: 5 });
    expect(ids(first.data)).toEqual(['req-12', 'req-11', 'req-10', 'req-9', 'req-8']);
    expect(first.next).toBe(first.data[4]?.id);
    const second = await store.page({ limit: 5, before: first.next ?? undefined });
    expect(ids(second.data)).toEqual(['req-7', 'req-6', 'req-5', 'req-4', 'req-3']);
    const last = await store.page({ limit: 5, before: second.next ?? undefined });
    expect(ids(last.data)).toEqual(['req-2', 'req-1']);
    expect(last.next).toBeNull();

    expect(ids((await store.page({ limit: 100, user: 'even', status: { exact: 429 } })).data)).toEqual(['req-12', 'req-6']);
    expect(ids((await store.page({ limit: 100, user: 'odd', status: { class: 2 } })).data)).toEqual(['req-11', 'req-7', 'req-5', 'req-1']);
    expect(ids((await store.page({ limit: 2, outcome: 'quota_rejected' })).data)).toEqual(['req-12', 'req-9']);
    expect(ids(await collect(store.scan({ user: 'odd', status: { exact: 429 } })))).toEqual(['req-3', 'req-9']);
    await close();
  });

  it('keeps each record whole, with its cost in dollars beside the micro-dollars', async () => {
    const { store, close } = await open(10);
    const full = record(1, {
      upstreamRequestId: 'req_up',
      keyId: 'key_1',
      poolKeyId: 'env-1',
      upstream: 'default',
      model: 'gpt-4o-mini',
      tokens: { input: 3, cachedInput: 0, output: 5, estimated: false },
      costMicros: 1234,
      ttfbMs: 2.5,
      bytesIn: 99,
    });
    store.append(full);
    await store.flush();
    const [kept] = (await store.page({ limit: 1 })).data;
    expect(kept).toEqual({ id: expect.stringMatching(/^[0-9]+-[0-9]+$/), ...full, costUsd: 0.001234 });
    await close();
  });
});

describe('bounds', () => {
  it('memory keeps the last N records', async () => {
    const store = createMemoryRequestLog(5);
    for (let n = 1; n <= 8; n++) store.append(record(n));
    expect(ids((await store.page({ limit: 100 })).data)).toEqual(['req-8', 'req-7', 'req-6', 'req-5', 'req-4']);
  });

  it('memory gives an export the records it held when the export began, whatever comes after', async () => {
    const store = createMemoryRequestLog(3);
    for (let n = 1; n <= 3; n++) store.append(record(n));
    const exported = store.scan({})[Symbol.asyncIterator]();
    expect((await exported.next()).value?.requestId).toBe('req-1');
    for (let n = 4; n <= 9; n++) store.append(record(n));
    expect(ids(await collect({ [Symbol.asyncIterator]: () => exported }))).toEqual(['req-2', 'req-3']);
    expect(ids(await collect(store.scan({})))).toEqual(['req-7', 'req-8', 'req-9']);
  });

  it('memory leaves out the fields a record holds as undefined', async () => {
    const store = createMemoryRequestLog(3);
    store.append({ ...record(1), model: undefined, tokens: undefined, costMicros: undefined });
    const [kept] = (await store.page({ limit: 1 })).data;
    expect(Object.keys(kept ?? {})).toEqual(['id', ...Object.keys(record(1))]);
  });

  it('memory with a size of 0 keeps nothing', async () => {
    const store = createMemoryRequestLog(0);
    store.append(record(1));
    expect((await store.page({ limit: 100 })).data).toEqual([]);
  });

  it('redis trims the stream to about N entries (MAXLEN ~)', async () => {
    await redis.cli('DEL', REQUEST_LOG_KEY);
    const { store, close } = redisLog(10);
    for (let n = 1; n <= 1000; n++) store.append(record(n));
    await store.flush();
    // `~` trims whole stream nodes (100 entries each by default): more than N may stay, never all.
    const length = Number(await redis.cli('XLEN', REQUEST_LOG_KEY));
    expect(length).toBeGreaterThanOrEqual(10);
    expect(length).toBeLessThanOrEqual(10 + 200);
    expect(ids((await store.page({ limit: 3 })).data)).toEqual(['req-1000', 'req-999', 'req-998']);
    await close();
  });
});

describe('redis away', () => {
  it('appends return at once, are held while Redis is down, counted as errors, and written when it is back', async () => {
    await redis.cli('DEL', REQUEST_LOG_KEY);
    const { store, metrics, close } = redisLog(100);
    store.append(record(1));
    await store.flush();
    await redis.kill();

    for (let n = 2; n <= 4; n++) store.append(record(n));
    await store.flush(); // one attempt, which fails fast: no offline queue to wait in
    const scraped = parsePrometheusText(await metrics.registry.metrics());
    expect(sampleValue(scraped, 'keyrelay_store_errors_total', { operation: 'request_log' })).toBeGreaterThanOrEqual(1);
    await expect(store.page({ limit: 10 })).rejects.toThrow();

    await redis.start();
    await expect.poll(async () => ids((await store.page({ limit: 10 }).catch(() => ({ data: [] }))).data), { timeout: 15_000 }).toEqual([
      'req-4',
      'req-3',
      'req-2',
    ]);
    await close();
  });

  it('past its bound the buffer drops the oldest records and counts them', async () => {
    // Cleared while Redis is up: cleared after the restart, it could erase what the buffer had
    // already written back by then.
    await redis.cli('DEL', REQUEST_LOG_KEY);
    const { store, metrics, close } = redisLog(3);
    await redis.kill();
    for (let n = 1; n <= 10; n++) store.append(record(n));
    const scraped = parsePrometheusText(await metrics.registry.metrics());
    expect(sampleValue(scraped, 'keyrelay_observability_dropped_total', { sink: 'request_log' })).toBe(7);
    await redis.start();
    await expect.poll(async () => ids((await store.page({ limit: 10 }).catch(() => ({ data: [] }))).data), { timeout: 15_000 }).toEqual([
      'req-10',
      'req-9',
      'req-8',
    ]);
    await close();
  });
});
