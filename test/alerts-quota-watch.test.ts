// Which crossings the quota watch raises: every threshold reached of each token and dollar window
// (day and month), once each, read from the counters once per user however many requests settle
// meanwhile; nothing for a user without such limits.
import { describe, expect, it } from 'vitest';
import { QuotaWatch } from '../src/alerts/quota-watch.js';
import type { QuotaLimits, UsageSnapshot, WindowUsage } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';

const window = (id: string, tokens: number, micros: number): WindowUsage => ({
  window: id,
  resetsAt: '2030-01-02T00:00:00.000Z',
  requests: 1,
  tokens,
  micros,
  reservedTokens: 0,
  reservedMicros: 0,
  estimatedRequests: 0,
});

function setUp(usage: { day: WindowUsage; month: WindowUsage }) {
  const raised: Array<{ key: string; data: Record<string, unknown> }> = [];
  const marks = new Set<string>();
  let reads = 0;
  const watch = new QuotaWatch({
    store: {
      async usage(): Promise<UsageSnapshot> {
        reads++;
        return { ...usage, rate: {}, inFlight: 0 };
      },
    },
    alerts: {
      async emitOnce(key, _ttl, type, data) {
        if (marks.has(key)) return undefined;
        marks.add(key);
        raised.push({ key, data });
        return { id: 'evt', type, time: '', data };
      },
    },
    log: capturingLogger(),
    delayMs: 10_000,
  });
  return { raised, watch, reads: () => reads };
}

describe('the quota watch', () => {
  it('raises each threshold reached of each dollar and token window, once, from one read per user', async () => {
    // $0.95 of $1 a day; 850 of 1000 tokens a month.
    const { raised, watch, reads } = setUp({ day: window('2030-01-01', 10, 950_000), month: window('2030-01', 850, 950_000) });
    const limits: QuotaLimits = { microsPerDay: 1_000_000, tokensPerMonth: 1000 };
    for (let i = 0; i < 100; i++) watch.settled('alice', limits);
    await watch.check();
    expect(reads()).toBe(1);
    expect(raised.map((r) => [r.data.limit, r.data.threshold]).sort()).toEqual([
      ['tokensPerMonth', 80],
      ['usdPerDay', 80],
      ['usdPerDay', 95],
    ]);
    expect(raised.find((r) => r.data.limit === 'usdPerDay' && r.data.threshold === 95)!.data).toEqual({
      user: 'alice',
      limit: 'usdPerDay',
      window: '2030-01-01',
      threshold: 95,
      used: 0.95,
      max: 1,
      resetsAt: '2030-01-02T00:00:00.000Z',
    });
    // Again: nothing new, not even a question to the store for what this process raised.
    watch.settled('alice', limits);
    await watch.check();
    expect(raised.length).toBe(3);
    watch.close();
  });

  it('ignores users without token or dollar windows, and limits of 0', async () => {
    const { raised, watch, reads } = setUp({ day: window('2030-01-01', 10_000, 10_000), month: window('2030-01', 10_000, 10_000) });
    watch.settled('rpm-only', { rpm: 10, tpm: 1000, maxConcurrent: 2 });
    watch.settled('zero', { tokensPerDay: 0 });
    await watch.check();
    expect(reads()).toBe(1);
    expect(raised).toEqual([]);
    watch.close();
  });
});
