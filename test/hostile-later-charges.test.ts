// A user trying to have a batch run without paying for it, or someone else pay: another spelling
// of the route, a key given twice, another user's batch or output, an upstream that garbles its
// usage, a create the upstream refuses. Each is refused or charged as docs/charged-later.md says.
import OpenAI, { NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

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

const LINE = (model: string, extra = '') =>
  `{"custom_id":"r1","method":"POST","url":"/v1/chat/completions","body":{"model":"${model}"${extra},"messages":[{"role":"user","content":"Hi"}],"max_tokens":100}}\n`;

async function upload(key: string, jsonl: string): Promise<string> {
  const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
  return (await client.files.create({ file: await toFile(Buffer.from(jsonl), 'input.jsonl'), purpose: 'batch' })).id;
}

const batchRoute = () => fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/batches');

describe('a batch nobody pays for', () => {
  it('created through another spelling of the route is checked all the same', async () => {
    const key = await userWithKey(gateway, 'spell-a', {}, { models: ['gpt-4o-mini'] });
    const file = await upload(key, LINE('gpt-4o'));
    const answer = await post(gateway.url, key, '/%62atches', { input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ code: 'model_not_allowed', param: 'input_file_id' });
    expect(batchRoute()).toHaveLength(0);
  });

  it('whose line names the model twice is refused, whichever one a parser would keep', async () => {
    const key = await userWithKey(gateway, 'twice-a', {}, { models: ['gpt-4o-mini'] });
    const file = await upload(key, LINE('gpt-4o', ',"model":"gpt-4o-mini"'));
    const answer = await post(gateway.url, key, '/batches', { input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(answer.status).toBe(400);
    expect(answer.json.error.message).toMatch(/^Line 1 of the input file: .*model/);
    expect(batchRoute()).toHaveLength(0);
  });

  it("made from another user's input file is a 404, and reads nothing", async () => {
    const alice = await userWithKey(gateway, 'owner-a', {});
    const mallory = await userWithKey(gateway, 'owner-m', {});
    const file = await upload(alice, LINE('gpt-4o-mini'));
    fake.reset();
    const answer = await post(gateway.url, mallory, '/batches', { input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(answer.status).toBe(404);
    expect(fake.requests).toHaveLength(0);
  });

  it("looked at by another user is not charged to them, nor taken from its owner's charge", async () => {
    const alice = await userWithKey(gateway, 'look-a', { usdPerDay: 5 });
    const mallory = await userWithKey(gateway, 'look-m', { usdPerDay: 5 });
    const aliceSdk = new OpenAI({ baseURL: gateway.baseUrl, apiKey: alice, maxRetries: 0 });
    const mallorySdk = new OpenAI({ baseURL: gateway.baseUrl, apiKey: mallory, maxRetries: 0 });
    const batch = await aliceSdk.batches.create({ input_file_id: await upload(alice, LINE('gpt-4o-mini')), endpoint: '/v1/chat/completions', completion_window: '24h' });
    await expect(mallorySdk.batches.retrieve(batch.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(mallorySdk.batches.cancel(batch.id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await usageOf(gateway, 'look-a')).day).toMatchObject({ tokens: 0, reservedTokens: expect.any(Number) });
    expect((await usageOf(gateway, 'look-a')).day.reservedTokens).toBeGreaterThan(0);
    const ended = await aliceSdk.batches.retrieve(batch.id);
    await expect(mallorySdk.files.content(ended.output_file_id!)).rejects.toBeInstanceOf(NotFoundError);
    await until(async () => (await usageOf(gateway, 'look-a')).day.tokens > 0, "alice's batch to be charged to alice");
    expect((await usageOf(gateway, 'look-m')).day).toMatchObject({ tokens: 0, usdMicros: 0, reservedTokens: 0 });
  });

  it('refused by the upstream at creation releases its reservation', async () => {
    const key = await userWithKey(gateway, 'upfail-a', { tokensPerDay: 100_000 });
    const file = await upload(key, LINE('gpt-4o-mini'));
    fake.handle((req) =>
      req.path === '/v1/batches' ? { status: 400, body: { error: { message: 'no', type: 'invalid_request_error', param: null, code: null } } } : undefined,
    );
    const answer = await post(gateway.url, key, '/batches', { input_file_id: file, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(answer.status).toBe(400);
    expect((await usageOf(gateway, 'upfail-a')).day).toMatchObject({ tokens: 0, reservedTokens: 0 });
  });

  it('whose output garbles its usage (negative, absurd, missing) is charged its worst case for those lines, never less, never negative', async () => {
    const key = await userWithKey(gateway, 'garble-a', { tokensPerDay: 100_000 });
    const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
    const jsonl = LINE('gpt-4o-mini') + LINE('gpt-4o-mini').replace('r1', 'r2') + LINE('gpt-4o-mini').replace('r1', 'r3');
    const batch = await client.batches.create({ input_file_id: await upload(key, jsonl), endpoint: '/v1/chat/completions', completion_window: '24h' });
    const worst = (await usageOf(gateway, 'garble-a')).day.reservedTokens;
    const garbled = [
      { response: { status_code: 200, body: { usage: { prompt_tokens: -5, completion_tokens: 3 } } } },
      { response: { status_code: 200, body: { usage: { prompt_tokens: 1e300, completion_tokens: 1 } } } },
      { response: { status_code: 200, body: {} } },
    ].map((l, i) => JSON.stringify({ id: `batch_req_${i}`, custom_id: `r${i + 1}`, error: null, ...l }));
    fake.handle((req) => (/^\/v1\/files\/file-[^/]+\/content$/.test(req.path) && !req.path.includes(batch.input_file_id) ? { body: garbled.join('\n') } : undefined));
    await client.batches.retrieve(batch.id);
    await until(async () => (await usageOf(gateway, 'garble-a')).day.reservedTokens === 0, 'the batch to be charged');
    const day = (await usageOf(gateway, 'garble-a')).day;
    // Each of the three lines counts its third of the worst case (rounded up), marked estimated.
    expect(day.tokens).toBeGreaterThanOrEqual(worst);
    expect(day.tokens).toBeLessThanOrEqual(worst + 6);
    expect(day.estimatedRequests).toBe(1);
  });
});
