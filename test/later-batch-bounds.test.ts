// OpenAI's bounds of a batch input file, as the gateway reads it: 50,000 requests are checked one
// line at a time as the file streams from the upstream (the time it takes is printed), one more is
// refused before the upstream's batch route sees anything.
import OpenAI, { BadRequestError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { BATCH_MAX_REQUESTS } from '../src/relay/batch-input.js';
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

const jsonl = (lines: number): Buffer => {
  const parts: string[] = [];
  for (let i = 0; i < lines; i++) {
    parts.push(`{"custom_id":"r${i}","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Line ${i}: say hi"}],"max_tokens":20}}\n`);
  }
  return Buffer.from(parts.join(''));
};

describe('the bounds of a batch input file', () => {
  it(`checks ${BATCH_MAX_REQUESTS} lines and refuses one more`, { timeout: 120_000 }, async () => {
    const key = await userWithKey(gateway, 'bounds-a', { tokensPerDay: 100_000_000 });
    const client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0, timeout: 110_000 });
    const full = jsonl(BATCH_MAX_REQUESTS);
    const file = await client.files.create({ file: await toFile(full, 'full.jsonl'), purpose: 'batch' });
    const started = performance.now();
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const ms = performance.now() - started;
    expect(batch.request_counts?.total).toBe(BATCH_MAX_REQUESTS);
    const reserved = (await usageOf(gateway, 'bounds-a')).day.reservedTokens;
    expect(reserved).toBeGreaterThan(BATCH_MAX_REQUESTS * 20);
    console.info(`batch input check: ${BATCH_MAX_REQUESTS} lines, ${(full.length / 1e6).toFixed(1)} MB, read and estimated in ${ms.toFixed(0)} ms; reserved ${reserved} tokens`);

    const over = await client.files.create({ file: await toFile(jsonl(BATCH_MAX_REQUESTS + 1), 'over.jsonl'), purpose: 'batch' });
    const before = fake.requests.filter((r) => r.path === '/v1/batches').length;
    const err = await client.batches.create({ input_file_id: over.id, endpoint: '/v1/chat/completions', completion_window: '24h' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).message).toContain(`more than ${BATCH_MAX_REQUESTS} requests`);
    expect(fake.requests.filter((r) => r.path === '/v1/batches').length).toBe(before);
  });
});
