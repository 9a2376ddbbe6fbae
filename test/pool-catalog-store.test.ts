// The run-time pool catalog in each store: a change that throws writes nothing, changes racing from
// two connections are all kept (none overwrites another), every other connection is notified of a
// new version (not only by the fallback poll), and on a cluster the document and its counter share
// one slot so that one script writes both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../src/errors.js';
import { addKey } from '../src/pool/catalog.js';
import { createRedisStore } from '../src/store/redis.js';
import { CATALOG_KEY, CATALOG_VERSION_KEY } from '../src/store/redis-catalog.js';
import type { Store } from '../src/store/types.js';
import { capturingLogger } from './helpers/log-capture.js';
import { type Backend, STORE_BACKENDS } from './helpers/store-backends.js';

const upstream = (id: string) => ({ id, baseUrl: 'https://example.test/v1', kind: 'openai' as const, strategy: 'round-robin' as const, createdAt: '', updatedAt: '' });

describe.each(STORE_BACKENDS)('the pool catalog on the %s store', (name, makeBackend) => {
  let backend: Backend;
  let other: Store;

  beforeAll(async () => {
    backend = await makeBackend();
    const ports = backend.ports ?? [];
    other =
      name === 'memory'
        ? backend.store
        : await createRedisStore({
            ...(name === 'cluster' ? { clusterNodes: ports.map((p) => `127.0.0.1:${p}`) } : { url: `redis://127.0.0.1:${ports[0]}` }),
            commandTimeoutMs: 2000,
            log: capturingLogger(),
          });
  });
  afterAll(async () => {
    if (other !== backend.store) await other.close();
    await backend.stop();
  });

  it('writes nothing when the change throws', async () => {
    const before = await backend.store.poolCatalog.read();
    await expect(
      backend.store.poolCatalog.update((catalog) => {
        catalog.upstreams.push(upstream('half'));
        throw new GatewayError('invalid_request', { param: 'baseUrl' });
      }),
    ).rejects.toThrow(GatewayError);
    expect(await backend.store.poolCatalog.read()).toEqual(before);
  });

  it('keeps every one of 20 changes racing from two connections, and tells the other connection', async () => {
    const notices: Array<number | undefined> = [];
    const unwatch = other.poolCatalog.watch((version) => notices.push(version));
    const start = (await backend.store.poolCatalog.read()).version;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? other : backend.store).poolCatalog.update((catalog) => {
          catalog.upstreams.push(upstream(`u${i}`));
        }),
      ),
    );
    const after = await other.poolCatalog.read();
    expect(after.version).toBe(start + 20);
    expect(after.catalog.upstreams.map((u) => u.id).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `u${i}`).sort());
    // A notification (no version given), not only the poll of the counter.
    const deadline = Date.now() + 5000;
    while (!notices.includes(undefined) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(notices).toContain(undefined);
    unwatch();
    // The script that writes both keys at once needs them in one slot.
    if (backend.slot) expect(await backend.slot(CATALOG_KEY)).toBe(await backend.slot(CATALOG_VERSION_KEY));
  });

  it('lets exactly one of two connections racing to add the same key id have it', async () => {
    const settings = { upstreams: new Set<string>(), keys: new Map<string, Set<string>>() };
    const key = (sealed: string) => ({ id: 'same', sealed, last4: 'abcd', weight: 1, createdAt: '', updatedAt: '' });
    const results = await Promise.allSettled(
      [backend.store, other, backend.store, other].map((store, i) => store.poolCatalog.update((catalog) => addKey(catalog, settings, 'u0', key(`v${i}`)))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as GatewayError).code).toBe('conflict');
    expect((await other.poolCatalog.read()).catalog.keys.u0?.map((k) => k.id)).toEqual(['same']);
  });
});
