// GET /admin/usage/series after requests of several users through a real gateway, on the memory
// store and on Redis: buckets of a minute, an hour or a day, series by user, model and pool key
// with the rest folded into (other), top lists, and totals that equal GET /admin/usage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryUsage, emptyCounts } from '../src/observability/usage.js';
import { registerSecret } from './helpers/log-capture.js';
import { BREAK, type ObservedGateway, chat, keptRecords, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-usageseries-0123456789abcdef';
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

interface Series {
  name: string;
  requests: number[];
  errors: number[];
  tokens: number[];
  costMicros: number[];
}

describe.each(['memory', 'redis'] as const)('usage series on %s', (backend) => {
  let env: ObservedGateway;
  const today = new Date().toISOString().slice(0, 10);
  const monthAgo = new Date(Date.now() - 29 * 86_400_000).toISOString().slice(0, 10);
  let sent = 0;

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
    const alice = await env.gateway.createUserKey('alice');
    const bob = await env.gateway.createUserKey('bob');
    registerSecret(alice);
    registerSecret(bob);
    const { gateway } = env;
    const answers = [
      await post(gateway, alice, '/chat/completions', chat('one')),
      await post(gateway, alice, '/chat/completions', chat('two, a little longer')),
      await post(gateway, alice, '/chat/completions', chat('three', { model: 'gpt-4o' })),
      await post(gateway, bob, '/chat/completions', chat('four')),
      await post(gateway, bob, '/chat/completions', chat(BREAK)),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 502]);
    // Ten more users of a request each: twelve series by user, past the eight named.
    for (let i = 0; i < 10; i++) {
      const key = await gateway.createUserKey(`user${i}`);
      registerSecret(key);
      expect((await post(gateway, key, '/chat/completions', chat(`from user ${i}`))).status).toBe(200);
    }
    sent = 15;
    await keptRecords(gateway, sent);
  });
  afterAll(async () => {
    await env.close();
  });

  const series = async (query: string) => {
    const res = await env.gateway.admin('GET', `/usage/series${query}`);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    return res.json;
  };
  const usageTotal = async (from: string, to: string, user = '') => {
    const res = await env.gateway.admin('GET', `/usage?from=${from}&to=${to}${user}`);
    expect(res.status).toBe(200);
    const t = res.json.total;
    return { requests: t.requests, errors: t.errors, inputTokens: t.inputTokens, outputTokens: t.outputTokens, totalTokens: t.totalTokens, costMicros: t.costMicros, costUsd: t.costUsd };
  };

  it('range=hour: 60 minute buckets, newest last, whose totals equal the usage of today', async () => {
    const json = await series('?range=hour&by=model');
    expect(json.step).toBe('minute');
    expect(json.buckets).toHaveLength(60);
    const now = Date.now();
    const last = Date.parse(json.buckets[59]);
    expect(now - last).toBeGreaterThanOrEqual(0);
    expect(now - last).toBeLessThan(120_000);
    expect(Date.parse(json.buckets[1]) - Date.parse(json.buckets[0])).toBe(60_000);
    expect(json.buckets[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/);
    expect(json.total).toEqual(await usageTotal(today, today));
    expect(json.total.requests).toBe(sent);
    expect(json.total.errors).toBe(1);
    expect(json.series.map((s: Series) => s.name).sort()).toEqual(['gpt-4o', 'gpt-4o-mini']);
    for (const s of json.series as Series[]) expect([s.requests, s.errors, s.tokens, s.costMicros].every((a) => a.length === 60)).toBe(true);
    const gpt4o = (json.series as Series[]).find((s) => s.name === 'gpt-4o') as Series;
    expect(sum(gpt4o.requests)).toBe(1);
  });

  it('range=day: 24 hour buckets; range=month: 30 days; totals equal /admin/usage over the same days', async () => {
    const day = await series('?range=day&by=user');
    expect([day.step, day.buckets.length]).toEqual(['hour', 24]);
    expect(day.buckets[23]).toBe(`${new Date().toISOString().slice(0, 13)}:00:00.000Z`);
    expect(day.total).toEqual(await usageTotal(today, today));
    const month = await series('?range=month&by=poolKey');
    expect([month.step, month.buckets.length]).toEqual(['day', 30]);
    expect(month.buckets[0]).toBe(`${monthAgo}T00:00:00.000Z`);
    expect(month.buckets[29]).toBe(`${today}T00:00:00.000Z`);
    expect(month.total).toEqual(await usageTotal(monthAgo, today));
  });

  it('by pool key: the key that answered, and (none) for a request no key answered', async () => {
    for (const range of ['hour', 'day', 'month']) {
      const json = await series(`?range=${range}&by=poolKey`);
      const byName = new Map((json.series as Series[]).map((s) => [s.name, s]));
      expect([...byName.keys()].sort(), range).toEqual(['(none)', 'env-1']);
      expect(sum(byName.get('env-1')?.requests ?? []) + sum(byName.get('(none)')?.requests ?? []), range).toBe(sent);
      expect(sum(byName.get('(none)')?.errors ?? []), range).toBe(1);
    }
  });

  it('names at most eight series, the most expensive, and folds the rest into (other)', async () => {
    const json = await series('?range=day&by=user');
    const names = (json.series as Series[]).map((s) => s.name);
    expect(names).toHaveLength(9);
    expect(names[8]).toBe('(other)');
    // alice spent the most (three requests, one on gpt-4o), then bob.
    expect(names.slice(0, 2)).toEqual(['alice', 'bob']);
    const requests = (json.series as Series[]).map((s) => sum(s.requests));
    expect(sum(requests)).toBe(sent);
    expect(requests[8]).toBe(4);
    const cost = (json.series as Series[]).map((s) => sum(s.costMicros));
    expect(sum(cost)).toBe(json.total.costMicros);
  });

  it('lists the top users and models', async () => {
    const json = await series('?range=month');
    expect(json.top.users).toHaveLength(10);
    expect(json.top.users[0]).toEqual({ name: 'alice', requests: 3, totalTokens: expect.any(Number), costMicros: expect.any(Number) });
    expect(json.top.users[1].name).toBe('bob');
    expect(json.top.models.map((m: { name: string }) => m.name).sort()).toEqual(['gpt-4o', 'gpt-4o-mini']);
    expect(sum(json.top.models.map((m: { requests: number }) => m.requests))).toBe(sent);
  });

  it("one user's series", async () => {
    const json = await series('?range=hour&by=model&user=bob');
    expect(json.user).toBe('bob');
    expect(json.total).toEqual(await usageTotal(today, today, '&user=bob'));
    expect(json.total.requests).toBe(2);
    expect(json.top.users.map((u: { name: string }) => u.name)).toEqual(['bob']);
    const none = await series('?range=month&user=nobody');
    expect(none.series).toEqual([]);
    expect(none.total.requests).toBe(0);
  });

  it('answers 400 naming a bad parameter', async () => {
    for (const [query, param] of [
      ['?range=week', 'range'],
      ['?by=key', 'by'],
      ['?groupBy=day', 'groupBy'],
      ['?user=' + 'u'.repeat(201), 'user'],
    ] as const) {
      const res = await env.gateway.admin('GET', `/usage/series${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json.error.param, query).toBe(param);
    }
  });

  // Redis only: its keys and their time to live, and fields as an earlier version wrote them.
  if (backend === 'redis') it('keeps the minute and hour counters for a bounded time, and reads day counters written before pool keys', async () => {
    const redis = env.redis;
    if (!redis) throw new Error('no redis');
    const minute = new Date().toISOString().slice(0, 16);
    const hourKey = `kr:usage:h:{${minute.slice(0, 13)}}`;
    const minuteKeys = (await redis.cli('--scan', '--pattern', 'kr:usage:m:*')).split('\n').filter(Boolean);
    expect(minuteKeys.length).toBeGreaterThan(0);
    for (const key of minuteKeys) {
      const ttl = Number(await redis.cli('TTL', key));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(2 * 3600);
    }
    const hourTtl = Number(await redis.cli('TTL', hourKey));
    expect(hourTtl).toBeGreaterThan(2 * 3600);
    expect(hourTtl).toBeLessThanOrEqual(3 * 86_400);
    // A day field as written before pool keys were kept: user, model, no pool key.
    const before = await usageTotal(today, today);
    await redis.cli('HINCRBY', `kr:usage:{${today}}`, 'r\talice\tgpt-4o-mini', '5');
    expect((await usageTotal(today, today)).requests).toBe(before.requests + 5);
    const month = await series('?range=month&by=poolKey');
    const unknown = (month.series as Series[]).find((s) => s.name === '(unknown)') as Series;
    expect(sum(unknown.requests)).toBe(5);
    expect(month.total).toEqual(await usageTotal(monthAgo, today));
    await redis.cli('HINCRBY', `kr:usage:{${today}}`, 'r\talice\tgpt-4o-mini', '-5');
  });
});

describe('series counters in memory', () => {
  it('forget minutes after two hours and hours after three days', async () => {
    let now = Date.parse('2030-01-31T12:00:30Z');
    const usage = createMemoryUsage(() => now);
    const row = (minute: string) => ({ day: minute.slice(0, 10), minute, hour: minute.slice(0, 13), user: 'u', model: 'm', poolKey: 'k', ...emptyCounts(), requests: 1 });
    usage.add(row('2030-01-31T12:00'));
    now += 2 * 3_600_000 + 60_000;
    usage.add(row('2030-01-31T14:01'));
    expect(await usage.series('minute', ['2030-01-31T12:00', '2030-01-31T14:01'], undefined)).toEqual([
      { bucket: '2030-01-31T14:01', user: 'u', model: 'm', poolKey: 'k', requests: 1, errors: 0, input: 0, output: 0, micros: 0 },
    ]);
    expect((await usage.series('hour', ['2030-01-31T12'], undefined)).map((r) => r.requests)).toEqual([1]);
    now += 3 * 86_400_000 + 3_600_000;
    usage.add(row('2030-02-03T15:02'));
    expect(await usage.series('hour', ['2030-01-31T12', '2030-01-31T14'], undefined)).toEqual([]);
    // Day counters stay as long as the usage report's.
    expect((await usage.series('day', ['2030-01-31'], undefined)).map((r) => r.requests)).toEqual([2]);
    expect((await usage.read(['2030-01-31'])).map((r) => r.requests)).toEqual([2]);
  });
});
