// Picks the store from the settings: Redis Cluster (REDIS_CLUSTER_NODES), Redis (REDIS_URL), or
// the in-memory store for a single process.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { createMemoryStore } from './memory.js';
import { createRedisStore } from './redis.js';
import type { Store } from './types.js';

export async function createStore(config: Pick<Config, 'redis' | 'quota'>, log: Logger): Promise<Store> {
  const { url, clusterNodes } = config.redis;
  const { leases: on, leaseSeconds } = config.quota;
  const common = { commandTimeoutMs: config.quota.redisCommandTimeoutMs, log, ...(on === 'on' || on === true ? { leases: { ttlMs: (leaseSeconds ?? 10) * 1000 } } : {}) };
  if (clusterNodes?.length) return createRedisStore({ clusterNodes, ...common });
  if (url) return createRedisStore({ url, ...common });
  return createMemoryStore();
}
