// Which key health changes raise which pool events: a disabled key raises pool_key.disabled, its
// return pool_key.recovered; a key that only cools raises neither; an upstream left with no
// usable key raises pool.exhausted, at most once a minute. The marks are made of what every
// process sees alike (the record's `since`), so one process of all raises each.
import { describe, expect, it } from 'vitest';
import { poolWatch } from '../src/alerts/pool-watch.js';
import type { HealthRecord } from '../src/pool/health-sync.js';
import type { UpstreamDescription } from '../src/pool/pool.js';

const rec = (state: HealthRecord['state'], since: number, reason?: HealthRecord['reason']): HealthRecord => ({ state, since, strikes: 0, updatedAt: since, ...(reason ? { reason } : {}) });

function setUp(states: Record<string, 'active' | 'cooling' | 'disabled'>) {
  const raised: Array<{ key: string; type: string; data: Record<string, unknown> }> = [];
  const marks = new Set<string>();
  const watch = poolWatch({
    alerts: {
      async emitOnce(key, _ttl, type, data) {
        if (marks.has(key)) return undefined;
        marks.add(key);
        raised.push({ key, type, data });
        return { id: 'evt', type, time: '', data };
      },
    },
    describe: () => [{ id: 'main', strategy: 'round-robin', keys: Object.entries(states).map(([id, state]) => ({ id, state, last4: 'xxxx' })) } as unknown as UpstreamDescription],
  });
  const settle = () => new Promise((r) => setImmediate(r));
  return { raised, watch, settle, states };
}

describe('pool events from key health', () => {
  it('raise disabled, exhausted and recovered, not for a key that only cools', async () => {
    const { raised, watch, settle, states } = setUp({ a: 'active', b: 'active' });
    states.a = 'cooling';
    watch('main/a', rec('cooling', 1, 'rate_limited'), rec('active', 0));
    await settle();
    expect(raised).toEqual([]);
    states.b = 'disabled';
    watch('main/b', rec('disabled', 2, 'invalid_api_key'), rec('active', 0));
    await settle();
    expect(raised.map((r) => r.type)).toEqual(['pool_key.disabled', 'pool.exhausted']);
    expect(raised[0]!.data).toMatchObject({ upstream: 'main', key: 'b', reason: 'invalid_api_key' });
    // The same record merged again (another process's echo) raises nothing more.
    watch('main/b', rec('disabled', 2, 'invalid_api_key'), rec('active', 0));
    await settle();
    expect(raised.length).toBe(2);
    states.a = 'active';
    watch('main/a', rec('active', 3), rec('cooling', 1, 'rate_limited'));
    states.b = 'active';
    watch('main/b', rec('active', 4), rec('disabled', 2, 'invalid_api_key'));
    await settle();
    expect(raised.map((r) => r.type)).toEqual(['pool_key.disabled', 'pool.exhausted', 'pool_key.recovered']);
    // Exhausted again within the minute: the mark still holds.
    states.a = 'disabled';
    states.b = 'disabled';
    watch('main/a', rec('disabled', 5, 'manual'), rec('active', 3));
    watch('main/b', rec('disabled', 6, 'manual'), rec('active', 4));
    await settle();
    expect(raised.filter((r) => r.type === 'pool.exhausted').length).toBe(1);
    expect(raised.filter((r) => r.type === 'pool_key.disabled').length).toBe(3);
  });
});
