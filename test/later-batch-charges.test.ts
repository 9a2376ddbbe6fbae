// A batch is charged once, at the batch price, whoever looks at it: created through one gateway,
// seen ended through a second gateway process sharing the Redis, its output fetched again and
// again through both, listed, cancelled after the end. The charge is the usage of its output
// file's lines at half the model's price, marked in the request log as charged later and linked
// to the create.
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { PriceTable } from '../src/quota/prices.js';
import { BATCH_DISCOUNT } from '../src/quota/later.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { POOL_KEY, QUOTA_SETTINGS, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const MODEL = 'gpt-4o-mini';
const LINES = Array.from({ length: 5 }, (_, i) => ({
  custom_id: `request-${i}`,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model: MODEL, messages: [{ role: 'user', content: `Say hello to number ${i}, please, in a friendly way.` }], max_tokens: 200 },
}));
const JSONL = LINES.map((l) => JSON.stringify(l)).join('\n') + '\n';

// What the fake upstream reports for each line, and what that costs at the batch price.
const INPUT = LINES.reduce((sum, l) => sum + promptTokens(l.body.messages), 0);
const OUTPUT = LINES.length * FAKE_COMPLETION_TOKENS;
const PRICE = new PriceTable().lookup(MODEL)!;
const FULL_MICROS = Math.ceil((INPUT * PRICE.input + OUTPUT * PRICE.output) / 1_000_000);
const BATCH_MICROS = Math.ceil(FULL_MICROS * BATCH_DISCOUNT);
const WORST_TOKENS = LINES.reduce((sum, l) => {
  const e = estimateAt('/chat/completions', l.body, QUOTA_SETTINGS.defaultMaxOutputTokens);
  return sum + e.promptTokens + e.maxOutputTokens;
}, 0);

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
  const answer = await first.admin('GET', `/requests?user=${userId}&limit=1000`);
  return answer.json.data;
}

async function createBatch(client: OpenAI) {
  const file = await client.files.create({ file: await toFile(Buffer.from(JSONL), 'input.jsonl'), purpose: 'batch' });
  const { data: batch, response } = await client.batches
    .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    .withResponse();
  return { batch, createdBy: response.headers.get('x-keyrelay-request-id') };
}

describe('a batch through two gateway processes on one Redis', () => {
  it('is reserved at its worst case, then charged once at the batch price, however often it is looked at', async () => {
    const key = await userWithKey(first, 'batcher', { usdPerDay: 100, tokensPerDay: 1_000_000 }, { models: [MODEL] });
    const here = sdk(first.baseUrl, key);
    const there = sdk(`${child.url}/v1`, key);

    const { batch, createdBy } = await createBatch(here);
    expect(batch.status).toBe('validating');
    const reserved = await usageOf(first, 'batcher');
    expect(reserved.day).toMatchObject({ tokens: 0, usdMicros: 0, reservedTokens: WORST_TOKENS });
    expect(reserved.day.reservedUsdMicros).toBeGreaterThan(BATCH_MICROS);

    // The other process is the first to see it ended: it charges, reading the output itself.
    const ended = await there.batches.retrieve(batch.id);
    expect(ended.status).toBe('completed');
    expect(ended.request_counts).toEqual({ total: 5, completed: 5, failed: 0 });
    await until(async () => (await usageOf(first, 'batcher')).day.usdMicros > 0, 'the batch to be charged');

    // Every other way to look at it, from both processes.
    for (const client of [here, there, here, there]) {
      expect((await client.batches.retrieve(batch.id)).status).toBe('completed');
      const page = await client.batches.list();
      expect(page.data.map((b) => b.id)).toContain(batch.id);
      const output = await (await client.files.content(ended.output_file_id!)).text();
      expect(output.trim().split('\n')).toHaveLength(5);
      expect((await client.batches.cancel(batch.id)).status).toBe('completed');
    }
    // 1 upload + 1 create + 1 retrieve + 4 × 4 looks: their records are written after any charge they made.
    await until(async () => (await records('batcher')).filter((r) => !r.chargedLater).length === 19, 'every request to be recorded');

    const usage = await usageOf(first, 'batcher');
    expect(usage.day).toMatchObject({ tokens: INPUT + OUTPUT, usdMicros: BATCH_MICROS, reservedTokens: 0, reservedUsdMicros: 0, estimatedRequests: 0 });
    const charges = (await records('batcher')).filter((r) => r.chargedLater);
    expect(charges).toHaveLength(1);
    expect(charges[0]).toMatchObject({
      chargedLater: true,
      createdBy,
      operation: 'createBatch',
      model: MODEL,
      costMicros: BATCH_MICROS,
      tokens: { input: INPUT, cachedInput: 0, output: OUTPUT, estimated: false },
    });
    // The upstream ran the batch once, and the gateway read its output once for the charge.
    expect(fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/batches')).toHaveLength(1);
    console.info(
      `batch of ${LINES.length} lines: reserved ${WORST_TOKENS} tokens / ${reserved.day.reservedUsdMicros} µ$, charged ${INPUT + OUTPUT} tokens / ${BATCH_MICROS} µ$ (full price ${FULL_MICROS} µ$)`,
    );
  });

  it('a batch listed as ended is charged by the list, without a retrieve', async () => {
    const key = await userWithKey(first, 'lister', { usdPerDay: 100 });
    const client = sdk(first.baseUrl, key);
    const { batch } = await createBatch(client);
    const page = await sdk(`${child.url}/v1`, key).batches.list();
    expect(page.data.find((b) => b.id === batch.id)?.status).toBe('completed');
    await until(async () => (await usageOf(first, 'lister')).day.usdMicros === BATCH_MICROS, 'the listed batch to be charged');
    expect((await usageOf(first, 'lister')).day.reservedUsdMicros).toBe(0);
  });

  it('a batch cancelled before it ran is charged what its finished requests used', async () => {
    const key = await userWithKey(first, 'canceller', { usdPerDay: 100 });
    const client = sdk(first.baseUrl, key);
    const { batch } = await createBatch(client);
    const cancelled = await client.batches.cancel(batch.id);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.request_counts?.completed).toBe(2);
    const done = LINES.slice(0, 2);
    const input = done.reduce((sum, l) => sum + promptTokens(l.body.messages), 0);
    const output = 2 * FAKE_COMPLETION_TOKENS;
    const micros = Math.ceil(Math.ceil((input * PRICE.input + output * PRICE.output) / 1_000_000) * BATCH_DISCOUNT);
    await until(async () => (await usageOf(first, 'canceller')).day.tokens === input + output, 'the cancelled batch to be charged');
    const usage = await usageOf(first, 'canceller');
    expect(usage.day).toMatchObject({ usdMicros: micros, reservedTokens: 0, reservedUsdMicros: 0 });
  });

  it('a batch the user holds does not take a maxConcurrent slot', async () => {
    const key = await userWithKey(first, 'one-at-a-time', { maxConcurrent: 1, usdPerDay: 100 });
    const client = sdk(first.baseUrl, key);
    await createBatch(client);
    const again = await createBatch(client);
    expect(again.batch.status).toBe('validating');
    const usage = await usageOf(first, 'one-at-a-time');
    expect(usage.day.reservedTokens).toBe(2 * WORST_TOKENS);
  });
});
