// Rate-aware steering, end to end: each answer's x-ratelimit-* headers tell the gateway how much
// of its rate limit the key has left, and a key whose headers say it is nearly spent gets less
// traffic, before it would answer 429.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHAT, type PoolFixture, startPool } from './helpers/pool-fixture.js';

const limits = (remaining: number) => ({
  'x-ratelimit-limit-requests': '1000',
  'x-ratelimit-remaining-requests': String(remaining),
  // A long window: what was spent comes back slowly, so the key stays nearly spent for this test.
  'x-ratelimit-reset-requests': '1h',
});

let pool: PoolFixture;
beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b'], strategy: 'rate-aware' });
  // `a` has 5% of its requests left, `b` all of them.
  pool.script('a', { headers: limits(50), body: { object: 'chat.completion' } });
  pool.script('b', { headers: limits(1000), body: { object: 'chat.completion' } });
});
afterAll(() => pool.close());

it('sends a nearly spent key a small share of the requests', async () => {
  for (let i = 0; i < 40; i++) expect((await pool.post('/chat/completions', CHAT)).status).toBe(200);
  const used = pool.keysUsed();
  const onA = used.filter((k) => k === 'a').length;
  // Equal weights would give each 20; headroom 0.05 against 1 gives `a` about 1 in 21.
  expect(onA).toBeGreaterThanOrEqual(1);
  expect(onA).toBeLessThanOrEqual(4);
  expect(used.length - onA).toBeGreaterThanOrEqual(36);
});
