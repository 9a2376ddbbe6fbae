// An upstream error body longer than the 1 MB the gateway holds is sent "up to there, masked, and
// the connection is then cut" (docs/key-pool.md). The held bytes end where the read that crossed
// 1 MB ended (src/relay/held.ts readBounded), and they are masked as final (mask.ts `bytes`): a
// pool key that begins in those bytes and ends after them is no whole key there, so its first
// part goes to the client as it came. A key of the OpenAI shape is still caught by the `sk-…`
// token rule; a pool key of any other shape (an Azure-style key, another compatible upstream's)
// leaks all but its last characters.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { rawRequest } from './helpers/raw-socket.js';

// A configured pool key not of the `sk-` shape.
const POOL_KEY = 'a9f3c2e1b7d64f0e8c5a2b1d9e7f6c3a4b5d6e7f';
const LIMIT = 1024 * 1024;

let relay: RelayFixture;
beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());

it('no part of a pool key cut by the 1 MB bound of an error body reaches the client', async () => {
  const opening = '{"error":{"message":"';
  const filler = opening + 'x'.repeat(LIMIT - opening.length);
  relay.fake.handle(() => ({
    status: 400,
    headers: { 'content-type': 'application/json' },
    // Exactly the bound first (not past it: nothing is cut yet), then the key in two writes.
    chunks: [filler, POOL_KEY.slice(0, 30), `${POOL_KEY.slice(30)} and more"}}`],
    chunkIntervalMs: 100,
  }));
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });
  // Raw bytes: what was written before the cut counts, whatever a client library makes of the cut.
  const answer = await rawRequest(
    relay.gateway.port,
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${relay.userKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    5000,
  );
  expect(answer.status).toBe(400);
  expect(answer.raw.length).toBeGreaterThan(LIMIT);
  const prefix = POOL_KEY.slice(0, 24);
  expect(answer.raw.includes(prefix)).toBe(false);
});
