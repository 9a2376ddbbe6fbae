// A success body that holds a pool key and comes with its own Content-Length streams to the client
// masked, and so shorter than it was, but under the upstream's Content-Length: the client waits
// for bytes that never come (the answer never ends while the connection stays open).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { scannedRequest } from './helpers/scanned-client.js';

const POOL_KEY = 'sk-proj-attack2LenQpB7mZt3RwY8cN1sHd4Ua6Ej5Gi2Fo9Kq0Vz7Tb3Wx8Cy1Pn6Ml4Jr5q';

let relay: RelayFixture;
beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no complete answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

it('a JSON success body with Content-Length and a key in it ends, masked, and parses', async () => {
  const body = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', echo: `your key is ${POOL_KEY}` });
  // `body` (not `chunks`): the fake sends it with its Content-Length.
  relay.fake.handle(() => ({ status: 200, headers: { 'content-type': 'application/json' }, body }));
  const answer = await withDeadline(
    scannedRequest(`${relay.gateway.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] }),
    }),
    5000,
    'POST /v1/chat/completions',
  );
  expect(answer.status).toBe(200);
  expect(answer.headers['content-length']).toBe(String(answer.body.length));
  // Masked to the key's own length, so that the Content-Length passed on still holds.
  expect(JSON.parse(answer.text).echo).toMatch(/^your key is sk-\*{3,}Jr5q$/);
  expect(Buffer.byteLength(answer.text)).toBe(Number(answer.headers['content-length']));
});
