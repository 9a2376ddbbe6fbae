// GET /admin/users/{id} shows the user's usage in each current window, and limits changed with
// PATCH /admin/users/{id} apply to the next request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 100 };

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

describe('GET /admin/users/{id}', () => {
  it('shows usage, reservations and limits of the day, the month, the minute and in flight', async () => {
    const limits = { rpm: 30, tpm: 50_000, tokensPerDay: 100_000, tokensPerMonth: 1_000_000, usdPerDay: 2.5, usdPerMonth: 40, maxConcurrent: 4 };
    const key = await userWithKey(gateway, 'shown', limits, { name: 'Shown' });
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
    await until(async () => (await usageOf(gateway, 'shown')).concurrent.inFlight === 0, 'the request to settle');

    const now = new Date();
    const day = now.toISOString().slice(0, 10);
    const nextDay = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString();
    const nextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString();
    const tokens = 1 + FAKE_COMPLETION_TOKENS;
    const micros = Math.ceil((1 * 150_000 + FAKE_COMPLETION_TOKENS * 600_000) / 1_000_000);
    const spent = { requests: 1, tokens, usd: micros / 1e6, usdMicros: micros, reservedTokens: 0, reservedUsdMicros: 0, estimatedRequests: 0 };
    const answer = await gateway.admin('GET', '/users/shown');
    expect(answer).toEqual({
      status: 200,
      json: {
        id: 'shown',
        name: 'Shown',
        limits,
        createdAt: expect.any(String),
        usage: {
          day: { window: day, resetsAt: nextDay, ...spent, limits: { tokens: 100_000, usd: 2.5 } },
          month: { window: day.slice(0, 7), resetsAt: nextMonth, ...spent, limits: { tokens: 1_000_000, usd: 40 } },
          minute: {
            requests: { limit: 30, remaining: 29, resetMs: expect.any(Number) },
            tokens: { limit: 50_000, remaining: expect.any(Number), resetMs: expect.any(Number) },
          },
          concurrent: { inFlight: 0, limit: 4 },
        },
      },
    });
  });

  it('answers 404 for an unknown user', async () => {
    expect((await gateway.admin('GET', '/users/nobody')).status).toBe(404);
  });
});

describe('PATCH /admin/users/{id} with limits', () => {
  it('applies the new limits to the next request', async () => {
    const key = await userWithKey(gateway, 'patched', {});
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
    expect((await gateway.admin('PATCH', '/users/patched', { limits: { tokensPerDay: 10 } })).status).toBe(200);
    const answer = await post(gateway.url, key, '/chat/completions', BODY);
    expect(answer.status).toBe(429);
    expect(answer.json.error.code).toBe('insufficient_quota');
    expect((await gateway.admin('PATCH', '/users/patched', { limits: {} })).status).toBe(200);
    expect((await post(gateway.url, key, '/chat/completions', BODY)).status).toBe(200);
  });
});
