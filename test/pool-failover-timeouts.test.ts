// docs/reliability.md, case 14: an upstream that sends no headers in time: a request that can safely be sent
// twice goes to another key, one that cannot (a POST may be running upstream) gets 504; a stream
// that stalls mid-body ends with an SSE error event and is never sent again.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { CHAT, type PoolFixture, startPool } from './helpers/pool-fixture.js';

const TIMEOUTS: Partial<Config> = { timeouts: { connectMs: 1000, headersMs: 300, bodyIdleMs: 300 } };

let pool: PoolFixture;
beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b'], config: TIMEOUTS });
});
afterAll(() => pool.close());
beforeEach(() => pool.fake.reset());

it('sends a GET whose headers do not come in time to another key', async () => {
  pool.script('a', { headersDelayMs: 10_000, body: { object: 'list', data: [] } });
  const answer = await pool.get('/models');
  expect(answer.status).toBe(200);
  expect(answer.json.data.map((m: { id: string }) => m.id)).toContain('gpt-4o-mini');
  expect(pool.keysUsed()).toEqual(['a', 'b']);
  await pool.fake.requests[0]!.closed;
  expect(pool.fake.requests[0]!.clientAborted).toBe(true);
});

it('answers a POST whose headers do not come in time with 504, without sending it again', async () => {
  for (const id of ['a', 'b']) pool.script(id, { headersDelayMs: 10_000 });
  const before = await pool.charged();
  const answer = await pool.post('/chat/completions', CHAT);
  expect(answer.status).toBe(504);
  expect(answer.json).toEqual({ error: { message: 'The upstream did not answer in time.', type: 'server_error', param: null, code: 'upstream_timeout' } });
  expect(pool.fake.requests).toHaveLength(1);
  expect(await pool.charged()).toMatchObject({ requests: before.requests, tokens: before.tokens, reservedTokens: 0 });
});

it('ends a stream that stalls mid-body with an error event, and never sends it again', async () => {
  const chunk = (content: string) => ({ id: 'chatcmpl-s', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
  const events = sseEvents([chunk('Hello'), chunk(' there')], { done: true });
  for (const id of ['a', 'b']) pool.script(id, { headers: { 'content-type': 'text/event-stream' }, chunks: events, chunkIntervalMs: 10_000 });
  const before = await pool.charged();
  const answer = await pool.post('/chat/completions', { ...CHAT, stream: true });
  expect(answer.status).toBe(200);
  expect(answer.text).toBe(
    `${events[0]}data: {"error":{"message":"The upstream stream broke off before it was complete.","type":"server_error","param":null,"code":"upstream_stream_interrupted"}}\n\n`,
  );
  expect(pool.fake.requests).toHaveLength(1);
  // Charged what streamed, counted by the gateway.
  expect(await pool.charged()).toMatchObject({ requests: before.requests + 1, estimatedRequests: before.estimatedRequests + 1, reservedTokens: 0 });
});
