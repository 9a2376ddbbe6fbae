// ioredis clients that fail fast: no offline queue (a command while disconnected fails at once
// instead of waiting for a reconnect), a short command timeout (a frozen Redis costs one timeout,
// not a hang), one retry per request, and endless reconnects in the background so that the
// gateway recovers by itself (docs/reliability.md, cases 25-29).
import { Cluster, Redis, type RedisOptions, type Result } from 'ioredis';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { RESERVE_ARGS, RESERVE_KEYS, RESERVE_LUA, SETTLE_ARGS, SETTLE_KEYS, SETTLE_LUA, USAGE_LUA, batchOf } from '../quota/scripts.js';
import { LEASE_ARGS, LEASE_KEYS, LEASE_LUA } from '../quota/lease-script.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** Batches (scripts.ts batchOf): the number of keys, the keys, the arguments. */
    krReserve(numKeys: number, ...keysAndArgs: Array<string | number>): Result<unknown[][], Context>;
    krSettle(numKeys: number, ...keysAndArgs: Array<string | number>): Result<number[], Context>;
    krLease(numKeys: number, ...keysAndArgs: Array<string | number>): Result<unknown[][], Context>;
    krUsage(...keysAndArgs: Array<string | number>): Result<unknown[], Context>;
  }
}

export type RedisClient = Redis | Cluster;

/** The hash tag of a user's keys; an id with braces would break the tag, so it is hex-encoded. */
export function userTag(userId: string): string {
  return /[{}]/.test(userId) ? `{x:${Buffer.from(userId).toString('hex')}}` : `{u:${userId}}`;
}

export interface RedisTarget {
  url?: string;
  clusterNodes?: string[];
}

const reconnectDelay = (times: number): number => Math.min(100 * times, 2000);

function nodeOf(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)) };
}

/** Where the client connects, for log lines: never the URL itself, which may hold a password. */
export function describeTarget(target: RedisTarget): string {
  if (target.clusterNodes?.length) return `cluster ${target.clusterNodes.join(',')}`;
  try {
    const url = new URL(target.url ?? '');
    return `${url.protocol}//${url.host}`;
  } catch {
    return 'redis';
  }
}

export function createRedisClient(target: RedisTarget, name: string, commandTimeoutMs: number, log: Logger): RedisClient {
  const options: RedisOptions = {
    connectionName: `keyrelay-${name}`,
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs * 4),
    maxRetriesPerRequest: 1,
    // A command that got no answer before the connection dropped has already failed its caller;
    // the store resends what must still happen (settles), idempotently, by itself.
    autoResendUnfulfilledCommands: false,
    // No auto-pipelining: it saves write syscalls, but its per-command bookkeeping costs more CPU
    // than they do. Measured with the quota scripts (one reserve and one settle per request, 32 at a
    // time): 72 µs of gateway CPU per pair with it, 60 µs without; one at a time, 216 µs and 132 µs.
    enableAutoPipelining: false,
  };
  const client: RedisClient = target.clusterNodes?.length
    ? new Cluster(target.clusterNodes.map(nodeOf), {
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelay,
        slotsRefreshTimeout: Math.max(1000, commandTimeoutMs * 2),
        redisOptions: options,
      })
    : new Redis(target.url ?? '', { ...options, enableOfflineQueue: false, retryStrategy: reconnectDelay });

  client.defineCommand('krReserve', { lua: batchOf(RESERVE_LUA, RESERVE_KEYS, RESERVE_ARGS) });
  client.defineCommand('krSettle', { lua: batchOf(SETTLE_LUA, SETTLE_KEYS, SETTLE_ARGS) });
  client.defineCommand('krLease', { lua: batchOf(LEASE_LUA, LEASE_KEYS, LEASE_ARGS) });
  client.defineCommand('krUsage', { numberOfKeys: 6, lua: USAGE_LUA, readOnly: true });

  // One line when Redis goes away and one when it is back, not one per reconnect attempt.
  let healthy = true;
  const where = describeTarget(target);
  client.on('error', (err: NodeJS.ErrnoException) => {
    if (!healthy) return;
    healthy = false;
    log.warn({ redis: where, client: name, code: err.code, reason: err.message }, 'redis unreachable: quota-gated requests get 503 until it is back');
  });
  client.on('ready', () => {
    if (healthy) return;
    healthy = true;
    log.info({ redis: where, client: name }, 'redis reachable again');
  });
  return client;
}

/**
 * Holds the client's writes until the current callback is done, so that what it sends (the quota
 * batches of a round) leaves in one syscall. Only a single Redis: a cluster client writes to a
 * connection per node.
 */
export function writeTogether(client: RedisClient): void {
  if (client instanceof Cluster) return;
  const socket = client.stream as Socket | undefined;
  if (!socket || socket.writableCorked > 0) return;
  socket.cork();
  process.nextTick(() => socket.uncork());
}

/** Resolves true once the client is ready, false after `ms` (the gateway starts either way). */
export function waitReady(client: RedisClient, ms: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    timer.unref();
    client.once('ready', onReady);
  });
}

/** Redis may evict any key under memory pressure unless its policy is `noeviction`: the volatile-*
 * policies pick among keys with a TTL, which is every quota counter. */
export async function checkEvictionPolicy(client: RedisClient, log: Logger, where: string): Promise<void> {
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
  for (const node of nodes) {
    try {
      const reply = (await node.config('GET', 'maxmemory-policy')) as unknown as string[];
      const policy = reply[1];
      if (policy !== undefined && policy !== 'noeviction') {
        log.warn(
          { redis: where, node: `${node.options.host}:${node.options.port}`, maxmemoryPolicy: policy },
          'redis maxmemory-policy is not noeviction: under memory pressure Redis may evict quota counters and reservations, and quotas stop holding; set maxmemory-policy noeviction',
        );
      }
    } catch (err) {
      log.info({ redis: where, reason: (err as Error).message }, 'could not read redis maxmemory-policy (CONFIG may be disabled): make sure it is noeviction');
    }
  }
}
