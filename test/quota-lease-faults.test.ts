// Quota leases (docs/quota.md, "Redis unreachable") when Redis fails while two gateways hold
// leases: frozen (SIGSTOP, then SIGCONT) and restarted (SIGKILL, then started again from its
// append-only file). Meanwhile every answer is a 200 admitted from what a lease already held, or
// 503 quota_backend_unavailable (failing closed), never more admitted than the leases held;
// once Redis is back both gateways admit again and take new leases by themselves, and the ledger
// never holds more charged + reserved than the limit.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { dayWindow, monthWindow } from '../src/quota/windows.js';
import { quotaKeys } from '../src/store/redis.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { QUOTA_SETTINGS, latch, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const WORST = (() => {
  const e = estimateAt('/chat/completions', BODY, QUOTA_SETTINGS.defaultMaxOutputTokens);
  return e.promptTokens + e.maxOutputTokens;
})();
// Short leases, so that the ones dropped while Redis was away expire within the test.
const LEASES = { leases: 'on' as const, leaseSeconds: 2 };
const LIMIT = 400 * WORST;
// The fake upstream's usage for BODY: ceil(2 characters / 4) prompt tokens, and its fixed answer.
const REAL = 1 + FAKE_COMPLETION_TOKENS;

let fake: FakeUpstream;
beforeAll(async () => {
  fake = await startFake();
});
afterAll(async () => {
  await fake.close();
});

/** The user's leases in Redis: id -> tokens held. */
async function leasesOf(redis: RedisServer, userId: string): Promise<Map<string, number>> {
  const now = Date.now();
  const held = quotaKeys(userId, dayWindow(now).id, monthWindow(now).id)[4] as string;
  const lines = (await redis.cli('hgetall', held)).split('\n');
  const out = new Map<string, number>();
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const field = lines[i] as string;
    if (field.startsWith('lease:')) out.set(field, Number((lines[i + 1] as string).split(':')[0]));
  }
  return out;
}

async function withinLimit(gateway: TestGateway, userId: string): Promise<void> {
  const day = (await usageOf(gateway, userId)).day;
  expect(day.tokens + day.reservedTokens).toBeLessThanOrEqual(LIMIT);
}

/** Sends requests to both gateways until each has answered `wanted` 503s in a row; every answer
 * must be a 200 or that 503. Returns how many were admitted meanwhile. */
async function untilClosed(gateways: TestGateway[], key: string, wanted: number): Promise<number> {
  let admitted = 0;
  const deadline = Date.now() + 30_000;
  await Promise.all(
    gateways.map(async (g) => {
      let closed = 0;
      while (closed < wanted) {
        if (Date.now() > deadline) throw new Error(`${g.url} never failed closed`);
        const answer = await post(g.url, key, '/chat/completions', BODY);
        if (answer.status === 200) {
          admitted++;
          closed = 0;
        } else {
          expect(answer.status).toBe(503);
          expect(answer.json.error).toMatchObject({ code: 'quota_backend_unavailable', type: expect.any(String) });
          closed++;
        }
      }
    }),
  );
  return admitted;
}

/** Both gateways admit again, each from a lease taken after `before` (none of its ids). */
async function recovered(redis: RedisServer, gateways: TestGateway[], key: string, userId: string, before: Set<string>): Promise<void> {
  for (const g of gateways) {
    await until(async () => (await post(g.url, key, '/chat/completions', BODY)).status === 200, `${g.url} to admit again`, 30_000);
  }
  await until(async () => {
    await Promise.all(gateways.map((g) => post(g.url, key, '/chat/completions', BODY)));
    const fresh = [...(await leasesOf(redis, userId)).keys()].filter((id) => !before.has(id));
    return fresh.length >= 2;
  }, 'a new lease on each gateway', 30_000);
}

describe.each([
  ['frozen', false],
  ['restarted', true],
])('quota leases with Redis %s while leases are held', (_name, restart) => {
  let redis: RedisServer;
  let gateways: TestGateway[];
  const release = latch();

  beforeAll(async () => {
    // Persistent, so that a restart finds the users, keys and ledger it had.
    redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    gateways = await Promise.all([0, 1].map(() => startQuotaGateway(fake, redis.url, LEASES)));
  }, 60_000);
  afterAll(async () => {
    release.open();
    fake.reset();
    redis?.thaw();
    await Promise.all((gateways ?? []).map((g) => g.close()));
    await redis?.stop();
  });

  it('admit only what the leases held, answer 503 beyond it, and take new leases once Redis is back', async () => {
    const userId = `faults-${restart ? 'restart' : 'freeze'}`;
    const key = await userWithKey(gateways[0] as TestGateway, userId, { tokensPerDay: LIMIT });
    // Leases on both gateways, and two requests held at the upstream under them.
    for (let i = 0; i < 6; i++) for (const g of gateways) expect((await post(g.url, key, '/chat/completions', BODY)).status).toBe(200);
    await until(async () => (await leasesOf(redis, userId)).size === 2, 'a lease on each gateway', 10_000);
    let arrived = 0;
    fake.reset();
    fake.handle(async () => {
      // The first two wait; the rest get the default answer at once.
      if (arrived >= 2) return undefined;
      arrived++;
      await release.wait;
      return undefined;
    });
    const held = gateways.map((g) => post(g.url, key, '/chat/completions', BODY));
    await until(() => arrived === 2, 'two requests at the upstream');
    await withinLimit(gateways[0] as TestGateway, userId);
    // Once the leases stopped growing (they grow at each exchange while requests come), what they
    // hold bounds what the gateways may admit without Redis.
    let leases = await leasesOf(redis, userId);
    await until(async () => {
      await new Promise((resolve) => setTimeout(resolve, 400));
      const again = await leasesOf(redis, userId);
      const same = again.size === 2 && [...again].every(([id, t]) => leases.get(id) === t);
      leases = again;
      return same;
    }, 'the leases to stop growing', 20_000);
    const leasedTokens = [...leases.values()].reduce((a, b) => a + b, 0);
    // Each gateway has the caller in its one-second cache, as under steady traffic (a model list
    // takes no quota): the leases, not authentication, decide the first answers without Redis.
    for (const g of gateways) {
      const models = await request(`${g.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      await models.body.dump();
      expect(models.statusCode).toBe(200);
    }

    if (restart) await redis.kill();
    else redis.freeze();
    const admitted = await untilClosed(gateways, key, 3);
    // Whatever was admitted came out of what the leases held when Redis went away: each request
    // one after another, its worst case taken from a lease's free part and all but its usage
    // given back when it ended, so their usage, and the two held, fit in it.
    expect(admitted * REAL + 2 * WORST).toBeLessThanOrEqual(leasedTokens);
    if (restart) await redis.start();
    else redis.thaw();

    release.open();
    for (const answer of await Promise.all(held)) expect(answer.status).toBe(200);
    await recovered(redis, gateways, key, userId, new Set(leases.keys()));
    // The leases dropped while Redis was away expire (2 s) and are swept by the next admission.
    await until(async () => {
      await post(gateways[0]!.url, key, '/chat/completions', BODY);
      const now = await leasesOf(redis, userId);
      return [...leases.keys()].every((id) => !now.has(id));
    }, 'the dropped leases to expire', 20_000);
    // Every request answered 200 is charged: those of the dropped leases by their full charge.
    const served = 12 + 2 + admitted;
    await until(async () => (await usageOf(gateways[0] as TestGateway, userId)).day.tokens >= served * REAL, `the usage of the ${served} requests served to be charged`, 10_000);
    await withinLimit(gateways[0] as TestGateway, userId);
    await withinLimit(gateways[1] as TestGateway, userId);
    console.info(`quota leases, Redis ${restart ? 'restarted' : 'frozen'}: ${admitted} admitted (${admitted * REAL} tokens used) from ${leasedTokens} leased tokens while it was away`);
  }, 120_000);
});
