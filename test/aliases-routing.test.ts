// Aliases through the whole request path: the official SDK with an alias, routing by the public
// name (an upstream's own alias wins there), the user's model list checked by the public name,
// prices and the request log from the one decision.
import OpenAI, { PermissionDeniedError } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const KEY_A = 'sk-pool-alias-route-a1';
const KEY_B = 'sk-pool-alias-route-b1';

let fakeA: FakeUpstream;
let fakeB: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  registerPoolKey(KEY_A);
  registerPoolKey(KEY_B);
  fakeA = await startFakeUpstream({ keys: [KEY_A] });
  fakeB = await startFakeUpstream({ keys: [KEY_B] });
  const config: Partial<Config> = {
    aliases: { fast: 'model-a', quick: 'model-a-quick' },
    // The public name priced far dearer than its target: a charge at this price would show.
    prices: { 'model-a': { input: 3, output: 7 }, fast: { input: 1000, output: 1000 }, 'model-b1': { input: 11, output: 13 } },
    upstreams: [
      { id: 'a', baseUrl: fakeA.baseUrl, models: ['model-a', 'gpt-4o*'], strategy: 'round-robin', keys: [{ id: 'a1', key: KEY_A, weight: 1 }] },
      // Its own `quick` wins over the top-level one here, and only here.
      { id: 'b', baseUrl: fakeB.baseUrl, models: ['model-b*'], strategy: 'round-robin', aliases: { quick: 'model-b1' }, keys: [{ id: 'b1', key: KEY_B, weight: 1 }] },
    ],
  };
  gateway = await startGateway({ config });
});
afterAll(async () => {
  await gateway?.close();
  await fakeA?.close();
  await fakeB?.close();
});
beforeEach(() => {
  fakeA.reset();
  fakeB.reset();
});

async function clientFor(userId: string, user: Record<string, unknown> = {}): Promise<OpenAI> {
  const key = await gateway.createUserKey(userId, user);
  registerSecret(key);
  return new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
}

describe('the official SDK', () => {
  it('uses an alias, plain and streamed; the upstream gets its own model name', async () => {
    const client = await clientFor('sdk-user');
    const completion = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.model).toBe('model-a');
    const stream = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(fakeA.requests.map((r) => (r.json as { model: string }).model)).toEqual(['model-a', 'model-a']);
    expect(fakeB.requests).toHaveLength(0);
  });

  it("routes an alias by the upstream's own table: it wins over the top-level one there", async () => {
    const client = await clientFor('route-user');
    const completion = await client.chat.completions.create({ model: 'quick', messages: [{ role: 'user', content: 'Hi' }] });
    expect(completion.model).toBe('model-b1');
    expect(fakeA.requests).toHaveLength(0);
    expect((fakeB.requests[0]?.json as { model: string }).model).toBe('model-b1');
  });

  it('retrieves GET /v1/models/{alias} as the target, from the upstream that serves it', async () => {
    const client = await clientFor('retrieve-user');
    fakeA.handle((req) => (req.method === 'GET' ? { body: { id: decodeURIComponent(req.path.split('/').pop() ?? ''), object: 'model', created: 1, owned_by: 'system' } } : undefined));
    const model = await client.models.retrieve('fast');
    expect(model.id).toBe('model-a');
    expect(fakeA.requests.map((r) => r.path)).toEqual(['/v1/models/model-a']);
  });
});

describe("the user's model list", () => {
  it('lets a user allowed only the alias use it, and not the upstream name', async () => {
    const client = await clientFor('alias-only', { models: ['fast'] });
    await expect(client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'Hi' }] })).resolves.toBeDefined();
    const refused = await client.chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'Hi' }] }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(PermissionDeniedError);
    expect((refused as PermissionDeniedError).error).toMatchObject({ code: 'model_not_allowed', param: 'model', type: 'invalid_request_error' });
    expect(fakeA.requests).toHaveLength(1);
  });

  it('lets a user allowed both use both', async () => {
    const client = await clientFor('alias-and-target', { models: ['fast', 'model-a'] });
    await client.chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'Hi' }] });
    await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'Hi' }] });
    expect(fakeA.requests).toHaveLength(2);
  });

  it('refuses an alias to a user allowed only its target', async () => {
    const client = await clientFor('target-only', { models: ['model-a'] });
    const refused = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'Hi' }] }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(PermissionDeniedError);
    expect(fakeA.requests).toHaveLength(0);
  });
});

describe('prices and the request log', () => {
  it("charge the upstream model's price and record both names", async () => {
    const client = await clientFor('priced-user', { limits: { usdPerDay: 100 } });
    const completion = await client.chat.completions.create({ model: 'fast', messages: [{ role: 'user', content: 'Hi there' }] }).withResponse();
    const usage = completion.data.usage;
    expect(usage).toBeDefined();
    // model-a: $3 and $7 per million tokens, 3 and 7 micro-dollars per token.
    const expected = (usage?.prompt_tokens ?? 0) * 3 + (usage?.completion_tokens ?? 0) * 7;
    const requestId = completion.response.headers.get('x-keyrelay-request-id');
    const log = await gateway.admin('GET', '/requests?user=priced-user');
    const record = (log.json.data as Array<Record<string, unknown>>).find((r) => r.requestId === requestId);
    expect(record).toMatchObject({ model: 'fast', upstreamModel: 'model-a', costMicros: expected, upstream: 'a' });
    const user = await gateway.admin('GET', '/users/priced-user');
    // The user's quota window was charged the same.
    expect(user.json.usage.day.usdMicros).toBe(expected);
    const line = gateway.logs.find((l) => l.requestId === requestId);
    expect(line).toMatchObject({ model: 'fast', upstreamModel: 'model-a', costMicros: expected });
  });

  it('records no upstreamModel for a model that is no alias', async () => {
    const client = await clientFor('plain-user');
    const completion = await client.chat.completions.create({ model: 'model-a', messages: [{ role: 'user', content: 'Hi' }] }).withResponse();
    const requestId = completion.response.headers.get('x-keyrelay-request-id');
    const log = await gateway.admin('GET', '/requests?user=plain-user');
    const record = (log.json.data as Array<Record<string, unknown>>).find((r) => r.requestId === requestId);
    expect(record?.model).toBe('model-a');
    expect(record).not.toHaveProperty('upstreamModel');
  });
});
