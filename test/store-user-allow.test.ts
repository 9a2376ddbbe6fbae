// A user's `allow` list (the operations refused unless allowed, src/operations/costs.ts) is kept by
// every store backend, changed and removed by an update, and read with the caller of a key: what
// the relay decides on in each process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestKey } from '../src/keys.js';
import type { User } from '../src/store/types.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

describe.each(STORE_BACKENDS)('the %s store', (_name, make) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await make();
  }, 60_000);
  afterAll(() => backend?.stop());

  it('keeps, changes and removes allow, and the caller of a key sees each change', async () => {
    const id = `allow-${Math.random().toString(36).slice(2, 8)}`;
    const user: User = { id, limits: { usdPerDay: 1 }, allow: ['realtime_client_secrets'], createdAt: new Date().toISOString() };
    expect(await backend.store.createUser(user)).toBe(true);
    const secret = `kr-test-${id}`;
    await backend.store.createKey({ id: `key-${id}`, userId: id, prefix: 'kr-test', digest: digestKey(secret), createdAt: user.createdAt });
    const callerAllow = async () => (await backend.store.findCaller(digestKey(secret)))?.user?.allow;

    expect((await backend.store.getUser(id))?.allow).toEqual(['realtime_client_secrets']);
    expect(await callerAllow()).toEqual(['realtime_client_secrets']);
    expect((await backend.store.updateUser(id, { allow: ['fine_tuning', 'graders'] }))?.allow).toEqual(['fine_tuning', 'graders']);
    expect(await callerAllow()).toEqual(['fine_tuning', 'graders']);
    // Other changes keep it.
    expect((await backend.store.updateUser(id, { limits: { usdPerDay: 2 } }))?.allow).toEqual(['fine_tuning', 'graders']);
    await backend.store.updateUser(id, { allow: undefined });
    expect((await backend.store.getUser(id))?.allow).toBeUndefined();
    expect(await callerAllow()).toBeUndefined();
  });
});
