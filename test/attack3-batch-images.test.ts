// OpenAI's Batch API takes /v1/images/generations (spec: CreateBatchRequest.endpoint). dall-e-*
// bill per image, not in tokens, and their answers report no usage. The batch check sums only
// tokens (src/relay/batch-input.ts: promptTokens + maxOutputTokens, units dropped), and the charge
// reads only token usage from the output file (src/relay/batch-output.ts), both at dall-e's token
// price of $0: a batch of HD images is reserved nothing and charged nothing.
import OpenAI, { BadRequestError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { startFake, startQuotaGateway, usageOf, userWithKey } from './helpers/quota-fixture.js';

let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
});
afterAll(async () => {
  await gateway?.close();
  await fake?.close();
});

// dall-e-3, hd, 1792x1024: $0.12 an image (src/quota/prices.ts), $0.06 at the batch discount.
const IMAGE = { model: 'dall-e-3', prompt: 'A lighthouse at dusk.', n: 1, size: '1792x1024', quality: 'hd' };
const jsonl = (lines: number) =>
  Array.from({ length: lines }, (_, i) => JSON.stringify({ custom_id: `img${i}`, method: 'POST', url: '/v1/images/generations', body: IMAGE })).join('\n') + '\n';

async function createBatch(userId: string, usdPerDay: number, lines: number) {
  const key = await userWithKey(gateway, userId, { usdPerDay });
  const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'images.jsonl'), purpose: 'batch' });
  const batch = client.batches.create({ input_file_id: file.id, endpoint: '/v1/images/generations' as never, completion_window: '24h' });
  return { batch };
}

describe('a batch of dall-e images', () => {
  // docs/charged-later.md: an endpoint the gateway cannot meter in tokens (not chat, completions,
  // responses, embeddings, moderations) is refused with a 400, param endpoint.
  it.each([
    ['past the dollars left', 'img-batch-poor', 1, 100],
    ['within the dollars left', 'img-batch-rich', 100, 2],
  ])('is refused before the upstream sees it (%s), never run for free', async (_what, userId, usd, lines) => {
    const before = fake.requests.filter((r) => r.path === '/v1/batches').length;
    const { batch } = await createBatch(userId, usd, lines);
    const err = await batch.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).error).toMatchObject({ code: 'invalid_request', param: 'endpoint' });
    expect(fake.requests.filter((r) => r.path === '/v1/batches').length).toBe(before);
    expect((await usageOf(gateway, userId)).day).toMatchObject({ usdMicros: 0, reservedUsdMicros: 0 });
  });
});
