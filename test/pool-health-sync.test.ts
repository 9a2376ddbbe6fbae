// Key health shared between gateway processes: a key one process disables is avoided by the others,
// the newer record wins, and a failing store never breaks the local state. Two KeyHealth (and two
// Pool) instances over one MemoryHealthSync stand for two processes over one store.
import { describe, expect, it } from 'vitest';
import { type HealthRecord, type HealthSync, MemoryHealthSync, parseHealthRecord } from '../src/pool/health-sync.js';
import { KeyHealth } from '../src/pool/health.js';
import { classifyAttempt } from '../src/pool/outcome.js';
import { Pool } from '../src/pool/pool.js';

const T0 = 1_700_000_000_000;
const KEY = 'main/a';

function gatewayProcess(sync: HealthSync, clock: { t: number }) {
  return new KeyHealth({ now: () => clock.t, random: () => 0.5, sync });
}

/** A sync without push: a process only learns on refresh(). */
function pullOnly(inner: MemoryHealthSync): HealthSync {
  return { publish: (ref, record) => inner.publish(ref, record), load: () => inner.load() };
}

describe('two processes', () => {
  it('a key disabled by one is resting for the other at once (push)', () => {
    const sync = new MemoryHealthSync();
    const clock = { t: T0 };
    const a = gatewayProcess(sync, clock);
    const b = gatewayProcess(sync, clock);
    a.end(a.begin(KEY), classifyAttempt({ status: 401, error: { code: 'invalid_api_key' } }));
    expect(b.availability(KEY)).toEqual({ kind: 'resting', until: T0 + 45_000, reason: 'invalid_api_key' });
    expect(b.record(KEY)).toEqual(a.record(KEY));
  });

  it('a process without push catches up on refresh', async () => {
    const shared = new MemoryHealthSync();
    const clock = { t: T0 };
    const a = gatewayProcess(pullOnly(shared), clock);
    const b = gatewayProcess(pullOnly(shared), clock);
    a.end(a.begin(KEY), classifyAttempt({ status: 429 }), { 'retry-after': '30' });
    expect(b.availability(KEY)).toEqual({ kind: 'ready' });
    await b.refresh();
    expect(b.availability(KEY)).toEqual({ kind: 'resting', until: T0 + 30_000, reason: 'rate_limited' });
  });

  it("one process's probe success brings the key back for the other", () => {
    const sync = new MemoryHealthSync();
    const clock = { t: T0 };
    const a = gatewayProcess(sync, clock);
    const b = gatewayProcess(sync, clock);
    a.end(a.begin(KEY), classifyAttempt({ status: 403, error: { code: 'unsupported_country_region_territory' } }));
    clock.t = b.record(KEY).until ?? 0;
    expect(b.availability(KEY)).toEqual({ kind: 'probe' });
    b.claimProbe(KEY);
    b.end(b.begin(KEY, true), classifyAttempt({ status: 200 }));
    expect(a.availability(KEY)).toEqual({ kind: 'ready' });
  });

  it("the admin's enable on one process reaches the other", () => {
    const sync = new MemoryHealthSync();
    const clock = { t: T0 };
    const a = gatewayProcess(sync, clock);
    const b = gatewayProcess(sync, clock);
    a.disable(KEY);
    expect(b.availability(KEY)).toEqual({ kind: 'resting', reason: 'manual' });
    clock.t += 1;
    b.enable(KEY);
    expect(a.availability(KEY)).toEqual({ kind: 'ready' });
  });

  it('pools: requests of the second process avoid the key the first disabled', () => {
    const sync = new MemoryHealthSync();
    const clock = { t: T0 };
    const settings = { upstreams: [{ id: 'main', baseUrl: 'https://api.example.test/v1', keys: [{ id: 'a', key: 'sk-test-aaaaaaaaaaaa' }, { id: 'b', key: 'sk-test-bbbbbbbbbbbb' }] }] };
    const first = new Pool(settings, { now: () => clock.t, sync });
    const second = new Pool(settings, { now: () => clock.t, sync });
    const choice = first.find('main', 'a');
    if (!choice) throw new Error('no key a');
    first.start(choice).finish({ status: 401 });
    const picked = Array.from({ length: 6 }, () => second.select('gpt-4o')?.key.id);
    expect(picked).toEqual(['b', 'b', 'b', 'b', 'b', 'b']);
  });
});

describe('newer wins', () => {
  const cooling: HealthRecord = { state: 'cooling', reason: 'rate_limited', until: T0 + 5000, since: T0, strikes: 0, updatedAt: T0 };
  const active: HealthRecord = { state: 'active', since: T0 + 10, strikes: 0, updatedAt: T0 + 10 };

  it('an older record does not overwrite a newer one, in a process or in the sync', async () => {
    const sync = new MemoryHealthSync();
    const health = new KeyHealth({ now: () => T0 });
    expect(health.merge(KEY, active)).toBe(true);
    expect(health.merge(KEY, cooling)).toBe(false);
    expect(health.record(KEY)).toEqual(active);
    await sync.publish(KEY, active);
    await sync.publish(KEY, cooling);
    expect((await sync.load()).get(KEY)).toEqual(active);
  });

  it('records written in one millisecond still order', () => {
    const health = new KeyHealth({ now: () => T0 });
    health.disable(KEY);
    health.enable(KEY);
    health.disable(KEY);
    expect(health.record(KEY).updatedAt).toBe(T0 + 2);
  });
});

describe('a store that fails', () => {
  it('keeps the local state and reports the error', async () => {
    const errors: unknown[] = [];
    const broken: HealthSync = {
      publish: () => Promise.reject(new Error('store down')),
      load: () => Promise.reject(new Error('store down')),
    };
    const health = new KeyHealth({ now: () => T0, sync: broken, onSyncError: (err) => errors.push(err) });
    health.disable(KEY);
    await new Promise((resolve) => setImmediate(resolve));
    expect(health.availability(KEY)).toEqual({ kind: 'resting', reason: 'manual' });
    expect(errors).toEqual([new Error('store down')]);
    await expect(health.refresh()).rejects.toThrow('store down');
  });
});

describe('records read back from a store', () => {
  it('a well-formed record parses to itself', () => {
    const record: HealthRecord = { state: 'disabled', reason: 'insufficient_quota', until: T0 + 60_000, since: T0, strikes: 2, updatedAt: T0 };
    expect(parseHealthRecord(JSON.parse(JSON.stringify(record)))).toEqual(record);
    expect(parseHealthRecord({ state: 'active', since: 0, strikes: 0, updatedAt: 1, extra: 'dropped' })).toEqual({ state: 'active', since: 0, strikes: 0, updatedAt: 1 });
  });

  it.each([
    ['null', null],
    ['a string', 'active'],
    ['an unknown state', { state: 'broken', since: 0, strikes: 0, updatedAt: 0 }],
    ['an unknown reason', { state: 'cooling', reason: 'bored', since: 0, strikes: 0, updatedAt: 0 }],
    ['a string time', { state: 'active', since: '0', strikes: 0, updatedAt: 0 }],
    ['a missing field', { state: 'active', since: 0, updatedAt: 0 }],
    ['an infinite until', { state: 'cooling', until: Infinity, since: 0, strikes: 0, updatedAt: 0 }],
  ])('%s is refused', (_name, value) => {
    expect(parseHealthRecord(value)).toBeUndefined();
  });
});
