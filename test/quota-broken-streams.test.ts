// docs/reliability.md, cases 8 and 20: an upstream that fails before answering costs nothing (the
// reservation is released in full); a stream that breaks off is charged what was streamed,
// counted with the tokenizer and marked estimated. A client that goes away: hostile-aborts.test.ts.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, sseEvents } from '../src/dev/fake-upstream.js';
import { countText } from '../src/quota/estimate.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { QUOTA_SETTINGS, post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';

const SSE = { 'content-type': 'text/event-stream' };
const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell me a story about a lighthouse.' }], stream: true, max_tokens: 50 };
const PROMPT = estimateAt('/chat/completions', BODY, QUOTA_SETTINGS.defaultMaxOutputTokens).promptTokens;
const LIMITS = { rpm: 5, tokensPerDay: 10_000 };
const NOTHING_USED = { requests: 0, tokens: 0, reservedTokens: 0, estimatedRequests: 0 };

function chunks(words: string[]): string[] {
  const chunk = (content: string) => ({ id: 'chatcmpl-b', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
  return sseEvents(words.map(chunk), { done: true });
}

let fake: FakeUpstream;
let gateway: TestGateway;
let users = 0;

beforeAll(async () => {
  fake = await startFake();
  gateway = await startQuotaGateway(fake);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

async function newUser(): Promise<{ id: string; key: string }> {
  const id = `broken-${++users}`;
  return { id, key: await userWithKey(gateway, id, LIMITS) };
}

async function settled(id: string): Promise<any> {
  await until(async () => (await usageOf(gateway, id)).concurrent.inFlight === 0, 'the request to settle');
  return usageOf(gateway, id);
}

describe('an upstream that fails before the first byte', () => {
  it('releases the reservation in full when the connection is reset', async () => {
    const { id, key } = await newUser();
    fake.handle(() => ({ destroyBeforeHeaders: true }));
    const answer = await post(gateway.url, key, '/chat/completions', BODY);
    expect(answer.status).toBe(502);
    const usage = await settled(id);
    expect(usage.day).toMatchObject(NOTHING_USED);
    expect(usage.minute.requests).toEqual({ limit: 5, remaining: 5, resetMs: 0 });
  });

  it('releases the reservation in full when the upstream answers an error', async () => {
    const { id, key } = await newUser();
    fake.handle(() => ({ status: 500, body: { error: { message: 'boom', type: 'server_error', param: null, code: null } } }));
    const answer = await post(gateway.url, key, '/chat/completions', BODY);
    expect(answer.status).toBe(500);
    expect((await settled(id)).day).toMatchObject(NOTHING_USED);
  });
});

describe('a stream that breaks off', () => {
  it('is charged its prompt and the text streamed before the break, as estimated', async () => {
    const { id, key } = await newUser();
    fake.handle(() => ({ headers: SSE, chunks: chunks(['Once', ' upon', ' a', ' time']), destroyAfterChunks: 2 }));
    const answer = await post(gateway.url, key, '/chat/completions', BODY);
    expect(answer.text).toContain('upstream_stream_interrupted');
    expect((await settled(id)).day).toMatchObject({
      requests: 1,
      tokens: PROMPT + countText('Once upon'),
      reservedTokens: 0,
      estimatedRequests: 1,
    });
  });
});
