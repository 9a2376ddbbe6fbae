// docs/reliability.md, case 6: a quota that fits exactly 10 requests, 50 fired at once at one gateway: exactly
// 10 admitted, the other 40 refused with insufficient_quota, and the ledger never over the limit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { QUOTA_SETTINGS, latch, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };
const estimate = estimateAt('/chat/completions', BODY, QUOTA_SETTINGS.defaultMaxOutputTokens);
const WORST = estimate.promptTokens + estimate.maxOutputTokens;
const LIMIT = 10 * WORST;
// The fake upstream's usage for BODY: ceil(2 characters / 4) prompt tokens, and its fixed answer.
const REAL = 1 + FAKE_COMPLETION_TOKENS;

describe.each([['memory'], ['redis']])('one gateway process, %s store', (kind) => {
  let fake: FakeUpstream;
  let redis: RedisServer | undefined;
  let gateway: TestGateway;

  beforeAll(async () => {
    fake = await startFake();
    redis = kind === 'redis' ? await startRedis() : undefined;
    gateway = await startQuotaGateway(fake, redis?.url);
  });
  afterAll(async () => {
    await gateway.close();
    await fake.close();
    await redis?.stop();
  });

  it('admits exactly 10 of 50 concurrent requests and charges their real usage', async () => {
    const key = await userWithKey(gateway, 'ten', { tokensPerDay: LIMIT });
    const release = latch();
    let arrived = 0;
    fake.handle(async () => {
      arrived++;
      await release.wait;
      return undefined; // the default answer, with its usage
    });

    let refused = 0;
    const answers = Array.from({ length: 50 }, () =>
      post(gateway.url, key, '/chat/completions', BODY).then((a) => {
        if (a.status === 429) refused++;
        return a;
      }),
    );
    // Every request has been decided: the admitted ones wait at the upstream, the rest are back.
    await until(() => arrived + refused === 50, 'all 50 requests to be admitted or refused');
    const held = await usageOf(gateway, 'ten');
    expect(held.day).toMatchObject({ requests: 10, tokens: 0, reservedTokens: LIMIT, limits: { tokens: LIMIT, usd: null } });

    release.open();
    const results = await Promise.all(answers);
    const ok = results.filter((a) => a.status === 200);
    const no = results.filter((a) => a.status === 429);
    expect(ok).toHaveLength(10);
    expect(no).toHaveLength(40);
    expect(fake.requests).toHaveLength(10);
    for (const a of no) {
      expect(a.json.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota', param: null });
      expect(a.headers['x-should-retry']).toBe('false');
      expect(Number(a.headers['retry-after'])).toBeGreaterThan(0);
    }

    await until(async () => (await usageOf(gateway, 'ten')).concurrent.inFlight === 0, 'every request to settle');
    const settled = await usageOf(gateway, 'ten');
    expect(settled.day).toMatchObject({ requests: 10, tokens: 10 * REAL, reservedTokens: 0, estimatedRequests: 0 });
    console.info(
      `quota concurrency, one process (${kind}): 50 sent, ${ok.length} admitted, ${no.length} refused; ` +
        `reserved at peak ${held.day.reservedTokens} of ${LIMIT} tokens; charged ${settled.day.tokens} tokens (limit ${LIMIT})`,
    );
  });
});
