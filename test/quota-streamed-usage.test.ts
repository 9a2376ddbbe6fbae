// Streamed answers are charged the upstream's own numbers: a chat stream by asking the upstream
// for include_usage when the client did not (and taking that extra chunk out again, so the
// client gets exactly the stream it asked for), a Responses stream from response.completed.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, FAKE_TEXT } from '../src/dev/fake-openai-answers.js';
import { type FakeUpstream, sseEvents } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { post, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { cutEvery } from './helpers/relay-fixture.js';

const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };
const USAGE = { prompt_tokens: 11, completion_tokens: 22, total_tokens: 33, prompt_tokens_details: { cached_tokens: 3 } };
// gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens.
const USAGE_MICROS = Math.ceil((8 * 150_000 + 3 * 75_000 + 22 * 600_000) / 1_000_000);

/** A chat stream as OpenAI sends it, with or without include_usage (which adds `"usage":null` to
 * every chunk and one chunk of usage before [DONE]). */
function chatStream(withUsage: boolean): string {
  const base = { id: 'chatcmpl-s1', object: 'chat.completion.chunk', created: 1767225600, model: 'gpt-4o-mini', system_fingerprint: 'fp_1' };
  const chunk = (delta: object, finish: string | null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(withUsage ? { usage: null } : {}),
  });
  const events: object[] = [chunk({ role: 'assistant', content: '' }, null), chunk({ content: 'Hel' }, null), chunk({ content: 'lo, wörld 😀' }, null), chunk({}, 'stop')];
  if (withUsage) events.push({ ...base, choices: [], usage: USAGE });
  return sseEvents(events, { done: true }).join('');
}

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
beforeEach(() => fake.reset());

async function settled(userId: string): Promise<any> {
  await until(async () => (await usageOf(gateway, userId)).concurrent.inFlight === 0, 'the request to settle');
  return usageOf(gateway, userId);
}

describe('a chat stream whose client did not ask for usage', () => {
  it('asks the upstream for it, gives the client the stream without it, and charges its numbers', async () => {
    const key = await userWithKey(gateway, 'stream-a', { tokensPerDay: 100_000 });
    // Cut every 7 bytes: lines, the usage chunk and multi-byte characters all arrive in pieces.
    fake.handle((req) => {
      const asked = (req.json as { stream_options?: { include_usage?: boolean } }).stream_options?.include_usage === true;
      return { headers: SSE, chunks: cutEvery(chatStream(asked), 7) };
    });
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true };
    const answer = await post(gateway.url, key, '/chat/completions', body);

    expect(answer.status).toBe(200);
    expect(answer.text).toBe(chatStream(false));
    const sent = fake.requests[0]!;
    expect(sent.body.toString('utf8')).toBe(`{"stream_options":{"include_usage":true},${JSON.stringify(body).slice(1)}`);
    expect((await settled('stream-a')).day).toMatchObject({ tokens: 33, usdMicros: USAGE_MICROS, estimatedRequests: 0, reservedTokens: 0 });
  });

  it('reaches the official SDK without a usage chunk or usage fields', async () => {
    const key = await userWithKey(gateway, 'stream-sdk', { tokensPerDay: 100_000 });
    const client = new OpenAI({ apiKey: key, baseURL: gateway.baseUrl, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello, please!' }], stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(FAKE_TEXT);
    expect(chunks.every((c) => c.choices.length === 1 && !('usage' in c))).toBe(true);
    // The fake's own numbers: ceil(18 characters / 4) prompt tokens and its fixed answer.
    expect((await settled('stream-sdk')).day).toMatchObject({ tokens: 5 + FAKE_COMPLETION_TOKENS, estimatedRequests: 0 });
  });
});

describe('a chat stream whose client asked for usage itself', () => {
  it('passes request and stream through unchanged, usage chunk included, and charges its numbers', async () => {
    const key = await userWithKey(gateway, 'stream-b', { tokensPerDay: 100_000 });
    fake.handle(() => ({ headers: SSE, chunks: cutEvery(chatStream(true), 5) }));
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } };
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.text).toBe(chatStream(true));
    expect(fake.requests[0]!.body.toString('utf8')).toBe(JSON.stringify(body));
    expect((await settled('stream-b')).day).toMatchObject({ tokens: 33, usdMicros: USAGE_MICROS, estimatedRequests: 0 });
  });

  it('keeps the rest of stream_options when it sets include_usage for the client', async () => {
    const key = await userWithKey(gateway, 'stream-c', {});
    fake.handle(() => ({ headers: SSE, chunks: [chatStream(true)] }));
    const body = { model: 'gpt-4o-mini', messages: [], stream: true, stream_options: { include_usage: false, include_obfuscation: false } };
    const answer = await post(gateway.url, key, '/chat/completions', body);
    expect(answer.text).toBe(chatStream(false));
    expect(fake.requests[0]!.json).toEqual({ ...body, stream_options: { include_usage: true, include_obfuscation: false } });
  });
});

describe('a Responses stream', () => {
  it('is charged the usage of response.completed', async () => {
    const key = await userWithKey(gateway, 'stream-r', { tokensPerDay: 100_000 });
    const client = new OpenAI({ apiKey: key, baseURL: gateway.baseUrl, maxRetries: 0 });
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Say hello', stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types.at(-1)).toBe('response.completed');
    // The fake: ceil(9 characters / 4) input tokens and its fixed answer.
    expect((await settled('stream-r')).day).toMatchObject({ tokens: 3 + FAKE_COMPLETION_TOKENS, estimatedRequests: 0 });
  });
});
