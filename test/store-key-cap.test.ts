// The cap on a user's live keys at the store, on memory, Redis and a Redis Cluster: checked and
// taken in one step (20 creations at once leave exactly the cap), keys made before any cap was
// asked for counted all the same, revoked and expired keys not counted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyRecord } from '../src/store/types.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

let seq = 0;
function key(userId: string, extra: Partial<KeyRecord> = {}): KeyRecord {
  const n = ++seq;
  return { id: `key_cap_${n}`, userId, prefix: 'sk-kr-abcd', digest: `digest-cap-${n}`.padEnd(64, '0'), createdAt: new Date().toISOString(), ...extra };
}

describe.each(STORE_BACKENDS)('the cap on live keys on the %s store', (_name, make) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await make();
  }, 60_000);
  afterAll(() => backend?.stop());

  const newUser = async (id: string) => expect(await backend.store.createUser({ id, limits: {}, createdAt: new Date().toISOString() })).toBe(true);

  it('lets exactly the cap through of 20 creations at once', async () => {
    await newUser('u-at-once');
    const made = await Promise.all(Array.from({ length: 20 }, () => backend.store.createKey(key('u-at-once'), 7)));
    expect(made.filter(Boolean)).toHaveLength(7);
    expect(await backend.store.listKeys('u-at-once')).toHaveLength(7);
  });

  it('counts keys made before a cap was asked for, and not revoked or expired ones', async () => {
    await newUser('u-older');
    const older = [key('u-older'), key('u-older'), key('u-older'), key('u-older', { expiresAt: new Date(Date.now() - 1000).toISOString() })];
    for (const k of older) await backend.store.createKey(k);
    expect(await backend.store.createKey(key('u-older'), 3)).toBe(false);
    expect(await backend.store.revokeKey(older[0]!.id, new Date().toISOString())).toBeDefined();
    expect(await backend.store.createKey(key('u-older'), 3)).toBe(true);
    expect(await backend.store.createKey(key('u-older'), 3)).toBe(false);
    const soon = key('u-older', { expiresAt: new Date(Date.now() + 300).toISOString() });
    expect(await backend.store.createKey(soon, 4)).toBe(true);
    expect(await backend.store.createKey(key('u-older'), 4)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await backend.store.createKey(key('u-older'), 4)).toBe(true);
  });
});
