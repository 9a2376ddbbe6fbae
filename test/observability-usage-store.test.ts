// The usage counters, in memory and in Redis (one hash per UTC day, kept ~400 days): rows added
// are summed per day, user and model, read back for a span of days and grouped into a report.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { createObservabilityRedis } from '../src/observability/redis.js';
import { buildReport } from '../src/observability/usage-report.js';
import { usageKey, createRedisUsage } from '../src/observability/usage-redis.js';
import { ModelCap, OTHER_MODEL, RETENTION_DAYS, type UsageRow, type UsageStore, createMemoryUsage, daysBetween, emptyCounts } from '../src/observability/usage.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

function row(day: string, user: string, model: string, counts: Partial<UsageRow> = {}): UsageRow {
  return { day, user, model, ...emptyCounts(), requests: 1, ...counts };
}

const backends: Array<[string, () => Promise<{ store: UsageStore; close(): Promise<void> }>]> = [
  ['memory', async () => ({ store: createMemoryUsage(() => Date.parse('2030-01-31T12:00:00Z')), close: async () => {} })],
  [
    'redis',
    async () => {
      await redis.cli('FLUSHALL');
      const connection = createObservabilityRedis(loadConfig({ KEYRELAY_CONFIG: undefined, REDIS_URL: redis.url }), createLogger('silent'));
      if (!connection) throw new Error('no redis connection');
      const store = createRedisUsage(connection, createMetrics());
      return {
        store,
        async close() {
          await store.close();
          await connection.close();
        },
      };
    },
  ],
];

describe.each(backends)('usage counters in %s', (name, open) => {
  it('sums rows per day, user and model and reads a span of days, of one user or all', async () => {
    const { store, close } = await open();
    store.add(row('2030-01-30', 'alice', 'gpt-4o-mini', { input: 10, output: 5, micros: 7 }));
    store.add(row('2030-01-30', 'alice', 'gpt-4o-mini', { input: 1, cachedInput: 1, output: 2, micros: 3, errors: 1, estimated: 1 }));
    store.add(row('2030-01-31', 'alice', 'gpt-4o', { input: 4, output: 4, micros: 40 }));
    store.add(row('2030-01-31', 'bob', 'gpt-4o-mini', { input: 2, output: 2, micros: 2 }));
    store.add(row('2030-02-01', 'bob', 'gpt-4o-mini', { input: 100 }));
    await store.flush();

    const sorted = (rows: UsageRow[]) => [...rows].sort((a, b) => `${a.day}${a.user}${a.model}`.localeCompare(`${b.day}${b.user}${b.model}`));
    expect(sorted(await store.read(daysBetween('2030-01-30', '2030-01-31')))).toEqual([
      { day: '2030-01-30', user: 'alice', model: 'gpt-4o-mini', requests: 2, errors: 1, input: 11, cachedInput: 1, output: 7, micros: 10, estimated: 1 },
      { day: '2030-01-31', user: 'alice', model: 'gpt-4o', requests: 1, errors: 0, input: 4, cachedInput: 0, output: 4, micros: 40, estimated: 0 },
      { day: '2030-01-31', user: 'bob', model: 'gpt-4o-mini', requests: 1, errors: 0, input: 2, cachedInput: 0, output: 2, micros: 2, estimated: 0 },
    ]);
    expect((await store.read(['2030-01-31'], 'bob')).map((r) => r.user)).toEqual(['bob']);
    expect(await store.read(['2029-12-31'])).toEqual([]);

    if (name === 'redis') {
      const ttl = Number(await redis.cli('TTL', usageKey('2030-01-30')));
      expect(ttl).toBeGreaterThan(RETENTION_DAYS * 86_400 - 60);
      expect(ttl).toBeLessThanOrEqual(RETENTION_DAYS * 86_400);
    }
    await close();
  });
});

describe('the report', () => {
  const rows = [
    row('2030-01-30', 'alice', 'gpt-4o-mini', { input: 10, output: 5, micros: 7 }),
    row('2030-01-31', 'alice', 'gpt-4o', { input: 4, output: 4, micros: 40 }),
    row('2030-01-31', 'bob', 'gpt-4o-mini', { input: 2, output: 2, micros: 2, errors: 1 }),
  ];
  const figures = (requests: number, errors: number, input: number, output: number, micros: number) => ({
    requests,
    errors,
    inputTokens: input,
    cachedInputTokens: 0,
    outputTokens: output,
    totalTokens: input + output,
    costUsd: micros / 1e6,
    costMicros: micros,
    estimatedRequests: 0,
  });

  it('groups by day in order, with totals', () => {
    expect(buildReport(rows, { from: '2030-01-30', to: '2030-01-31', groupBy: ['day'] })).toEqual({
      from: '2030-01-30',
      to: '2030-01-31',
      user: null,
      groupBy: ['day'],
      data: [
        { day: '2030-01-30', ...figures(1, 0, 10, 5, 7) },
        { day: '2030-01-31', ...figures(2, 1, 6, 6, 42) },
      ],
      total: figures(3, 1, 16, 11, 49),
    });
  });

  it('groups by model and by user, the most expensive first, and by several at once', () => {
    expect(buildReport(rows, { from: 'a', to: 'b', groupBy: ['model'] }).data).toEqual([
      { model: 'gpt-4o', ...figures(1, 0, 4, 4, 40) },
      { model: 'gpt-4o-mini', ...figures(2, 1, 12, 7, 9) },
    ]);
    expect(buildReport(rows, { from: 'a', to: 'b', groupBy: ['user'] }).data.map((d) => [d.user, d.costMicros])).toEqual([
      ['alice', 47],
      ['bob', 2],
    ]);
    expect(buildReport(rows, { from: 'a', to: 'b', groupBy: ['user', 'model'] }).data.map((d) => [d.user, d.model])).toEqual([
      ['alice', 'gpt-4o'],
      ['alice', 'gpt-4o-mini'],
      ['bob', 'gpt-4o-mini'],
    ]);
  });

  it('counts a model past the per-day cap of distinct names as (other)', () => {
    const cap = new ModelCap(2);
    expect(['a', 'b', 'c', 'a', 'd'].map((m) => cap.label('2030-01-01', m))).toEqual(['a', 'b', OTHER_MODEL, 'a', OTHER_MODEL]);
    expect(cap.label('2030-01-02', 'c')).toBe('c');
  });
});
