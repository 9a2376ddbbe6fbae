// What a user gets at each limit (README, "Errors"; docs/reliability.md, case 10): 429
// rate_limit_exceeded with retry-after(-ms) for rpm, tpm and concurrency; 429 insufficient_quota
// with x-should-retry: false and retry-after to the window's end for spent quotas, decided on the
// worst case before any upstream call; 400 for a bad max_tokens; and the user's own x-ratelimit-*.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, RATE_LIMIT_HEADERS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { QUOTA_SETTINGS, latch, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

const chat = (maxTokens: number) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: maxTokens });
const worst = (maxTokens: number): number => {
  const e = estimateAt('/chat/completions', chat(maxTokens), QUOTA_SETTINGS.defaultMaxOutputTokens);
  return e.promptTokens + e.maxOutputTokens;
};

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

describe('a malformed max_tokens', () => {
  it.each([[-1, 1], [1.5, 2], ['100', 3], [1e300, 4]])('(%s) is a 400 before any upstream call, and costs nothing', async (value, n) => {
    const id = `bad-max-${n}`;
    const key = await userWithKey(gateway, id, { tokensPerDay: 1000 });
    const answer = await post(gateway.url, key, '/chat/completions', { ...chat(1), max_tokens: value });
    expect(answer.status).toBe(400);
    expect(answer.json).toEqual({
      error: { message: '`max_tokens` must be a non-negative integer.', type: 'invalid_request_error', param: 'max_tokens', code: 'invalid_request' },
    });
    expect(fake.requests).toHaveLength(0);
    expect((await usageOf(gateway, id)).day).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
  });
});

describe('a spent quota', () => {
  it('refuses a worst case above what is left before any upstream call, until the end of the UTC day', async () => {
    const key = await userWithKey(gateway, 'daily', { tokensPerDay: worst(100) - 1 });
    const before = Date.now();
    const answer = await post(gateway.url, key, '/chat/completions', chat(100));
    const after = Date.now();
    expect(answer.status).toBe(429);
    expect(answer.json).toEqual({
      error: {
        message: expect.stringMatching(
          new RegExp(
            `^This request's worst case \\(${worst(100)} tokens: \\d+ prompt tokens plus up to 100 output tokens \\(100 per answer: its max_tokens\\)\\) does not fit in your daily quota \\(tokensPerDay\\): ${worst(100) - 1} tokens left of ${worst(100) - 1} tokens\\. It resets at \\d{4}-\\d\\d-\\d\\dT00:00:00\\.000Z\\.$`,
          ),
        ),
        type: 'insufficient_quota',
        param: null,
        code: 'insufficient_quota',
      },
    });
    expect(answer.headers['x-should-retry']).toBe('false');
    const endOfDay = Date.UTC(new Date(before).getUTCFullYear(), new Date(before).getUTCMonth(), new Date(before).getUTCDate() + 1);
    const retry = Number(answer.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(Math.ceil((endOfDay - after) / 1000));
    expect(retry).toBeLessThanOrEqual(Math.ceil((endOfDay - before) / 1000));
    expect(fake.requests).toHaveLength(0);

    // The same request asking for less output fits.
    expect((await post(gateway.url, key, '/chat/completions', chat(50))).status).toBe(200);
  });

  it('counts money in whole micro-dollars, and refuses a model without a price under a dollar limit', async () => {
    const key = await userWithKey(gateway, 'dollars', { usdPerDay: 0.01 });
    expect((await post(gateway.url, key, '/chat/completions', chat(10))).status).toBe(200);
    await until(async () => (await usageOf(gateway, 'dollars')).concurrent.inFlight === 0, 'the request to settle');
    // gpt-4o-mini: 1 prompt token at $0.15 and the fake's completion at $0.60 per million, rounded up.
    const micros = Math.ceil((1 * 150_000 + FAKE_COMPLETION_TOKENS * 600_000) / 1_000_000);
    expect((await usageOf(gateway, 'dollars')).day).toMatchObject({ usdMicros: micros, usd: micros / 1e6, limits: { tokens: null, usd: 0.01 } });

    const answer = await post(gateway.url, key, '/chat/completions', { ...chat(10), model: 'my-local-llama' });
    expect(answer.status).toBe(403);
    expect(answer.json.error).toMatchObject({ type: 'invalid_request_error', param: 'model', code: 'model_not_allowed' });
  });
});

describe('rate limits', () => {
  it('answers rpm with rate_limit_exceeded of type requests, retry-after and retry-after-ms', async () => {
    const key = await userWithKey(gateway, 'rpm', { rpm: 2 });
    expect((await post(gateway.url, key, '/chat/completions', chat(10))).status).toBe(200);
    expect((await post(gateway.url, key, '/chat/completions', chat(10))).status).toBe(200);
    const answer = await post(gateway.url, key, '/chat/completions', chat(10));
    expect(answer.status).toBe(429);
    expect(answer.json).toEqual({
      error: { message: expect.stringMatching(/^Rate limit reached for requests per minute \(rpm\)\. Retry in \d+ ms\.$/), type: 'requests', param: null, code: 'rate_limit_exceeded' },
    });
    const ms = Number(answer.headers['retry-after-ms']);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThanOrEqual(30_000);
    expect(answer.headers['retry-after']).toBe(String(Math.ceil(ms / 1000)));
    expect(answer.headers['x-ratelimit-limit-requests']).toBe('2');
    expect(answer.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(answer.headers['x-should-retry']).toBeUndefined();
    expect(fake.requests).toHaveLength(2);
  });

  it('answers tpm with rate_limit_exceeded of type tokens; a request larger than the whole limit is not to be retried', async () => {
    const key = await userWithKey(gateway, 'tpm', { tpm: worst(100) + 10 });
    // The first holds its worst case while it is in flight (it gives back what it did not use).
    const release = latch();
    const arrived = latch();
    fake.handle(async () => {
      arrived.open();
      await release.wait;
      return undefined;
    });
    const first = post(gateway.url, key, '/chat/completions', chat(100));
    await arrived.wait;
    const again = await post(gateway.url, key, '/chat/completions', chat(100));
    expect(again.status).toBe(429);
    expect(again.json.error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded', param: null });
    expect(Number(again.headers['retry-after-ms'])).toBeGreaterThan(0);
    release.open();
    expect((await first).status).toBe(200);

    const huge = await post(gateway.url, key, '/chat/completions', chat(1000));
    expect(huge.status).toBe(429);
    expect(huge.json.error).toMatchObject({ type: 'tokens', code: 'rate_limit_exceeded' });
    expect(huge.json.error.message).toMatch(/^Request too large/);
    expect(huge.headers['x-should-retry']).toBe('false');
  });

  it('answers maxConcurrent with rate_limit_exceeded of type requests while the others are in flight', async () => {
    const key = await userWithKey(gateway, 'concurrent', { maxConcurrent: 1 });
    const release = latch();
    const arrived = latch();
    fake.handle(async () => {
      arrived.open();
      await release.wait;
      return undefined;
    });
    const first = post(gateway.url, key, '/chat/completions', chat(10));
    await arrived.wait;
    const second = await post(gateway.url, key, '/chat/completions', chat(10));
    expect(second.status).toBe(429);
    expect(second.json.error).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded' });
    expect(second.headers['retry-after-ms']).toBe('1000');
    release.open();
    expect((await first).status).toBe(200);
  });
});

describe('x-ratelimit-* headers', () => {
  it("carry the user's own limits instead of the pool key's", async () => {
    const key = await userWithKey(gateway, 'headers', { rpm: 60, tpm: 10_000 });
    const answer = await post(gateway.url, key, '/chat/completions', chat(100));
    expect(answer.status).toBe(200);
    const ratelimit = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => name.startsWith('x-ratelimit-')));
    expect(ratelimit).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '1s',
      'x-ratelimit-limit-tokens': '10000',
      'x-ratelimit-remaining-tokens': String(10_000 - worst(100)),
      'x-ratelimit-reset-tokens': expect.stringMatching(/^\d+(\.\d+)?m?s$/),
    });
    for (const [name, value] of Object.entries(RATE_LIMIT_HEADERS)) expect(answer.headers[name]).not.toBe(value);
  });

  it('are absent for a user without per-minute limits', async () => {
    const key = await userWithKey(gateway, 'no-headers', { tokensPerDay: 100_000 });
    const answer = await post(gateway.url, key, '/chat/completions', chat(100));
    expect(Object.keys(answer.headers).filter((name) => name.startsWith('x-ratelimit-'))).toEqual([]);
  });
});
