// The pure pieces together, as the request path will use them (docs/reliability.md, cases 11, 13, 16): choose a
// key, try it, let the verdict update its health, decide whether to go on to another key. The
// upstream is a function of (key, request number) on a fake clock, so runs are exact.
import { describe, expect, it } from 'vitest';
import type { AttemptResult } from '../src/pool/outcome.js';
import { Pool } from '../src/pool/pool.js';
import { RetryPolicy } from '../src/pool/retry.js';

const T0 = 1_700_000_000_000;

type Upstream = (keyId: string, request: number) => AttemptResult;

interface Run {
  clientErrors: Array<{ request: number; status?: number; reason: string }>;
  attempts: Record<string, number>;
  served: Record<string, number>;
  retries: number;
}

function simulate(upstream: Upstream, requests: number, stepMs = 10, keys = ['a', 'b', 'c']): Run {
  const clock = { t: T0 };
  const now = () => clock.t;
  const pool = new Pool(
    { upstreams: [{ id: 'u', baseUrl: 'https://u.example.test/v1', keys: keys.map((id) => ({ id, key: `sk-test-${id}-0123456789abcdef` })) }] },
    { now, random: () => 0.5 },
  );
  const policy = new RetryPolicy({}, { now, random: () => 0.5 });
  const run: Run = { clientErrors: [], attempts: {}, served: {}, retries: 0 };
  for (let i = 0; i < requests; i++) {
    clock.t += stepMs;
    const retry = policy.begin();
    const tried = new Set<string>();
    for (;;) {
      const selection = pool.choose({ model: 'gpt-4o', exclude: tried });
      if (!selection.ok) {
        run.clientErrors.push({ request: i, status: 503, reason: selection.reason });
        break;
      }
      const { key } = selection.choice;
      run.attempts[key.id] = (run.attempts[key.id] ?? 0) + 1;
      const result = upstream(key.id, i);
      pool.start(selection.choice).finish(result);
      if (result.status !== undefined && result.status < 400) {
        run.served[key.id] = (run.served[key.id] ?? 0) + 1;
        break;
      }
      const decision = retry.decide({ ...result, method: 'POST', clientSawBytes: false, requestWritten: result.status !== undefined, replayable: true });
      if (!decision.retry) {
        run.clientErrors.push({ request: i, status: result.status, reason: decision.reason });
        break;
      }
      run.retries++;
      tried.add(key.ref);
      clock.t += decision.delayMs;
    }
  }
  return run;
}

const ok: AttemptResult = { status: 200 };

describe('1,000 requests over 3 keys, one failing mid-way', () => {
  it('key b answers 500 from request 300 on: no client error, the others take its share', () => {
    const run = simulate((key, i) => (key === 'b' && i >= 300 ? { status: 500 } : ok), 1000);
    expect(run.clientErrors).toEqual([]);
    expect(run.served).toEqual({ a: 450, b: 100, c: 450 });
    // Three 500s in a row open b's circuit for 3.75 s (5 s jittered); its one trial then fails and
    // opens it for 7.5 s, past the end of the run. Each failure was retried once, on a or c.
    expect(run.attempts).toEqual({ a: 450, b: 104, c: 450 });
    expect(run.retries).toBe(4);
  });

  it('key b starts refusing connections: the same', () => {
    const run = simulate((key, i) => (key === 'b' && i >= 300 ? { transportCode: 'ECONNREFUSED' } : ok), 1000);
    expect(run.clientErrors).toEqual([]);
    expect(run.attempts).toEqual({ a: 450, b: 104, c: 450 });
  });

  it("key b is revoked (401) for a while: disabled at its first failure, probed back once it works again", () => {
    // 100 ms between requests: b fails at 30 s (request 300), is probed 45 s later (request 750),
    // when it works again (from request 600), and takes its third again from there.
    const run = simulate((key, i) => (key === 'b' && i >= 300 && i < 600 ? { status: 401, error: { code: 'invalid_api_key' } } : ok), 1000, 100);
    expect(run.clientErrors).toEqual([]);
    expect(run.retries).toBe(1);
    expect(run.attempts).toEqual({ a: 408, b: 185, c: 408 });
  });
});

describe('a 429 with retry-after (docs/reliability.md, case 11)', () => {
  it('the request goes to another key, the key rests for that long', () => {
    const run = simulate((key, i) => (key === 'a' && i === 0 ? { status: 429, headers: { 'retry-after': '1' } } : ok), 200);
    expect(run.clientErrors).toEqual([]);
    expect(run.retries).toBe(1);
    // a rests 1 s, 100 requests of 10 ms shared by b and c, then is back in the rotation.
    expect(run.served).toEqual({ a: 34, b: 83, c: 83 });
  });
});

describe('every key failing (docs/reliability.md, case 16)', () => {
  it('a fast 503 with the earliest recovery until it comes, then traffic recovers on its own', () => {
    const run = simulate((_key, i) => (i === 0 ? { status: 429, headers: { 'retry-after': '2' } } : ok), 400);
    // Request 0 tries all three keys and gets the last 429; every key then rests 2 s, 200 requests.
    expect(run.clientErrors[0]).toEqual({ request: 0, status: 429, reason: 'max_attempts' });
    expect(run.clientErrors.slice(1)).toEqual(Array.from({ length: 199 }, (_, i) => ({ request: i + 1, status: 503, reason: 'unavailable' })));
    expect(run.served).toEqual({ a: 67, b: 67, c: 66 });
  });

  it('the 503 carries the earliest recovery', () => {
    const clock = { t: T0 };
    const pool = new Pool({ upstreams: [{ id: 'u', baseUrl: 'https://u.example.test/v1', keys: [{ id: 'a', key: 'sk-test-a-0123456789abcdef' }, { id: 'b', key: 'sk-test-b-0123456789abcdef' }] }] }, { now: () => clock.t });
    for (const [id, after] of [['a', '7'], ['b', '3']] as const) {
      const choice = pool.find('u', id);
      if (choice) pool.start(choice).finish({ status: 429, headers: { 'retry-after': after } });
    }
    expect(pool.choose({ model: 'gpt-4o' })).toEqual({ ok: false, reason: 'unavailable', retryAt: T0 + 3000 });
  });
});
