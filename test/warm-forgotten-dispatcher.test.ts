// Warm routes (src/relay/warm.ts) when a proxy list's dispatcher is let go while a request queued
// on it still opens a connection, and the same list is named again later (a key's proxy changed
// and changed back): the new dispatcher's route must use the new connector, not a forgotten one.
import { expect, it } from 'vitest';
import type { buildConnector } from 'undici';
import { WarmConnections } from '../src/relay/warm.js';

const OPTIONS = { protocol: 'https:', host: 'api.upstream.test', hostname: 'api.upstream.test', port: '443' } as unknown as buildConnector.Options;

it('a connection opened by a forgotten dispatcher leaves no route behind for the list made anew', () => {
  const warm = new WarmConnections({ maxIdleMs: 60_000, forMs: 60_000, live: () => true });
  const calls: string[] = [];
  const connector = (name: string) => ((_options: unknown, _callback: unknown) => void calls.push(name)) as unknown as buildConnector.connector;
  try {
    const old = warm.wrap('["p1"]', connector('old'));
    warm.use('["p1"]', 'https://api.upstream.test', 'main/k1');
    warm.forget('["p1"]');
    // The old dispatcher, closing, opens one more connection for a request queued on it.
    old(OPTIONS, () => {});
    expect(calls).toEqual(['old']);
    const made = warm.wrap('["p1"]', connector('new'));
    expect(() => warm.use('["p1"]', 'https://api.upstream.test', 'main/k1')).not.toThrow();
    made(OPTIONS, () => {});
    // The new dispatcher's own connection, and its warm one: both by the new connector.
    expect(calls.slice(1).every((c) => c === 'new')).toBe(true);
    expect(calls.length).toBeGreaterThan(1);
  } finally {
    warm.close();
  }
});
