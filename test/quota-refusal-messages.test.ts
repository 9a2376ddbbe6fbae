// A quota refusal explains itself: the worst case it was sized on (prompt plus output), where the
// output bound came from when the request set no max_tokens (the model's cap, or
// quota.defaultMaxOutputTokens), what is left in the window, and the advice to set max_tokens.
// On both stores: what is left is read from the ledger that refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { outputCap } from '../src/quota/estimate.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { QUOTA_SETTINGS, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const MODEL = 'gpt-4o-mini';
const DEFAULT_MAX = QUOTA_SETTINGS.defaultMaxOutputTokens;
const SET_MAX = ' Set max_tokens (max_completion_tokens; max_output_tokens on /v1/responses) to the output you need, and the request is sized by that.';
const chat = (extra: Record<string, unknown> = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'Hello there' }], ...extra });
const RESETS = '\\d{4}-\\d\\d-\\d\\dT00:00:00\\.000Z';
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\$]/g, '\\$&');

function worstOf(body: Record<string, unknown>) {
  const e = estimateAt('/chat/completions', body, DEFAULT_MAX);
  return { prompt: e.promptTokens, output: e.maxOutputTokens, tokens: e.promptTokens + e.maxOutputTokens };
}

/** The refusal as a pattern: the exact message, the reset time left to vary. */
function refusal(message: string, resets = RESETS): RegExp {
  return new RegExp(`^${escape(message).replace('RESETS', resets)}$`);
}

describe.each([['memory'], ['redis']])('on the %s store', (backend) => {
  let fake: FakeUpstream;
  let gateway: TestGateway;
  let redis: RedisServer | undefined;

  beforeAll(async () => {
    fake = await startFake();
    if (backend === 'redis') redis = await startRedis();
    gateway = await startQuotaGateway(fake, redis?.url);
  }, 60_000);
  afterAll(async () => {
    await gateway?.close();
    await fake?.close();
    await redis?.stop();
  });

  it('without max_tokens: names the model cap it assumed, the tokens left of the day, and suggests max_tokens', async () => {
    const cap = outputCap(MODEL) as number;
    expect(cap).toBeGreaterThan(1000);
    const body = chat();
    const worst = worstOf(body);
    expect(worst.output).toBe(cap);
    const key = await userWithKey(gateway, 'no-max', { tokensPerDay: 1000 });
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.status).toBe(429);
    expect(answer.json).toEqual({
      error: {
        message: expect.stringMatching(
          refusal(
            `This request's worst case (${worst.tokens} tokens: ${worst.prompt} prompt tokens plus up to ${cap} output tokens (${cap} per answer: the model's output cap, as it sets no max_tokens)) does not fit in your daily quota (tokensPerDay): 1000 tokens left of 1000 tokens. It resets at RESETS.${SET_MAX}`,
          ),
        ),
        type: 'insufficient_quota',
        param: null,
        code: 'insufficient_quota',
      },
    });
    expect(answer.headers['x-should-retry']).toBe('false');
    expect(fake.requests).toHaveLength(0);

    // Taking the advice works.
    expect((await post(gateway.url, key, '/chat/completions', chat({ max_tokens: 100 }))).status).toBe(200);
  });

  it('with max_tokens: says so, counts what is used and reserved, and gives no advice', async () => {
    const key = await userWithKey(gateway, 'with-max', { tokensPerDay: 500 });
    expect((await post(gateway.url, key, '/chat/completions', chat({ max_tokens: 10 }))).status).toBe(200);
    await until(async () => (await usageOf(gateway, 'with-max')).concurrent.inFlight === 0, 'the request to settle');
    const used = (await usageOf(gateway, 'with-max')).day.tokens as number;
    expect(used).toBeGreaterThan(0);

    const body = chat({ max_tokens: 490 });
    const worst = worstOf(body);
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.status).toBe(429);
    expect(answer.json.error.message).toMatch(
      refusal(
        `This request's worst case (${worst.tokens} tokens: ${worst.prompt} prompt tokens plus up to 490 output tokens (490 per answer: its max_tokens)) does not fit in your daily quota (tokensPerDay): ${500 - used} tokens left of 500 tokens. It resets at RESETS.`,
      ),
    );
  });

  it('for a model whose output cap is unknown: names quota.defaultMaxOutputTokens', async () => {
    const body = chat({ model: 'my-local-llama' });
    const worst = worstOf(body);
    expect(worst.output).toBe(DEFAULT_MAX);
    const key = await userWithKey(gateway, 'local-model', { tokensPerMonth: 100 });
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.status).toBe(429);
    expect(answer.json.error.message).toMatch(
      refusal(
        `This request's worst case (${worst.tokens} tokens: ${worst.prompt} prompt tokens plus up to ${DEFAULT_MAX} output tokens (${DEFAULT_MAX} per answer: quota.defaultMaxOutputTokens, as it sets no max_tokens and the gateway does not know the model's output cap)) does not fit in your monthly quota (tokensPerMonth): 100 tokens left of 100 tokens. It resets at RESETS.${SET_MAX}`,
        '\\d{4}-\\d\\d-01T00:00:00\\.000Z',
      ),
    );
  });

  it('under a dollar limit: the worst case and what is left in dollars', async () => {
    const body = chat();
    const worst = worstOf(body);
    const price = new PriceTable({}).lookup(MODEL);
    expect(price).toBeDefined();
    const micros = costMicros(price!, { input: worst.prompt, cachedInput: 0, output: worst.output });
    const key = await userWithKey(gateway, 'dollar-day', { usdPerDay: 0.001 });
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.status).toBe(429);
    expect(answer.json.error).toMatchObject({ type: 'insufficient_quota', code: 'insufficient_quota', param: null });
    expect(answer.json.error.message).toMatch(
      refusal(
        `This request's worst case ($${(micros / 1e6).toFixed(6)}, ${worst.tokens} tokens: ${worst.prompt} prompt tokens plus up to ${worst.output} output tokens (${worst.output} per answer: the model's output cap, as it sets no max_tokens)) does not fit in your daily quota (usdPerDay): $0.001000 left of $0.001000. It resets at RESETS.${SET_MAX}`,
      ),
    );
  });

  it('a worst case above the whole tpm: explains the bound and suggests max_tokens, not to retry', async () => {
    const body = chat();
    const worst = worstOf(body);
    const key = await userWithKey(gateway, 'tpm-small', { tpm: 2000 });
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.status).toBe(429);
    expect(answer.headers['x-should-retry']).toBe('false');
    expect(answer.json).toEqual({
      error: {
        message: `Request too large: it may use up to ${worst.tokens} tokens: ${worst.prompt} prompt tokens plus up to ${worst.output} output tokens (${worst.output} per answer: the model's output cap, as it sets no max_tokens), more than the tokens per minute limit (tpm 2000) allows. Lower max_tokens or shorten the prompt.${SET_MAX}`,
        type: 'tokens',
        param: null,
        code: 'rate_limit_exceeded',
      },
    });
  });
});
