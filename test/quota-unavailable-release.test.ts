// A request answered 503 quota_backend_unavailable was never sent upstream: it must cost the user
// nothing. When Redis is frozen, its reserve still runs once Redis thaws (the command sits in the
// connection); the process then releases it by a cancel sent behind it. That cancel must be on
// its way before the 503 is: a process killed right after answering would otherwise leave the
// reservation to lapse, and the sweep charges a lapsed reservation its worst case.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { createRedisStore, quotaKeys } from '../src/store/redis.js';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import { startChildGateway } from './helpers/child-gateway.js';
import type { TestGateway } from './helpers/gateway.js';
import { capturingLogger } from './helpers/log-capture.js';
import { POOL_KEY, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const HOUR = 3_600_000;
const REAL = 1 + FAKE_COMPLETION_TOKENS;

let fake: FakeUpstream;
let redis: RedisServer;
let admin: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  redis = await startRedis();
  admin = await startQuotaGateway(fake, redis.url);
});
afterAll(async () => {
  redis.thaw();
  await admin.close();
  await fake.close();
  await redis.stop();
});

/** What Redis holds for the user: reservations held and request ids settled (released). */
async function heldAndSettled(userId: string): Promise<{ held: number; settled: number }> {
  const now = Date.now();
  const keys = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id);
  const held = Number(await redis.cli('ZCARD', keys[5] as string));
  const settled = Number(await redis.cli('ZCARD', keys[6] as string));
  return { held, settled };
}

describe('a request answered 503 while Redis is frozen, by a process killed at once', () => {
  it('is released when Redis thaws, and never charged', async () => {
    // The request must reach its admission: authentication reads Redis too, unless the key was
    // read within the last second (src/store/caller-cache.ts). A round that missed that second
    // (a slow machine) shows no reservation made at all, and is tried again with a new user.
    let userId = '';
    for (let attempt = 1; ; attempt++) {
      userId = `killed-after-503-${attempt}`;
      const key = await userWithKey(admin, userId, { tokensPerDay: 1_000_000 });
      const child = await startChildGateway({ REDIS_URL: redis.url, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl });
      try {
        expect((await post(child.url, key, '/chat/completions', BODY)).status).toBe(200);
        redis.freeze();
        const answer = await post(child.url, key, '/chat/completions', BODY);
        child.child.kill('SIGKILL');
        await child.exited;
        expect(answer.status).toBe(503);
        expect(answer.json.error.code).toBe('quota_backend_unavailable');
      } finally {
        redis.thaw();
        await child.stop();
      }
      // Redis runs what the killed process had sent: the reserve, and its cancel if it was sent.
      await until(async () => (await usageOf(admin, userId)).concurrent !== undefined, 'Redis to answer again');
      const { held, settled } = await heldAndSettled(userId);
      // The first request settled; a second id, held or settled, is the 503's reservation.
      if (held === 0 && settled === 1 && attempt < 3) continue;
      expect(held + settled).toBe(2);
      break;
    }
    await until(async () => (await usageOf(admin, userId)).day.reservedTokens === 0, 'the reservation to be released', 10_000);

    // An admission past the reservation's lease sweeps whatever lapsed: nothing may be left to charge.
    const store = await createRedisStore({ url: redis.url, commandTimeoutMs: 5000, log: capturingLogger() });
    try {
      const now = Date.now() + HOUR + 60_000;
      const a = await store.reserve({ userId, requestId: 'sweep', limits: {}, tokens: 0, micros: 0, now, leaseMs: 1000 });
      if (a.admitted) await store.settle({ reservation: a.reservation, limits: {}, tokens: 0, micros: 0, estimated: false, refundRequest: true, now, leaseMs: 1000 });
    } finally {
      await store.close();
    }
    // The 200 alone is charged, at its real usage; the 503 counts for nothing.
    expect((await usageOf(admin, userId)).day).toMatchObject({ requests: 1, tokens: REAL, reservedTokens: 0, estimatedRequests: 0 });
  });
});
