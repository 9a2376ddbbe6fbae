// Choosing an upstream and a key for one request: model globs, health, keys already tried, pinned
// objects, probes, and the earliest recovery when nothing is usable (docs/reliability.md, case 16).
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Pool, type PoolSettings, type UpstreamSettings } from '../src/pool/pool.js';
import type { StrategyName } from '../src/pool/strategies.js';

const T0 = 1_700_000_000_000;

function upstream(id: string, keys: string[], extra: Partial<UpstreamSettings> = {}): UpstreamSettings {
  return { id, baseUrl: `https://${id}.example.test/v1`, keys: keys.map((k) => ({ id: k, key: `sk-test-${id}-${k}-0123456789` })), ...extra };
}

function pool(settings: PoolSettings) {
  const clock = { t: T0 };
  return { pool: new Pool(settings, { now: () => clock.t, random: () => 0.5 }), clock };
}

function fail(p: Pool, upstreamId: string, keyId: string, status: number, headers: Record<string, string> = {}) {
  const choice = p.find(upstreamId, keyId);
  if (!choice) throw new Error(`no key ${upstreamId}/${keyId}`);
  p.start(choice).finish({ status, headers });
}

describe('upstream by model', () => {
  const settings: PoolSettings = {
    upstreams: [upstream('azure', ['x'], { models: ['gpt-4o*'] }), upstream('openai', ['a', 'b'], { models: ['*'] })],
  };

  it('the first upstream whose globs match', () => {
    const { pool: p } = pool(settings);
    expect(p.select('gpt-4o-mini')?.upstream.id).toBe('azure');
    expect(p.select('o3')?.upstream.id).toBe('openai');
    expect(p.select(undefined)?.upstream.id).toBe('azure');
  });

  it('no upstream for the model', () => {
    const { pool: p } = pool({ upstreams: [upstream('only', ['a'], { models: ['gpt-*'] })] });
    expect(p.choose({ model: 'claude' })).toEqual({ ok: false, reason: 'no_upstream' });
  });

  it('does not spill over to the next upstream when the first has no usable key', () => {
    const { pool: p } = pool(settings);
    fail(p, 'azure', 'x', 401);
    expect(p.choose({ model: 'gpt-4o' })).toEqual({ ok: false, reason: 'unavailable', retryAt: T0 + 45_000 });
  });
});

describe('keys', () => {
  it('only those whose model globs allow the model', () => {
    const { pool: p } = pool({
      upstreams: [{ id: 'u', baseUrl: 'https://u.example.test/v1', keys: [{ id: 'mini', key: 'sk-test-mini-0123456789', models: ['*-mini'] }, { id: 'all', key: 'sk-test-all-0123456789' }] }],
    });
    expect(Array.from({ length: 4 }, () => p.select('gpt-4o')?.key.id)).toEqual(['all', 'all', 'all', 'all']);
    expect(Array.from({ length: 4 }, () => p.select('gpt-4o-mini')?.key.id)).toEqual(['mini', 'all', 'mini', 'all']);
  });

  it('none may serve the model', () => {
    const { pool: p } = pool({ upstreams: [{ id: 'u', baseUrl: 'https://u.example.test/v1', keys: [{ id: 'k', key: 'sk-test-k-0123456789', models: ['o*'] }] }] });
    expect(p.choose({ model: 'gpt-4o' })).toEqual({ ok: false, reason: 'no_key' });
  });

  it('not those this request already tried', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b', 'c'])] });
    const tried = new Set(['u/a', 'u/c']);
    expect(Array.from({ length: 3 }, () => p.select('m', { exclude: tried })?.key.id)).toEqual(['b', 'b', 'b']);
    expect(p.choose({ model: 'm', exclude: new Set(['u/a', 'u/b', 'u/c']) })).toEqual({ ok: false, reason: 'exhausted' });
  });

  it('not those cooling or disabled', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b', 'c'])] });
    fail(p, 'u', 'a', 429, { 'retry-after': '10' });
    fail(p, 'u', 'c', 401);
    expect(Array.from({ length: 3 }, () => p.select('m')?.key.id)).toEqual(['b', 'b', 'b']);
  });
});

describe('nothing usable', () => {
  it('answers at once with the earliest recovery', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b', 'c'])] });
    fail(p, 'u', 'a', 429, { 'retry-after': '30' });
    fail(p, 'u', 'b', 429, { 'retry-after-ms': '1200' });
    fail(p, 'u', 'c', 401);
    expect(p.choose({ model: 'm' })).toEqual({ ok: false, reason: 'unavailable', retryAt: T0 + 1200 });
  });

  it('recovers on its own when the time comes', () => {
    const { pool: p, clock } = pool({ upstreams: [upstream('u', ['a'])] });
    fail(p, 'u', 'a', 429, { 'retry-after': '2' });
    expect(p.select('m')).toBeUndefined();
    clock.t += 2000;
    expect(p.select('m')?.key.id).toBe('a');
  });

  it('readiness counts the keys usable now', () => {
    const { pool: p, clock } = pool({ upstreams: [upstream('u', ['a', 'b']), upstream('v', ['c'])] });
    expect(p.usableCount()).toBe(3);
    fail(p, 'u', 'a', 429, { 'retry-after': '1' });
    p.setEnabled('v', 'c', false);
    expect(p.usableCount()).toBe(1);
    clock.t += 1000;
    expect(p.usableCount()).toBe(2);
  });

  it('no recovery time when only the admin can bring a key back', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b'])] });
    p.setEnabled('u', 'a', false);
    p.setEnabled('u', 'b', false);
    expect(p.choose({ model: 'm' })).toEqual({ ok: false, reason: 'unavailable' });
    expect(p.setEnabled('u', 'zzz', true)).toBe(false);
  });

  it('an upstream without keys', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', [])] });
    expect(p.choose({ model: 'm' })).toEqual({ ok: false, reason: 'no_key' });
    expect(p.size).toBe(0);
  });
});

describe('probes', () => {
  it('a disabled key due for its probe takes the next request, one at a time', () => {
    const { pool: p, clock } = pool({ upstreams: [upstream('u', ['a', 'b'])] });
    fail(p, 'u', 'a', 401);
    clock.t += 45_000;
    const first = p.choose({ model: 'm' });
    expect(first).toMatchObject({ ok: true, choice: { key: { id: 'a' }, probe: true } });
    // While the probe is out, others go elsewhere.
    expect(p.select('m')?.key.id).toBe('b');
    expect(p.select('m')?.key.id).toBe('b');
    if (!first.ok) throw new Error('no probe');
    p.start(first.choice).finish({ status: 200 });
    expect(p.describe()[0]?.keys[0]).toMatchObject({ id: 'a', state: 'active' });
  });
});

describe('pinned to the key that holds an object', () => {
  const settings = { upstreams: [upstream('u', ['a', 'b']), upstream('v', ['c'], { models: ['other-*'] })] };

  it('that key, whatever the strategy or the model routing says', () => {
    const { pool: p } = pool(settings);
    expect(Array.from({ length: 3 }, () => p.select('m', { pinned: { upstreamId: 'u', keyId: 'b' } })?.key.id)).toEqual(['b', 'b', 'b']);
    expect(p.select('m', { pinned: { upstreamId: 'v', keyId: 'c' } })?.key.ref).toBe('v/c');
  });

  it('or none: no failover to a key that cannot see the object', () => {
    const { pool: p } = pool(settings);
    fail(p, 'u', 'b', 429, { 'retry-after': '5' });
    expect(p.choose({ model: 'm', pinned: { upstreamId: 'u', keyId: 'b' } })).toEqual({ ok: false, reason: 'unavailable', retryAt: T0 + 5000 });
    expect(p.choose({ model: 'm', pinned: { upstreamId: 'u', keyId: 'a' }, exclude: new Set(['u/a']) })).toEqual({ ok: false, reason: 'exhausted' });
  });

  it('a key no longer configured', () => {
    const { pool: p } = pool(settings);
    expect(p.choose({ model: 'm', pinned: { upstreamId: 'u', keyId: 'gone' } })).toEqual({ ok: false, reason: 'pinned_missing' });
  });
});

describe('strategies from the settings', () => {
  it.each<[StrategyName, string]>([
    ['round-robin', 'abcabc'],
    ['weighted', 'aabaca'],
  ])('%s', (strategy, order) => {
    const { pool: p } = pool({
      upstreams: [{ id: 'u', baseUrl: 'https://u.example.test/v1', strategy, keys: [{ id: 'a', key: 'sk-test-a-0123456789', weight: 4 }, { id: 'b', key: 'sk-test-b-0123456789' }, { id: 'c', key: 'sk-test-c-0123456789' }] }],
    });
    const picks = Array.from({ length: 6 }, () => p.select('m')?.key.id).join('');
    expect(picks).toBe(order);
  });

  it('least in flight counts the attempts started and not finished', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b'], { strategy: 'least-in-flight' })] });
    const first = p.select('m');
    if (!first) throw new Error('no key');
    const attempt = p.start(first);
    expect(p.select('m')?.key.id).not.toBe(first.key.id);
    expect(p.select('m')?.key.id).not.toBe(first.key.id);
    attempt.finish({ status: 200 });
    expect(attempt.finish({ status: 500 })).toEqual({ kind: 'ok' });
    expect(p.health.stats(first.key.ref)).toMatchObject({ inFlight: 0, failures: 0 });
  });

  it('rate-aware: a key whose answers say it is nearly spent gets less traffic', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b'], { strategy: 'rate-aware' })] });
    const seen = { a: 0, b: 0 };
    for (let i = 0; i < 200; i++) {
      const choice = p.select('m');
      if (!choice) throw new Error('no key');
      const id = choice.key.id as 'a' | 'b';
      seen[id]++;
      // Key a's project is nearly spent; b has plenty. Both reset in a minute.
      const remaining = id === 'a' ? '10' : '9000';
      p.start(choice).finish({
        status: 200,
        headers: { 'x-ratelimit-limit-requests': '10000', 'x-ratelimit-remaining-requests': remaining, 'x-ratelimit-reset-requests': '1m0s' },
      });
    }
    expect(seen.a).toBeLessThan(5);
    expect(seen.a + seen.b).toBe(200);
  });

  it('the settings as loadConfig gives them', () => {
    const config = loadConfig({ OPENAI_API_KEYS: 'sk-test-env-one-0123456789,sk-test-env-two-0123456789' });
    const p = new Pool(config);
    expect(p.size).toBe(2);
    expect(p.upstreams[0]).toMatchObject({ id: 'default', strategy: 'round-robin', origin: 'https://api.openai.com', basePath: '/v1' });
    expect(p.secrets()).toEqual(['sk-test-env-one-0123456789', 'sk-test-env-two-0123456789']);
  });
});

describe("the admin's view", () => {
  it('each key with its last 4 characters, state and counts, and no secret', () => {
    const { pool: p } = pool({ upstreams: [upstream('u', ['a', 'b'])] });
    fail(p, 'u', 'a', 429, { 'retry-after': '9' });
    p.setEnabled('u', 'b', false);
    expect(p.describe()).toEqual([
      {
        id: 'u',
        strategy: 'round-robin',
        keys: [
          { id: 'a', last4: '6789', state: 'cooling', reason: 'rate_limited', until: T0 + 9000, inFlight: 0, requests: 1, failures: 1, consecutiveFailures: 0 },
          { id: 'b', last4: '6789', state: 'disabled', reason: 'manual', inFlight: 0, requests: 0, failures: 0, consecutiveFailures: 0 },
        ],
      },
    ]);
    expect(JSON.stringify(p.describe())).not.toContain('sk-test');
  });
});

describe('pinned requests and the strategy', () => {
  it.each<StrategyName>(['round-robin', 'weighted'])('%s: pinned picks do not move the cursor of the unpinned ones', (strategy) => {
    const { pool: p } = pool({ upstreams: [upstream('openai', ['a', 'b'], { strategy })] });
    const unpinned: string[] = [];
    for (let i = 0; i < 6; i++) {
      expect(p.select('gpt-4o', { pinned: { upstreamId: 'openai', keyId: 'a' } })?.key.id).toBe('a');
      unpinned.push(p.select('gpt-4o')?.key.id ?? '');
    }
    expect(unpinned.filter((k) => k === 'a')).toHaveLength(3);
    expect(unpinned.filter((k) => k === 'b')).toHaveLength(3);
  });
});
