// docs/reliability.md, case 16: with every key cooling or disabled, a request gets 503 no_upstream_key_available
// at once, without touching the upstream, with retry-after set to the earliest recovery; the pool
// recovers by itself, and readiness follows it.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { CHAT, type PoolFixture, openaiError, startPool } from './helpers/pool-fixture.js';

const RATE_LIMITED = openaiError('Rate limit reached for requests', 'requests', 'rate_limit_exceeded');

let pool: PoolFixture;
beforeEach(async () => {
  pool = await startPool({ keys: ['a', 'b'] });
});
afterEach(() => pool.close());

async function readiness(): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${pool.gateway.url}/readyz`);
  return { status: res.status, json: await res.json() };
}

it('answers 503 at once with retry-after the earliest recovery, then recovers by itself', async () => {
  pool.script('a', { status: 429, headers: { 'retry-after-ms': '4000' }, body: RATE_LIMITED });
  pool.script('b', { status: 429, headers: { 'retry-after-ms': '1500' }, body: RATE_LIMITED });
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(429);
  const b = await pool.poolKey('b');
  pool.fake.reset();

  const refused = await pool.post('/chat/completions', CHAT);
  expect(refused.status).toBe(503);
  expect(refused.json).toEqual({
    error: {
      message: expect.stringMatching(/^Every pool key that can serve this request is cooling down or disabled; the first is usable again in [12] s\.$/),
      type: 'server_error',
      param: null,
      code: 'no_upstream_key_available',
    },
  });
  const waitMs = Number(refused.headers.get('retry-after-ms'));
  expect(waitMs).toBeGreaterThan(0);
  expect(waitMs).toBeLessThanOrEqual(1500);
  expect(Math.abs(Date.now() + waitMs - Date.parse(b.until))).toBeLessThan(1000);
  expect(refused.headers.get('retry-after')).toBe(String(Math.ceil(waitMs / 1000)));
  expect(pool.fake.requests).toEqual([]);
  expect(await pool.charged()).toMatchObject({ reservedTokens: 0, tokens: 0 });
  expect(await readiness()).toEqual({ status: 503, json: { status: 'not_ready', store: true, poolKeys: false, closing: false, saturated: [] } });

  await sleep(Math.max(0, Date.parse(b.until) - Date.now()) + 20);
  expect(await readiness()).toEqual({ status: 200, json: { status: 'ready', store: true, poolKeys: true, closing: false, saturated: [] } });
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  expect(pool.keysUsed()).toEqual(['b']);
});

it('answers 503 with a retry-after when every key is disabled by hand', async () => {
  for (const id of ['a', 'b']) expect((await pool.gateway.admin('POST', `/upstreams/main/keys/${id}/disable`)).status).toBe(200);
  const refused = await pool.post('/chat/completions', CHAT);
  expect(refused.status).toBe(503);
  expect(refused.json.error).toEqual({
    message: 'Every pool key that can serve this request is disabled.',
    type: 'server_error',
    param: null,
    code: 'no_upstream_key_available',
  });
  expect(refused.headers.get('retry-after')).toBe('60');
  expect(pool.fake.requests).toEqual([]);
});
