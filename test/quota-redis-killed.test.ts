// docs/reliability.md, cases 26 and 28: Redis killed mid-traffic: requests fail at once with 503 (no silent
// per-process fallback, no 20 retries), the request in flight still has its usage charged once
// Redis is back, and after the restart (script cache empty) everything works again by itself.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { latch, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const REAL = 1 + FAKE_COMPLETION_TOKENS;

let fake: FakeUpstream;
let redis: RedisServer;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  // Written to disk on every command, so that a SIGKILL loses nothing and the restart finds the users.
  redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  gateway = await startQuotaGateway(fake, redis.url);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
  await redis.stop();
});

describe('Redis killed mid-traffic', () => {
  it('fails requests fast with 503, charges the request in flight once it is back, and recovers', async () => {
    const key = await userWithKey(gateway, 'killed', { tokensPerDay: 100_000 });
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);

    const release = latch();
    const arrived = latch();
    fake.handle(async () => {
      arrived.open();
      await release.wait;
      return undefined;
    });
    const inFlight = post(gateway.url, key, '/chat/completions', BODY);
    await arrived.wait;

    await redis.kill();
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const answer = await post(gateway.url, key, '/chat/completions', BODY);
      // Fast: no wait through reconnect attempts (ioredis's default would retry 20 times).
      expect(Date.now() - started).toBeLessThan(5000);
      expect(answer.status).toBe(503);
      expect(answer.json.error.code).toBe('quota_backend_unavailable');
    }
    // Each refused request counted a store failure (authentication or reservation) in /metrics.
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const failures = [...metrics.matchAll(/^keyrelay_store_errors_total\{operation="(auth|reserve)"\} (\d+)$/gm)];
    expect(failures.reduce((n, m) => n + Number(m[2]), 0)).toBeGreaterThanOrEqual(5);
    // The request admitted before the kill completes; its settle waits for Redis.
    release.open();
    expect((await inFlight).status).toBe(200);
    expect(fake.requests).toHaveLength(2);

    await redis.start();
    await until(async () => (await post(gateway.url, key, '/chat/completions', BODY)).status === 200, 'requests to succeed again');
    await until(async () => (await usageOf(gateway, 'killed')).concurrent.inFlight === 0, 'every request to settle');
    const day = (await usageOf(gateway, 'killed')).day;
    // Admitted and charged: the first, the one in flight during the kill, and the first after it.
    expect(day).toMatchObject({ requests: 3, tokens: 3 * REAL, reservedTokens: 0, estimatedRequests: 0 });
    expect(fake.requests).toHaveLength(3);
  });

  it('reloads its scripts by itself when Redis has forgotten them', async () => {
    const key = await userWithKey(gateway, 'flushed', { tokensPerDay: 100_000 });
    await redis.cli('script', 'flush');
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
    await until(async () => (await usageOf(gateway, 'flushed')).concurrent.inFlight === 0, 'the request to settle');
    expect((await usageOf(gateway, 'flushed')).day).toMatchObject({ requests: 1, tokens: REAL });
  });
});
