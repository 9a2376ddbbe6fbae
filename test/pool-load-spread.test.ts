// The closing measure: 1,000 requests over 3 keys, ten at a time, one key starting to fail
// (500) half-way: no client sees an error, the load is spread evenly before the failure, and the
// failing key takes almost nothing once its circuit is open.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHAT, type PoolFixture, openaiError, startPool } from './helpers/pool-fixture.js';

const TOTAL = 1000;
const AT_ONCE = 10;

let pool: PoolFixture;
beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b', 'c'] });
});
afterAll(() => pool.close());

it('serves every request while one key fails mid-way', async () => {
  let sent = 0;
  let failing = false;
  const statuses = new Map<number, number>();
  pool.script('b', () => (failing ? { status: 500, body: openaiError('The server had an error.', 'server_error', null) } : undefined));
  const worker = async () => {
    while (sent < TOTAL) {
      if (++sent === TOTAL / 2) failing = true;
      const answer = await pool.post('/chat/completions', CHAT);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: AT_ONCE }, worker));

  expect(Object.fromEntries(statuses)).toEqual({ 200: TOTAL });
  const half = pool.fake.requests.slice(0, TOTAL / 2).map(pool.keyOf);
  for (const id of ['a', 'b', 'c']) {
    // Round robin: an even third each, give or take the requests in flight at the switch.
    expect(half.filter((k) => k === id).length).toBeGreaterThan(TOTAL / 6 - 20);
  }
  const failedOnB = pool.fake.requests.filter((r) => pool.keyOf(r) === 'b').length - half.filter((k) => k === 'b').length;
  // Three failures open b's circuit; it is tried again only after seconds, not per request.
  expect(failedOnB).toBeLessThan(20);
  expect(pool.gateway.logs.some((l) => l.msg === 'pool key cooling' && l.poolKeyId === 'b' && l.reason === 'circuit_open')).toBe(true);
});
