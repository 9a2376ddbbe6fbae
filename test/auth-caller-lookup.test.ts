// Authentication reads the caller (key and user) as currently stored, on every backend, although
// the Redis store remembers callers for up to a second: a revocation, a user update or a deletion
// made through this process counts for its next request, and one made through another process
// sharing the store counts there within that second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate } from '../src/auth.js';
import { digestKey, newGatewayKey } from '../src/keys.js';
import { CALLER_TTL_MS } from '../src/store/caller-cache.js';
import { createMemoryStore } from '../src/store/memory.js';
import { createRedisStore } from '../src/store/redis.js';
import type { KeyRecord, Store, User } from '../src/store/types.js';
import { capturingLogger, registerSecret } from './helpers/log-capture.js';
import { type RedisCluster, type RedisServer, startRedis, startRedisCluster } from './helpers/redis-server.js';

const log = capturingLogger();

interface Backend {
  /** Two stores on the same data, as two gateway processes have. */
  here: Store;
  there: Store;
  stop(): Promise<void>;
}

const BACKENDS: Array<[string, () => Promise<Backend>]> = [
  [
    'memory',
    async () => {
      const store = createMemoryStore();
      return { here: store, there: store, stop: () => store.close() };
    },
  ],
  [
    'redis',
    async () => {
      const server: RedisServer = await startRedis();
      const here = await createRedisStore({ url: server.url, commandTimeoutMs: 2000, log });
      const there = await createRedisStore({ url: server.url, commandTimeoutMs: 2000, log });
      return {
        here,
        there,
        async stop() {
          await Promise.all([here.close(), there.close()]);
          await server.stop();
        },
      };
    },
  ],
  [
    'cluster',
    async () => {
      const cluster: RedisCluster = await startRedisCluster();
      const here = await createRedisStore({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000, log });
      const there = await createRedisStore({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000, log });
      return {
        here,
        there,
        async stop() {
          await Promise.all([here.close(), there.close()]);
          await cluster.stop();
        },
      };
    },
  ],
];

const CREATED = '2030-01-01T00:00:00.000Z';
let seq = 0;

/** A user with one key; resolves the key's token, checked to authenticate on both stores. */
async function userWithKey(b: Backend, limits: User['limits'] = {}): Promise<{ user: User; key: KeyRecord; token: string }> {
  const id = `caller-${++seq}-${Math.random().toString(36).slice(2, 8)}`;
  const user: User = { id, limits, createdAt: CREATED };
  const token = newGatewayKey();
  registerSecret(token);
  const key: KeyRecord = { id: `key_${id}`, userId: id, prefix: token.slice(0, 10), digest: digestKey(token), createdAt: CREATED };
  expect(await b.here.createUser(user)).toBe(true);
  await b.here.createKey(key);
  expect(await authenticate(b.here, token)).toEqual({ user, key });
  expect(await authenticate(b.there, token)).toEqual({ user, key });
  return { user, key, token };
}

/** Resolves once `check` passes, trying again for up to twice the cache's lifetime. */
async function within(check: () => Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + 2 * CALLER_TTL_MS + 1000;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const refused = (store: Store, token: string) =>
  authenticate(store, token).then(
    () => false,
    (err: { code?: string }) => err.code === 'invalid_api_key',
  );

describe.each(BACKENDS)('the %s store', (_name, make) => {
  let b: Backend;

  beforeAll(async () => {
    b = await make();
  });
  afterAll(() => b.stop());

  it('refuses a key revoked through the same process on its next use', async () => {
    const { key, token } = await userWithKey(b);
    await b.here.revokeKey(key.id, CREATED);
    expect(await refused(b.here, token)).toBe(true);
  });

  it('applies a user update made through the same process on the next use', async () => {
    const { user, key, token } = await userWithKey(b, { rpm: 5 });
    await b.here.updateUser(user.id, { limits: { rpm: 7 } });
    expect(await authenticate(b.here, token)).toEqual({ user: { ...user, limits: { rpm: 7 } }, key });
  });

  it('refuses the keys of a user deleted through the same process on their next use', async () => {
    const { user, token } = await userWithKey(b);
    expect(await b.here.deleteUser(user.id)).toBe(true);
    expect(await refused(b.here, token)).toBe(true);
  });

  it('refuses a key revoked through another process within the cache lifetime', async () => {
    const { key, token } = await userWithKey(b);
    await b.here.revokeKey(key.id, CREATED);
    expect(await within(() => refused(b.there, token))).toBe(true);
  });
});
