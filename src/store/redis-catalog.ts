// The pool catalog (src/pool/catalog-store.ts) in Redis: the document `kr:{pool}:catalog` and its
// version counter `kr:{pool}:catalog:version`, both in the `{pool}` slot so that one script writes
// them together on a cluster too. The script writes only when the counter is still the one the
// writer read (compare and set), then moves it and publishes the new version on
// `kr:{pool}:catalog:changed`. Readers subscribe on a connection of their own and, because a
// message sent while a reader was cut off is lost, also compare the counter twice a second: one
// GET of a number, never a read of the whole catalog unless it changed.
import { Cluster, Redis, type Result } from 'ioredis';
import type { Logger } from 'pino';
import { type Catalog, parseCatalog } from '../pool/catalog.js';
import type { CatalogStore, VersionedCatalog } from '../pool/catalog-store.js';
import { type RedisClient, type RedisTarget, createRedisClient } from './redis-client.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krCatalogPut(doc: string, version: string, expected: number, json: string, channel: string): Result<number, Context>;
  }
}

export const CATALOG_KEY = 'kr:{pool}:catalog';
export const CATALOG_VERSION_KEY = 'kr:{pool}:catalog:version';
export const CATALOG_CHANNEL = 'kr:{pool}:catalog:changed';
export const CATALOG_POLL_MS = 500;
const MAX_ATTEMPTS = 20;

// KEYS: the document, the counter. ARGV: the version the writer read, the new document, the channel.
const CATALOG_PUT_LUA = `
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
local version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], version)
return version
`;

export function redisCatalogStore(data: RedisClient, target: RedisTarget, commandTimeoutMs: number, log: Logger, pollMs = CATALOG_POLL_MS): CatalogStore {
  data.defineCommand('krCatalogPut', { numberOfKeys: 2, lua: CATALOG_PUT_LUA });
  let subscriber: RedisClient | undefined;
  const listeners = new Set<(version?: number) => void>();
  let timer: NodeJS.Timeout | undefined;

  async function read(): Promise<VersionedCatalog> {
    // Both keys share a slot, so one MGET reads a document and the counter written with it.
    const [doc, version] = await data.mget(CATALOG_KEY, CATALOG_VERSION_KEY);
    return { version: Number(version ?? 0), catalog: parseCatalog(doc) };
  }

  const tell = (version?: number) => {
    for (const listener of listeners) listener(version);
  };

  function startWatching(): void {
    subscriber = createRedisClient(target, 'catalog-subscriber', commandTimeoutMs, log);
    // A subscriber connection has no command timeout to keep: it waits for messages by design.
    subscriber.on('message', (channel: string) => {
      if (channel === CATALOG_CHANNEL) tell();
    });
    // Clients here queue nothing while disconnected (redis-client.ts): subscribe once connected.
    // After a reconnect ioredis renews the subscription; what was sent meanwhile is caught by the poll.
    const subscribe = () => {
      (subscriber as Redis | Cluster).subscribe(CATALOG_CHANNEL).catch((err: unknown) => {
        log.warn({ reason: (err as Error).message }, 'pool catalog: cannot subscribe to changes; comparing the version twice a second instead');
      });
    };
    if (subscriber.status === 'ready') subscribe();
    else subscriber.once('ready', subscribe);
    timer = setInterval(() => {
      data.get(CATALOG_VERSION_KEY).then(
        (raw) => tell(Number(raw ?? 0)),
        () => {
          // Unreachable: the gateway keeps the catalog it has, and the next poll tries again.
        },
      );
    }, pollMs);
    timer.unref();
  }

  return {
    read,
    async version() {
      return Number((await data.get(CATALOG_VERSION_KEY)) ?? 0);
    },
    async update<T>(change: (catalog: Catalog) => T) {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const { version, catalog } = await read();
        const result = change(catalog);
        const written = await data.krCatalogPut(CATALOG_KEY, CATALOG_VERSION_KEY, version, JSON.stringify(catalog), CATALOG_CHANNEL);
        if (written >= 0) return { version: written, catalog, result };
      }
      throw new Error('pool catalog: too many writers at once; try again');
    },
    watch(listener) {
      listeners.add(listener);
      if (!subscriber) startWatching();
      return () => listeners.delete(listener);
    },
    async close() {
      listeners.clear();
      if (timer) clearInterval(timer);
      subscriber?.disconnect();
    },
  };
}
