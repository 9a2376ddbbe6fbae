// The observability backends' own Redis connection, apart from the quota store's: a burst of
// request-log writes must never queue in front of an admission, and this one may be slower to
// give up. No offline queue: while Redis is away the background writers hold the records
// themselves (bounded) and try again (writer.ts).
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { type RedisClient, describeTarget, waitReady } from '../store/redis-client.js';

const reconnectDelay = (times: number): number => Math.min(100 * times, 2000);

function nodeOf(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)) };
}

export interface ObservabilityRedis {
  client: RedisClient;
  /** Waits (bounded) for the connection: without an offline queue a command before it fails. */
  ready(): Promise<void>;
  /** One warning when writes start failing, one line when they work again. */
  failed(err: unknown, what: string): void;
  recovered(what: string): void;
  close(): Promise<void>;
}

export function createObservabilityRedis(config: Pick<Config, 'redis' | 'quota'>, log: Logger): ObservabilityRedis | undefined {
  const { url, clusterNodes } = config.redis;
  if (!url && !clusterNodes?.length) return undefined;
  const timeout = Math.max(2000, config.quota.redisCommandTimeoutMs * 2);
  const options: RedisOptions = {
    connectionName: 'keyrelay-observability',
    commandTimeout: timeout,
    connectTimeout: timeout,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
  };
  const client: RedisClient = clusterNodes?.length
    ? new Cluster(clusterNodes.map(nodeOf), { enableOfflineQueue: false, clusterRetryStrategy: reconnectDelay, redisOptions: options })
    : new Redis(url ?? '', { ...options, enableOfflineQueue: false, retryStrategy: reconnectDelay });
  // The quota client already says when Redis goes away; this one only keeps its errors quiet.
  client.on('error', () => {});

  const failing = new Set<string>();
  const where = describeTarget(config.redis);
  return {
    client,
    async ready() {
      if (client.status !== 'ready') await waitReady(client, timeout);
    },
    failed(err, what) {
      if (failing.has(what)) return;
      failing.add(what);
      const e = err as NodeJS.ErrnoException;
      log.warn({ redis: where, what, code: e.code, reason: e.message }, 'observability writes to redis failing: records are held in memory (bounded) and sent when it is back');
    },
    recovered(what) {
      if (failing.delete(what)) log.info({ redis: where, what }, 'observability writes to redis work again');
    },
    async close() {
      if (client.status !== 'ready') {
        client.disconnect();
        return;
      }
      await client.quit().catch(() => client.disconnect());
    },
  };
}
