// Case 16 (docs/reliability.md), the "at once" and "no busy loop" of it: with every key cooling for
// half a minute, requests are answered 503 no_upstream_key_available without waiting for a key (in
// far less than the cooling time), the upstream hears nothing, and the gateway does not spin while
// it waits. The earliest recovery and the automatic return are in pool-no-key-available.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHAT, type PoolFixture, openaiError, startPool } from './helpers/pool-fixture.js';

const RATE_LIMITED = openaiError('Rate limit reached for requests', 'requests', 'rate_limit_exceeded');
let pool: PoolFixture;

beforeAll(async () => {
  pool = await startPool({ keys: ['a', 'b'] });
  pool.script('a', { status: 429, headers: { 'retry-after': '40' }, body: RATE_LIMITED });
  pool.script('b', { status: 429, headers: { 'retry-after': '30' }, body: RATE_LIMITED });
  expect((await pool.post('/chat/completions', CHAT)).status).toBe(429);
  pool.fake.reset();
});
afterAll(() => pool.close());

describe('case 16: every key resting', () => {
  it('20 requests at once are all answered 503 at once, retry-after the earliest recovery, the upstream untouched', async () => {
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 20 }, () => pool.post('/chat/completions', CHAT)));
    // "At once": far inside the 30 s the first key rests (5 s is a margin for a busy machine).
    expect(Date.now() - started).toBeLessThan(5000);
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(answer.json.error.code).toBe('no_upstream_key_available');
      const retryAfter = Number(answer.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(25);
      expect(retryAfter).toBeLessThanOrEqual(30);
    }
    expect(pool.fake.requests).toEqual([]);
  });

  it('does not spin while the keys rest: a second of waiting costs a small share of a second of CPU', async () => {
    const before = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const used = process.cpuUsage(before);
    expect((used.user + used.system) / 1000).toBeLessThan(500);
    expect(pool.fake.requests).toEqual([]);
  });
});
