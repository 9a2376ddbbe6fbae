// A batch is checked when it is created, from its input file, before the upstream's batch route
// sees it: a line naming a model the key may not use, a worst case past the user's quota, a line
// whose url is not the batch's endpoint, a malformed line, an empty file. Each refusal is an
// OpenAI-shaped 400 (429 for the quota) naming the line, nothing is reserved or charged, and the
// upstream never receives `POST /v1/batches`.
import OpenAI, { BadRequestError, RateLimitError, toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
beforeEach(() => fake.reset());

const line = (i: number, body: Record<string, unknown>, url = '/v1/chat/completions') =>
  JSON.stringify({ custom_id: `r${i}`, method: 'POST', url, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], ...body } });

async function tryBatch(userId: string, limits: Record<string, number>, jsonl: string, models?: string[]) {
  const key = await userWithKey(gateway, userId, limits, models ? { models } : {});
  const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl), 'input.jsonl'), purpose: 'batch' });
  const error = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }).then(
    () => undefined,
    (err: unknown) => err,
  );
  // Nothing reached the upstream's batch route, nothing stays reserved, nothing is charged.
  expect(fake.requests.filter((r) => r.path === '/v1/batches')).toHaveLength(0);
  const usage = await usageOf(gateway, userId);
  expect(usage.day).toMatchObject({ tokens: 0, usdMicros: 0, reservedTokens: 0, reservedUsdMicros: 0 });
  return error as { status: number; error: { message: string; code: string; param: string | null } };
}

describe('a batch refused at creation from its input file', () => {
  it('names a model the key may not use on line 2', async () => {
    const err = await tryBatch('models-a', {}, `${line(1, {})}\n${line(2, { model: 'gpt-4o' })}\n`, ['gpt-4o-mini']);
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.error).toMatchObject({ code: 'model_not_allowed', param: 'input_file_id' });
    expect(err.error.message).toContain('Line 2');
    expect(err.error.message).toContain('gpt-4o');
  });

  it('names a model with no price, for a user with a dollar limit', async () => {
    const err = await tryBatch('dollars-a', { usdPerDay: 1 }, `${line(1, { model: 'my-own-model' })}\n`);
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.error.message).toMatch(/Line 1 .*no price/);
  });

  it('asks for max_tokens: 100000 on one line, past what the user has left', async () => {
    // Counted at the model's own output cap (16,384 for gpt-4o-mini): still past 10,000.
    const lines = [line(1, {}), line(2, { max_tokens: 100_000 })].join('\n');
    const err = await tryBatch('tokens-a', { tokensPerDay: 10_000 }, lines);
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.error.code).toBe('insufficient_quota');
  });

  it('has a line whose url is not the batch endpoint', async () => {
    const err = await tryBatch('url-a', {}, `${line(1, {})}\n${line(2, {}, '/v1/responses')}\n`);
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.error.message).toContain('Line 2');
    expect(err.error.message).toContain('/v1/responses');
  });

  it('has a malformed line', async () => {
    const err = await tryBatch('json-a', {}, `${line(1, {})}\n${line(2, {})}\n{"custom_id": "r3", "method": "POST", "url":\n`);
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.error.message).toBe('Line 3 of the input file is not valid JSON.');
  });

  it('has a line with no body, one with another method, or no line at all', async () => {
    const noBody = await tryBatch('shape-a', {}, `${JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/v1/chat/completions' })}\n`);
    expect(noBody.error.message).toContain('Line 1 of the input file has no JSON object body');
    const get = await tryBatch('shape-b', {}, `${line(1, {}).replace('"POST"', '"GET"')}\n`);
    expect(get.error.message).toContain('method must be "POST"');
    const empty = await tryBatch('shape-c', {}, '\n\n');
    expect(empty.error.message).toBe('The input file holds no request.');
  });

  it('mixes models, which OpenAI runs as one batch per model', async () => {
    const err = await tryBatch('mixed-a', {}, `${line(1, {})}\n${line(2, { model: 'gpt-4o' })}\n`);
    expect(err.error.message).toContain('a batch runs one model');
  });

  it('names an endpoint the gateway cannot meter, or none', async () => {
    const key = await userWithKey(gateway, 'endpoint-a', {});
    const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
    const file = await client.files.create({ file: await toFile(Buffer.from(`${line(1, {})}\n`), 'input.jsonl'), purpose: 'batch' });
    const err = await client.batches
      .create({ input_file_id: file.id, endpoint: '/v1/files' as '/v1/chat/completions', completion_window: '24h' })
      .catch((e: unknown) => e as BadRequestError);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).param).toBe('endpoint');
    expect(fake.requests.filter((r) => r.path === '/v1/batches')).toHaveLength(0);
  });
});
