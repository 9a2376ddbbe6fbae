// The official SDK reads the gateway's quota answers as it reads OpenAI's: RateLimitError with the
// right code, and no retry of an insufficient_quota answer (x-should-retry: false).
import OpenAI, { RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, userWithKey } from './helpers/quota-fixture.js';

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

/** A client that counts the HTTP requests it makes, retries included. */
function client(apiKey: string, maxRetries: number) {
  const counter = { calls: 0 };
  const sdk = new OpenAI({
    apiKey,
    baseURL: gateway.baseUrl,
    maxRetries,
    fetch: (url, init) => {
      counter.calls++;
      return fetch(url, init);
    },
  });
  return { sdk, counter };
}

const messages = [{ role: 'user' as const, content: 'Hi' }];

describe('the official SDK', () => {
  it('raises RateLimitError insufficient_quota and does not retry it', async () => {
    const key = await userWithKey(gateway, 'sdk-quota', { tokensPerDay: 10 });
    const { sdk, counter } = client(key, 3);
    const error = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages, max_tokens: 100 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).code).toBe('insufficient_quota');
    expect((error as RateLimitError).type).toBe('insufficient_quota');
    expect(counter.calls).toBe(1);
    expect(fake.requests).toHaveLength(0);
  });

  it('raises RateLimitError rate_limit_exceeded for a spent rpm', async () => {
    const key = await userWithKey(gateway, 'sdk-rpm', { rpm: 1 });
    const { sdk } = client(key, 0);
    await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages });
    const error = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).code).toBe('rate_limit_exceeded');
    expect((error as RateLimitError).type).toBe('requests');
    expect((error as RateLimitError).headers.get('retry-after-ms')).toMatch(/^\d+$/);
  });
});
