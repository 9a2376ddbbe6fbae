// An SSE answer's status and headers reach the client as soon as the upstream sent them, even
// when its first event is slow to come: an SDK waits for the headers before it reads an event.
// (The gateway may hold them for one turn of its event loop to send them with a first event that
// came in with them.)
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';

const POOL_KEY = 'sk-pool-headers-first-1';
const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };

let relay: RelayFixture;

beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());

describe('an upstream that sends its headers and then nothing for a minute', () => {
  it('gives the client the status and headers at once', async () => {
    const chunk = { id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'late' } }] };
    // The empty first chunk makes the fake send its headers; the first event comes a minute later.
    relay.fake.handle(() => ({ headers: SSE, chunks: ['', ...sseEvents([chunk], { done: true })], chunkIntervalMs: 60_000 }));
    const controller = new AbortController();
    // Its own agent, closed with the test: the aborted stream leaves nothing behind on the shared one.
    const agent = new Agent();
    try {
      const answer = await request(`${relay.gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true }),
        signal: controller.signal,
        dispatcher: agent,
      });
      expect(answer.statusCode).toBe(200);
      expect(answer.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(answer.headers['x-keyrelay-request-id']).toEqual(expect.any(String));
      expect(relay.fake.requests).toHaveLength(1);
      controller.abort();
      await answer.body.text().catch(() => undefined);
      await relay.fake.requests[0]!.closed;
    } finally {
      await agent.destroy();
    }
  });
});
