// What failover sends again: a JSON body, held in memory, goes to the next key byte for byte; a
// streamed body (a multipart upload) is read once, so once a key has read it, that key's answer
// is the client's: it is not replayed.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type PoolFixture, openaiError, startPool } from './helpers/pool-fixture.js';

const RATE_LIMITED = openaiError('Rate limit reached for requests', 'requests', 'rate_limit_exceeded');

let pool: PoolFixture;
beforeEach(async () => {
  pool = await startPool({ keys: ['a', 'b'] });
});
afterEach(() => pool.close());

it('sends a JSON body to the next key byte for byte', async () => {
  pool.script('a', { status: 429, body: RATE_LIMITED });
  // Odd spacing: any re-serialisation would show.
  const body = '{ "model" : "gpt-4o-mini",  "messages": [{"role":"user","content":"héllo"}] }';
  const res = await fetch(`${pool.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${pool.userKey}`, 'content-type': 'application/json' },
    body,
  });
  expect(res.status).toBe(200);
  expect(pool.keysUsed()).toEqual(['a', 'b']);
  expect(pool.fake.requests.map((r) => r.body.toString('utf8'))).toEqual([body, body]);
});

it('does not send a multipart upload again once a key has read it', async () => {
  pool.script('a', { status: 429, body: RATE_LIMITED });
  const form = new FormData();
  form.append('purpose', 'batch');
  form.append('file', new Blob([Buffer.alloc(64 * 1024, 7)]), 'input.jsonl');
  const res = await fetch(`${pool.gateway.baseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${pool.userKey}` }, body: form });
  expect(res.status).toBe(429);
  expect(await res.json()).toEqual(RATE_LIMITED);
  expect(pool.keysUsed()).toEqual(['a']);
  // The key is still set aside for its 429.
  expect(await pool.poolKey('a')).toMatchObject({ state: 'cooling', reason: 'rate_limited' });
});
