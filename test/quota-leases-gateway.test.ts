// Quota leases (docs/quota.md) through whole gateways on one real Redis: the x-ratelimit headers
// stay the user's global remaining, a PATCH of limits and a revoked key stop a lease's admissions,
// Redis going away still answers 503, and a process killed holding a lease over-admits nothing:
// its lease is charged in full once it expires.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import { quotaKeys } from '../src/store/redis.js';
import { estimateAt } from './helpers/estimate.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import type { TestGateway } from './helpers/gateway.js';
import { POOL_KEY, QUOTA_SETTINGS, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const estimate = estimateAt('/chat/completions', BODY, QUOTA_SETTINGS.defaultMaxOutputTokens);
const WORST = estimate.promptTokens + estimate.maxOutputTokens;
const REAL = 1 + FAKE_COMPLETION_TOKENS;
const LEASES = { leases: 'on' as const, leaseSeconds: 10 };

let fake: FakeUpstream;
let redis: RedisServer;
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  redis = await startRedis();
  [a, b] = await Promise.all([startQuotaGateway(fake, redis.url, LEASES), startQuotaGateway(fake, redis.url, LEASES)]);
}, 60_000);
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await fake.close();
  await redis.stop();
});

/** The ids of the leases Redis holds for the user. */
async function leasesOf(on: RedisServer, userId: string): Promise<string[]> {
  const now = Date.now();
  const held = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id)[4] as string;
  return (await on.cli('hkeys', held)).split('\n').filter((k) => k.startsWith('lease:'));
}

const remaining = (headers: Record<string, unknown>): number => Number(headers['x-ratelimit-remaining-requests']);

describe('quota leases in gateways', () => {
  it('keep x-ratelimit-remaining-requests the global remaining while requests are admitted from a lease', async () => {
    const key = await userWithKey(a, 'headers-one', { rpm: 100 });
    const started = Date.now();
    for (let i = 1; i <= 30; i++) {
      const answer = await post(a.url, key, '/chat/completions', BODY);
      expect(answer.status).toBe(200);
      const refilled = Math.ceil(((Date.now() - started) * 100) / 60_000);
      expect(remaining(answer.headers)).toBeGreaterThanOrEqual(100 - i - 1);
      expect(remaining(answer.headers)).toBeLessThanOrEqual(100 - i + refilled);
    }
    // Admitted from a lease (else the check above tested the path without leases).
    expect(await leasesOf(redis, 'headers-one')).toHaveLength(1);

    // Two processes: each counts what the other's lease holds as used, never more left than there is.
    const shared = await userWithKey(a, 'headers-two', { rpm: 200 });
    const twoStarted = Date.now();
    for (let i = 1; i <= 40; i++) {
      const answer = await post((i % 2 ? a : b).url, shared, '/chat/completions', BODY);
      expect(answer.status).toBe(200);
      const refilled = Math.ceil(((Date.now() - twoStarted) * 200) / 60_000);
      // What the other process took since this one's last exchange with Redis (every 100 ms, later
      // on a busy machine) is not seen yet: at most one lease of it, an eighth of what was left.
      expect(remaining(answer.headers)).toBeLessThanOrEqual(200 - i + refilled + 200 / 8);
      expect(remaining(answer.headers)).toBeGreaterThanOrEqual(200 - i - 200 / 8);
    }
    expect(await leasesOf(redis, 'headers-two')).toHaveLength(2);
  }, 60_000);

  it('stop admitting from a lease once the limits are lowered, on both processes, and give it back', async () => {
    const key = await userWithKey(a, 'patched', { tokensPerDay: 1000 * WORST });
    for (let i = 0; i < 6; i++) expect((await post((i % 2 ? a : b).url, key, '/chat/completions', BODY)).status).toBe(200);
    expect(await leasesOf(redis, 'patched')).toHaveLength(2);
    expect((await a.admin('PATCH', '/users/patched', { limits: { tokensPerDay: 1 } })).status).toBe(200);
    // The process that made the change sees it at once; the other within its caller cache's second.
    const onA = await post(a.url, key, '/chat/completions', BODY);
    expect(onA.status).toBe(429);
    expect(onA.json.error.code).toBe('insufficient_quota');
    await until(async () => (await post(b.url, key, '/chat/completions', BODY)).status === 429, 'the second process to refuse', 5000);
    for (let i = 0; i < 5; i++) expect((await post(b.url, key, '/chat/completions', BODY)).status).toBe(429);
    // The old leases go back: nothing stays reserved, and what was used is charged.
    await until(async () => (await usageOf(a, 'patched')).day.reservedTokens === 0, 'the leases to be given back', 10_000);
    // Every request admitted (6, and those the second process admitted before it saw the change)
    // is charged what it used, no more.
    const day = (await usageOf(a, 'patched')).day;
    expect(day.requests).toBeGreaterThanOrEqual(6);
    expect(day.tokens).toBe(day.requests * REAL);
    // The leases taken under the new limit hold nothing, and close once unused.
    await until(async () => (await leasesOf(redis, 'patched')).length === 0, 'every lease to close', 10_000);
  }, 60_000);

  it('refuse a revoked key at once where it was revoked and within a second elsewhere, lease or not', async () => {
    const key = await userWithKey(a, 'revoked', { tokensPerDay: 1000 * WORST, rpm: 1000 });
    for (let i = 0; i < 6; i++) expect((await post((i % 2 ? a : b).url, key, '/chat/completions', BODY)).status).toBe(200);
    expect(await leasesOf(redis, 'revoked')).toHaveLength(2);
    const keys = await a.admin('GET', '/users/revoked/keys');
    expect((await a.admin('DELETE', `/keys/${keys.json.data[0].id}`)).status).toBeLessThan(300);
    expect((await post(a.url, key, '/chat/completions', BODY)).status).toBe(401);
    await until(async () => (await post(b.url, key, '/chat/completions', BODY)).status === 401, 'the second process to refuse the key', 5000);
    for (let i = 0; i < 5; i++) expect((await post(b.url, key, '/chat/completions', BODY)).status).toBe(401);
  }, 60_000);

  it('answer 503 when Redis goes away, as without leases', async () => {
    const own = await startRedis();
    const gateway = await startQuotaGateway(fake, own.url, LEASES);
    try {
      const key = await userWithKey(gateway, 'redis-down', { tokensPerDay: 1000 * WORST });
      for (let i = 0; i < 5; i++) expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
      expect(await leasesOf(own, 'redis-down')).toHaveLength(1);
      await own.kill();
      await until(async () => (await post(gateway.url, key, '/chat/completions', BODY)).status === 503, 'a 503', 10_000);
      for (let i = 0; i < 5; i++) {
        const answer = await post(gateway.url, key, '/chat/completions', BODY);
        expect(answer.status).toBe(503);
        expect(answer.json.error.code).toBe('quota_backend_unavailable');
      }
    } finally {
      await gateway.close();
      await own.stop();
    }
  }, 60_000);

  it('hold a killed process\'s lease until it expires, then charge it in full: nothing over-admitted', async () => {
    const limit = 40 * WORST;
    const child: ChildGateway = await startChildGateway({ REDIS_URL: redis.url, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl, KEYRELAY_QUOTA_LEASES: 'on' });
    let served = 0;
    try {
      const key = await userWithKey(a, 'killed', { tokensPerDay: limit });
      for (let i = 0; i < 8; i++) {
        expect((await post(child.url, key, '/chat/completions', BODY)).status).toBe(200);
        served++;
      }
      const [dead] = await leasesOf(redis, 'killed');
      expect(dead).toBeDefined();
      child.child.kill('SIGKILL');
      await child.exited;
      const held = await usageOf(a, 'killed');
      expect(held.day.reservedTokens).toBeGreaterThan(0);
      // Until the lease expires, what it holds is not admitted elsewhere.
      const deadline = Date.now() + 10_000;
      let admitted = 0;
      while (Date.now() < deadline - 500) {
        const answer = await post((admitted % 2 ? a : b).url, key, '/chat/completions', BODY);
        if (answer.status === 200) admitted++;
        else expect(answer.status).toBe(429);
        const now = (await usageOf(a, 'killed')).day;
        expect(now.tokens + now.reservedTokens).toBeLessThanOrEqual(limit);
        if (answer.status === 429) await new Promise((r) => setTimeout(r, 200));
      }
      // Past its deadline the next admission sweeps it: charged in full, as estimated.
      await until(async () => {
        await post(a.url, key, '/chat/completions', BODY);
        return !(await leasesOf(redis, 'killed')).includes(dead as string);
      }, 'the dead lease to be swept', 15_000);
      await until(async () => (await usageOf(a, 'killed')).day.estimatedRequests >= 1, 'the full charge', 5000);
      const end = (await usageOf(a, 'killed')).day;
      expect(end.tokens).toBeGreaterThanOrEqual(served * REAL);
      expect(end.tokens + end.reservedTokens).toBeLessThanOrEqual(limit);
    } finally {
      child.child.kill('SIGKILL');
    }
  }, 90_000);
});
