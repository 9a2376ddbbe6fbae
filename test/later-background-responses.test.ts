// A `background: true` response is answered `queued`, with no usage: its worst case stays reserved
// until the gateway sees it end (retrieved, resumed as a stream, cancelled), and it is charged
// once, from either of two gateway processes sharing one Redis, however often it is retrieved.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { PriceTable } from '../src/quota/prices.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { POOL_KEY, QUOTA_SETTINGS, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const MODEL = 'gpt-4o-mini';
const BODY = { model: MODEL, input: 'Write one short line about the sea, please.', max_output_tokens: 300 };
const INPUT = promptTokens(BODY.input);
const TOKENS = INPUT + FAKE_COMPLETION_TOKENS;
const PRICE = new PriceTable().lookup(MODEL)!;
const MICROS = Math.ceil((INPUT * PRICE.input + FAKE_COMPLETION_TOKENS * PRICE.output) / 1_000_000);
const WORST = (() => {
  const e = estimateAt('/responses', BODY, QUOTA_SETTINGS.defaultMaxOutputTokens);
  return e.promptTokens + e.maxOutputTokens;
})();

let fake: FakeUpstream;
let redis: RedisServer;
let first: TestGateway;
let child: ChildGateway;

beforeAll(async () => {
  fake = await startFake();
  redis = await startRedis();
  first = await startQuotaGateway(fake, redis.url);
  child = await startChildGateway({ REDIS_URL: redis.url, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl });
});
afterAll(async () => {
  await child?.stop();
  await first?.close();
  await fake?.close();
  await redis?.stop();
});

const sdk = (baseURL: string, apiKey: string) => new OpenAI({ baseURL, apiKey, maxRetries: 0 });

async function records(userId: string): Promise<any[]> {
  return (await first.admin('GET', `/requests?user=${userId}&limit=1000`)).json.data;
}

async function startBackground(userId: string) {
  const key = await userWithKey(first, userId, { usdPerDay: 10, tokensPerDay: 100_000 });
  const here = sdk(first.baseUrl, key);
  const { data: queued, response } = await here.responses.create({ ...BODY, background: true }).withResponse();
  expect(queued.status).toBe('queued');
  const reserved = await usageOf(first, userId);
  expect(reserved.day).toMatchObject({ tokens: 0, usdMicros: 0, reservedTokens: WORST });
  return { here, there: sdk(`${child.url}/v1`, key), id: queued.id, createdBy: response.headers.get('x-keyrelay-request-id') };
}

describe('a background response', () => {
  it('is charged once when first retrieved completed, from either process', async () => {
    const { here, there, id, createdBy } = await startBackground('bg-a');
    const done = await there.responses.retrieve(id);
    expect(done.status).toBe('completed');
    expect(done.usage?.total_tokens).toBe(TOKENS);
    await until(async () => (await usageOf(first, 'bg-a')).day.tokens === TOKENS, 'the response to be charged');
    for (const client of [here, there, here]) {
      expect((await client.responses.retrieve(id)).status).toBe('completed');
      // Cancelling a response that has ended answers it as it is; nothing more is charged.
      await client.responses.cancel(id).catch(() => undefined);
    }
    // 1 create + 1 retrieve + 3 × 2 looks, each recorded after any charge it made.
    await until(async () => (await records('bg-a')).filter((r) => !r.chargedLater).length === 8, 'every request to be recorded');
    const usage = await usageOf(first, 'bg-a');
    expect(usage.day).toMatchObject({ tokens: TOKENS, usdMicros: MICROS, reservedTokens: 0, reservedUsdMicros: 0, estimatedRequests: 0 });
    const charges = (await records('bg-a')).filter((r) => r.chargedLater);
    expect(charges).toHaveLength(1);
    expect(charges[0]).toMatchObject({ createdBy, operation: 'createResponse', model: MODEL, costMicros: MICROS });
    // The create's own record shows no tokens: the charge is the record above.
    const create = (await records('bg-a')).find((r) => r.requestId === createdBy);
    expect(create).toMatchObject({ operation: 'createResponse', status: 200 });
    expect(create.tokens).toBeUndefined();
  });

  it('is charged from the stream when it is resumed with ?stream=true', async () => {
    const { there, id } = await startBackground('bg-b');
    const stream = await there.responses.retrieve(id, { stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types).toEqual(['response.in_progress', 'response.completed']);
    await until(async () => (await usageOf(first, 'bg-b')).day.tokens === TOKENS, 'the streamed response to be charged');
    expect((await usageOf(first, 'bg-b')).day).toMatchObject({ usdMicros: MICROS, reservedTokens: 0 });
  });

  it('cancelled before it ran, is released: nothing ran, nothing is charged', async () => {
    const { here, id } = await startBackground('bg-c');
    const cancelled = await here.responses.cancel(id);
    expect(cancelled.status).toBe('cancelled');
    await until(async () => (await usageOf(first, 'bg-c')).day.reservedTokens === 0, 'the reservation to be released');
    expect((await usageOf(first, 'bg-c')).day).toMatchObject({ tokens: 0, usdMicros: 0 });
    // Seen again later as cancelled: still nothing.
    await here.responses.cancel(id);
    expect((await usageOf(first, 'bg-c')).day).toMatchObject({ tokens: 0, usdMicros: 0, reservedTokens: 0 });
  });

  it('streamed in its own create, is charged there, at once', async () => {
    const key = await userWithKey(first, 'bg-d', { usdPerDay: 10 });
    const stream = await sdk(first.baseUrl, key).responses.create({ ...BODY, background: true, stream: true });
    let last = '';
    for await (const event of stream) last = event.type;
    expect(last).toBe('response.completed');
    await until(async () => (await usageOf(first, 'bg-d')).day.tokens === TOKENS, 'the streamed create to be charged');
    expect((await usageOf(first, 'bg-d')).day).toMatchObject({ usdMicros: MICROS, reservedTokens: 0, reservedUsdMicros: 0 });
  });

  it('deleted before the gateway saw it end stays reserved at its worst case (charged so when its lease ends)', async () => {
    const { here, id } = await startBackground('bg-e');
    await here.responses.delete(id);
    const usage = await usageOf(first, 'bg-e');
    expect(usage.day).toMatchObject({ tokens: 0, reservedTokens: WORST });
  });
});
