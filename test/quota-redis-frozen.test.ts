// docs/reliability.md, case 27: Redis frozen (SIGSTOP): calls time out after the short command timeout and
// requests get 503; on SIGCONT Redis runs what was queued meanwhile, the gateway resends what
// failed, and yet every request is charged exactly once.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { createRedisStore } from '../src/store/redis.js';
import type { Store } from '../src/store/types.js';
import type { TestGateway } from './helpers/gateway.js';
import { capturingLogger } from './helpers/log-capture.js';
import { latch, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const REAL = 1 + FAKE_COMPLETION_TOKENS;

let fake: FakeUpstream;
let redis: RedisServer;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  redis = await startRedis();
  gateway = await startQuotaGateway(fake, redis.url);
});
afterAll(async () => {
  redis.thaw();
  await gateway.close();
  await fake.close();
  await redis.stop();
});

describe('Redis frozen', () => {
  it('gives 503 while frozen, recovers on SIGCONT, and charges the request that settled meanwhile once', async () => {
    const key = await userWithKey(gateway, 'frozen', { tokensPerDay: 100_000 });
    const release = latch();
    const arrived = latch();
    fake.handle(async () => {
      arrived.open();
      await release.wait;
      return undefined;
    });
    const inFlight = post(gateway.url, key, '/chat/completions', BODY);
    await arrived.wait;

    redis.freeze();
    const started = Date.now();
    const answer = await post(gateway.url, key, '/chat/completions', BODY);
    // Fast: after the 1 s command timeout, never as long as Redis stays frozen.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(answer.status).toBe(503);
    expect(answer.json.error.code).toBe('quota_backend_unavailable');
    expect((await request(`${gateway.url}/readyz`)).statusCode).toBe(503);
    // Its settle times out: the command stays queued in the connection, and the gateway keeps a
    // copy to resend. Both will run.
    release.open();
    expect((await inFlight).status).toBe(200);

    redis.thaw();
    await until(async () => (await request(`${gateway.url}/readyz`)).statusCode === 200, 'readiness to come back');
    await until(async () => (await usageOf(gateway, 'frozen')).concurrent.inFlight === 0, 'the request to settle');
    expect((await usageOf(gateway, 'frozen')).day).toMatchObject({ requests: 1, tokens: REAL, reservedTokens: 0 });
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
  });

  it('releases a reservation whose answer timed out, when Redis runs it after all', async () => {
    const log = capturingLogger();
    const store: Store = await createRedisStore({ url: redis.url, commandTimeoutMs: 1000, log });
    try {
      const limits = { tokensPerDay: 1000 };
      const now = Date.now();
      redis.freeze();
      const reserve = store.reserve({ userId: 'thawed', requestId: 'late', limits, tokens: 500, micros: 0, now, leaseMs: 60_000 });
      await expect(reserve).rejects.toMatchObject({ code: 'quota_backend_unavailable', status: 503 });
      redis.thaw();
      // Redis now runs the reserve it had queued, then the cancel the store sent after it.
      await until(async () => (await store.usage('thawed', limits, Date.now())).day.reservedTokens === 0, 'the cancel to land');
      expect((await store.usage('thawed', limits, Date.now())).day).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
      // A resend of that reserve now is refused: it was settled.
      expect(await store.reserve({ userId: 'thawed', requestId: 'late', limits, tokens: 500, micros: 0, now, leaseMs: 60_000 })).toMatchObject({
        admitted: false,
        denial: 'settled',
      });
    } finally {
      await store.close();
    }
  });
});
