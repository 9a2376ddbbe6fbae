// The pool-wide retry budget (docs/reliability.md, case 13): retries at most a share of the requests of a
// sliding window, with a floor per second, so an outage does not multiply the load on the upstream.
import { describe, expect, it } from 'vitest';
import { type FailedAttempt, RetryBudget, RetryPolicy } from '../src/pool/retry.js';

const T0 = 1_700_000_000_000;

function budget(ratio = 0.2, minPerSecond = 1, windowMs = 10_000) {
  const clock = { t: T0 };
  return { budget: new RetryBudget({ budgetRatio: ratio, budgetMinPerSecond: minPerSecond, budgetWindowMs: windowMs }, () => clock.t), clock };
}

function drain(b: RetryBudget): number {
  let granted = 0;
  while (b.tryAcquire()) granted++;
  return granted;
}

describe('the share of requests', () => {
  it('20% of 1,000 requests is 200 retries', () => {
    const { budget: b } = budget(0.2, 1);
    for (let i = 0; i < 1000; i++) b.recordRequest();
    expect(drain(b)).toBe(200);
    expect(b.snapshot()).toEqual({ requests: 1000, retries: 200, allowed: 200 });
  });

  it('more requests, more retries', () => {
    const { budget: b } = budget(0.2, 1);
    for (let i = 0; i < 1000; i++) b.recordRequest();
    drain(b);
    for (let i = 0; i < 10; i++) b.recordRequest();
    expect(drain(b)).toBe(2);
  });
});

describe('the floor', () => {
  it('a quiet gateway may still retry a few per second of the window', () => {
    const { budget: b } = budget(0.2, 3, 10_000);
    b.recordRequest();
    expect(drain(b)).toBe(30);
  });
});

describe('the sliding window', () => {
  it('what was spent comes back as its buckets leave the window', () => {
    const { budget: b, clock } = budget(0.5, 0, 10_000);
    for (let i = 0; i < 100; i++) b.recordRequest();
    expect(drain(b)).toBe(50);
    clock.t += 5_000;
    for (let i = 0; i < 20; i++) b.recordRequest();
    // 120 requests in the window, 50 retries spent: 10 more.
    expect(drain(b)).toBe(10);
    clock.t += 5_000;
    // The first 100 requests and 50 retries have left: 20 requests, 10 retries.
    expect(b.snapshot()).toEqual({ requests: 20, retries: 10, allowed: 10 });
    expect(drain(b)).toBe(0);
    clock.t += 10_000;
    expect(b.snapshot()).toEqual({ requests: 0, retries: 0, allowed: 0 });
  });
});

describe('exhaustion stops failover across requests', () => {
  it('an outage of every key: requests beyond the budget get the first failure, not a storm', () => {
    const clock = { t: T0 };
    const policy = new RetryPolicy({ budgetRatio: 0.2, budgetMinPerSecond: 0, maxAttempts: 3 }, { now: () => clock.t, random: () => 0 });
    const failure: FailedAttempt = { method: 'POST', status: 503, clientSawBytes: false, requestWritten: true, replayable: true };
    let attempts = 0;
    const refusals: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const run = policy.begin();
      attempts++;
      for (;;) {
        const decision = run.decide(failure);
        if (!decision.retry) {
          refusals[decision.reason] = (refusals[decision.reason] ?? 0) + 1;
          break;
        }
        attempts++;
      }
    }
    // Without a budget 100 requests would make 300 attempts; with it, 20% more than 100. The
    // budget grows by a fifth of a retry per request, so no request ever gets its third attempt.
    expect(attempts).toBe(120);
    expect(refusals).toEqual({ budget: 100 });
  });
});
