// Picks the store from the settings: Redis Cluster (REDIS_CLUSTER_NODES), Redis (REDIS_URL), or
// the in-memory store for a single process.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { createMemoryStore } from './memory.js';
import { createRedisStore } from './redis.js';
import type { Store } from './types.js';

export async function createStore(config: Pick<Config, 'redis' | 'quota'>, log: Logger): Promise<Store> {
  const { url, clusterNodes } = config.redis;
  if (clusterNodes?.length) return createRedisStore({ clusterNodes, commandTimeoutMs: config.quota.redisCommandTimeoutMs, log });
  if (url) return createRedisStore({ url, commandTimeoutMs: config.quota.redisCommandTimeoutMs, log });
  return createMemoryStore();
}
