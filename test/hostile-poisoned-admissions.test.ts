// One user's request cannot fail everyone else's admissions. The worst case of /v1/completions is
// max_tokens × n × prompts: on a model of unknown output cap and no output price (a moderation
// model), a user with only a dollar limit once passed the price check with a worst case of 1e21
// tokens, which Redis refused to count, failing the one script call that carried every admission
// of that round: the others got 503. Here, on each store, the poisoned request is refused with a
// clear 400 while 20 other users' requests sent with it are all admitted, round after round; the
// attacker's rpm still counts it; and a limit of 1e300 written straight to the store (past what
// the admin API takes) opens no such path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { MAX_AMOUNT } from '../src/quota/amounts.js';
import { estimateAt } from './helpers/estimate.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { POOL_KEY, QUOTA_SETTINGS, post, startFake, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const ROUNDS = 3;
const OTHERS = 20;
// 1000 prompts × n 128 × max_tokens 2^53 - 1: about 1.15e21 tokens.
const POISONED = {
  model: 'omni-moderation-latest',
  prompt: Array.from({ length: 1000 }, () => 'x'),
  n: 128,
  max_tokens: Number.MAX_SAFE_INTEGER,
};
// The same on a model the gateway knows neither a price nor an output cap of.
const POISONED_HOUSE = { ...POISONED, model: 'house-model' };
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 50 };

const worst = (route: string, json: Record<string, unknown>): number => {
  const e = estimateAt(route, json, QUOTA_SETTINGS.defaultMaxOutputTokens);
  return e.promptTokens + e.maxOutputTokens;
};

describe.each(STORE_BACKENDS)('on the %s store', (_name, make) => {
  let backend: Backend;
  let fake: FakeUpstream;
  let gateway: TestGateway;
  const others: string[] = [];

  beforeAll(async () => {
    backend = await make();
    fake = await startFake();
    gateway = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { quota: QUOTA_SETTINGS },
      store: backend.store,
    });
    // Half with no limits at all, half with every kind: both go through the ledger's script.
    for (let i = 0; i < OTHERS; i++) {
      others.push(await userWithKey(gateway, `other${i}`, i % 2 ? {} : { rpm: 1000, tpm: 1_000_000, tokensPerDay: 1_000_000, usdPerDay: 10 }));
    }
  });
  afterAll(async () => {
    await gateway.close();
    await fake.close();
    await backend.stop();
  });

  /** The poisoned request sent together with one chat from each other user, `rounds` times. */
  async function alongsideOthers(key: string, route: string, body: Record<string, unknown>) {
    const attacks = [];
    for (let round = 0; round < ROUNDS; round++) {
      const [attack, ...good] = await Promise.all([post(gateway.url, key, route, body), ...others.map((k) => post(gateway.url, k, '/chat/completions', CHAT))]);
      expect(good.map((a) => a.status)).toEqual(Array(OTHERS).fill(200));
      attacks.push(attack);
    }
    return attacks;
  }

  it('refuses a dollar-limited user\'s worst case past what the ledger counts, and admits everyone sent with it', async () => {
    expect(worst('/completions', POISONED)).toBeGreaterThan(1e21);
    const key = await userWithKey(gateway, 'mallory', { usdPerDay: 1, rpm: 1 });
    const [first, ...later] = await alongsideOthers(key, '/completions', POISONED);

    expect(first?.status).toBe(400);
    expect(first?.json).toEqual({
      error: {
        message: expect.stringContaining(`is larger than this gateway can count (${MAX_AMOUNT} tokens or micro-dollars)`),
        type: 'invalid_request_error',
        param: 'max_tokens',
        code: 'invalid_request',
      },
    });
    // The refusal took mallory's one request of the minute: the next ones wait for it.
    for (const answer of later) {
      expect(answer.status).toBe(429);
      expect(answer.json.error).toMatchObject({ code: 'rate_limit_exceeded', type: 'requests' });
      expect(Number(answer.headers['retry-after-ms'])).toBeGreaterThan(0);
    }
    expect(fake.requests.filter((r) => r.path === '/v1/completions')).toHaveLength(0);
    const usage = await usageOf(gateway, 'mallory');
    expect(usage.day).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
  });

  it('applies a limit of 1e300 written straight to the store as the largest there is, breaking no one', async () => {
    expect(worst('/completions', POISONED_HOUSE)).toBeGreaterThan(1e21);
    await backend.store.createUser({ id: 'lavish', limits: { tokensPerDay: 1e300 }, createdAt: new Date().toISOString() });
    const created = await gateway.admin('POST', '/users/lavish/keys', {});
    expect(created.status).toBe(201);
    const key = created.json.key as string;
    registerSecret(key);

    const attacks = await alongsideOthers(key, '/completions', POISONED_HOUSE);
    expect(attacks.map((a) => [a.status, a.json?.error?.code])).toEqual(Array(ROUNDS).fill([400, 'invalid_request']));
    // An ordinary request of theirs goes through.
    expect((await post(gateway.url, key, '/chat/completions', CHAT)).status).toBe(200);
  });
});
