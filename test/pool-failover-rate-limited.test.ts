// docs/reliability.md, case 11: a 429 with Retry-After on one key cools that key for as long as it says; the
// request is retried on another key before any byte reaches the client, which sees 200 and is
// charged once.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, FAKE_TEXT } from '../src/dev/fake-openai-answers.js';
import { CHAT, type PoolFixture, openaiError, startPool } from './helpers/pool-fixture.js';

const RATE_LIMITED = openaiError('Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.', 'requests', 'rate_limit_exceeded');
// The fake's prompt tokens: ceil(characters / 4) of "Say hello".
const CHAT_TOKENS = 3 + FAKE_COMPLETION_TOKENS;

let pool: PoolFixture;
beforeEach(async () => {
  pool = await startPool({ keys: ['a', 'b'] });
});
afterEach(() => pool.close());

it('retries on the next key before the client sees anything, and charges the request once', async () => {
  pool.script('a', { status: 429, headers: { 'retry-after': '30' }, body: RATE_LIMITED });
  const answer = await pool.post('/chat/completions', CHAT);
  expect(answer.status).toBe(200);
  expect(answer.json.choices[0].message.content).toBe(FAKE_TEXT);
  expect(pool.keysUsed()).toEqual(['a', 'b']);
  expect(await pool.charged()).toMatchObject({ requests: 1, tokens: CHAT_TOKENS, reservedTokens: 0, estimatedRequests: 0 });
  const line = pool.gateway.logs.find((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
  expect(line).toMatchObject({ status: 200, poolKeyId: 'b', retries: 1, tried: [{ poolKeyId: 'a', status: 429 }] });
});

it('cools the key for its retry-after and sends everything to the others meanwhile', async () => {
  pool.script('a', { status: 429, headers: { 'retry-after': '30' }, body: RATE_LIMITED });
  const before = Date.now();
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  const after = Date.now();
  const a = await pool.poolKey('a');
  expect(a).toMatchObject({ id: 'a', state: 'cooling', reason: 'rate_limited', inFlight: 0, requests: 1, failures: 1 });
  expect(Date.parse(a.until)).toBeGreaterThanOrEqual(before + 30_000);
  expect(Date.parse(a.until)).toBeLessThanOrEqual(after + 30_000);
  for (let i = 0; i < 4; i++) expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  expect(pool.keysUsed()).toEqual(['a', 'b', 'b', 'b', 'b', 'b']);
  expect(await pool.poolKey('b')).toMatchObject({ state: 'active', requests: 5, failures: 0 });
});

it('passes the last key’s 429 on when every key is rate limited', async () => {
  for (const id of ['a', 'b']) pool.script(id, { status: 429, headers: { 'retry-after': '20' }, body: RATE_LIMITED });
  const answer = await pool.post('/chat/completions', CHAT);
  expect(answer.status).toBe(429);
  expect(answer.json).toEqual(RATE_LIMITED);
  expect(answer.headers.get('retry-after')).toBe('20');
  expect(pool.keysUsed()).toEqual(['a', 'b']);
  expect(await pool.charged()).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
});
