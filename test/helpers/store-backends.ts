// The three store backends the store-level suites run against: the in-memory store, a Redis, and
// a three-master Redis Cluster, each with a look at the Redis keys behind it.
import { createMemoryStore } from '../../src/store/memory.js';
import { createRedisStore } from '../../src/store/redis.js';
import type { Store } from '../../src/store/types.js';
import { capturingLogger } from './log-capture.js';
import { type RedisCluster, type RedisServer, redisCli, startRedis, startRedisCluster } from './redis-server.js';

const log = capturingLogger();

export interface Backend {
  store: Store;
  /** The ports of the Redis servers behind the store (every master of a cluster). */
  ports?: number[];
  /** Every key of the backend that matches, with its remaining time to live (-1: none). */
  keys?(pattern: string): Promise<Array<{ key: string; pttl: number }>>;
  slot?(key: string): Promise<number>;
  stop(): Promise<void>;
}

async function keysOn(ports: number[], pattern: string): Promise<Array<{ key: string; pttl: number }>> {
  const out: Array<{ key: string; pttl: number }> = [];
  for (const port of ports) {
    const found = (await redisCli(port, '--scan', '--pattern', pattern)).split('\n').filter(Boolean);
    for (const key of found) out.push({ key, pttl: Number(await redisCli(port, 'pttl', key)) });
  }
  return out;
}

export const STORE_BACKENDS: Array<[string, () => Promise<Backend>]> = [
  ['memory', async () => ({ store: createMemoryStore(), stop: async () => {} })],
  [
    'redis',
    async () => {
      const server: RedisServer = await startRedis();
      const store = await createRedisStore({ url: server.url, commandTimeoutMs: 2000, log });
      return {
        store,
        ports: [server.port],
        keys: (pattern) => keysOn([server.port], pattern),
        async stop() {
          await store.close();
          await server.stop();
        },
      };
    },
  ],
  [
    'cluster',
    async () => {
      const cluster: RedisCluster = await startRedisCluster();
      const store = await createRedisStore({ clusterNodes: cluster.nodes, commandTimeoutMs: 2000, log });
      return {
        store,
        ports: cluster.ports,
        keys: (pattern) => keysOn(cluster.ports, pattern),
        slot: async (key) => Number(await redisCli(cluster.ports[0] as number, 'cluster', 'keyslot', key)),
        async stop() {
          await store.close();
          await cluster.stop();
        },
      };
    },
  ],
];
