// Alerts on Redis and Redis Cluster. Every key carries the hash tag `{alerts}`, so that they sit in
// one slot and each script below is one atomic step on a cluster too:
//   kr:{alerts}:webhooks          hash  id -> webhook JSON (its signing secret sealed: sealed.ts)
//   kr:{alerts}:due               zset  delivery id, scored by when it is due (or its claim ends),
//                                       in the Redis server's clock (TIME), never a process's
//   kr:{alerts}:deliveries        hash  delivery id -> delivery JSON
//   kr:{alerts}:once:<key>        string, with a time to live: who raised an event
//   kr:{alerts}:attempts:<hook>   list  of attempt JSON, newest first, capped
import type { Result } from 'ioredis';
import type { RedisClient } from '../store/redis-client.js';
import { ATTEMPTS_KEPT, type AlertStore, type Attempt, type Delivery, type StoredWebhook } from './types.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krAlertsEnqueue(due: string, deliveries: string, ...idsAndJson: string[]): Result<number, Context>;
    krAlertsClaim(due: string, deliveries: string, leaseMs: number, max: number): Result<string[], Context>;
    krAlertsReplace(webhooks: string, id: string, was: string, json: string): Result<number, Context>;
    krAlertsAttempted(due: string, deliveries: string, attempts: string, id: string, json: string, inMs: string, attempt: string, kept: number): Result<number, Context>;
  }
}

const PREFIX = 'kr:{alerts}';
const WEBHOOKS = `${PREFIX}:webhooks`;
const DUE = `${PREFIX}:due`;
const DELIVERIES = `${PREFIX}:deliveries`;
const onceKey = (key: string): string => `${PREFIX}:once:${key}`;
const attemptsKey = (webhookId: string): string => `${PREFIX}:attempts:${webhookId}`;

// The server's clock in ms: one clock for every process, whatever each one's own says.
const NOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// ARGV: delivery id, its JSON, … ; each due now.
const ENQUEUE_LUA = `${NOW_LUA}
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[1], now, ARGV[i])
end
return 1
`;

// Takes the due deliveries and pushes each one's score to the end of its claim, in one step, so
// that two processes polling at once never take the same one. ARGV: lease ms, max.
const CLAIM_LUA = `${NOW_LUA}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[2], id)
  if json then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    out[#out + 1] = json
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`;

// ARGV: delivery id, its JSON, in how many ms it is due again ('' for never), the attempt's JSON,
// attempts kept.
const ATTEMPTED_LUA = `${NOW_LUA}
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
end
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
return 1
`;

// Writes a webhook's new JSON only if it still reads as it did. ARGV: id, the JSON read, the new.
const REPLACE_LUA = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`;
// Another writer between the read and the write is rare (an admin change, a rotation): a few tries.
const REPLACE_TRIES = 5;

function parsed<T>(json: string): T | undefined {
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

export function redisAlertStore(client: RedisClient): AlertStore {
  client.defineCommand('krAlertsEnqueue', { numberOfKeys: 2, lua: ENQUEUE_LUA });
  client.defineCommand('krAlertsClaim', { numberOfKeys: 2, lua: CLAIM_LUA });
  client.defineCommand('krAlertsReplace', { numberOfKeys: 1, lua: REPLACE_LUA });
  client.defineCommand('krAlertsAttempted', { numberOfKeys: 3, lua: ATTEMPTED_LUA });
  return {
    async addWebhook(webhook: StoredWebhook) {
      return (await client.hsetnx(WEBHOOKS, webhook.id, JSON.stringify(webhook))) === 1;
    },
    async listWebhooks() {
      const all = await client.hvals(WEBHOOKS);
      return all.map((json) => parsed<StoredWebhook>(json)).filter((w): w is StoredWebhook => w !== undefined);
    },
    async updateWebhook(id: string, change: (webhook: StoredWebhook) => StoredWebhook | undefined) {
      for (let i = 0; i < REPLACE_TRIES; i++) {
        const was = await client.hget(WEBHOOKS, id);
        const found = was === null ? undefined : parsed<StoredWebhook>(was);
        const next = found && change(found);
        if (!next || was === null) return false;
        if ((await client.krAlertsReplace(WEBHOOKS, id, was, JSON.stringify({ ...next, id }))) === 1) return true;
      }
      throw new Error(`the webhook ${id} kept changing while it was rewritten`);
    },
    async removeWebhook(id: string) {
      const removed = (await client.hdel(WEBHOOKS, id)) === 1;
      if (removed) await client.del(attemptsKey(id));
      return removed;
    },
    async once(key: string, ttlMs: number) {
      return (await client.set(onceKey(key), '1', 'PX', Math.max(1, Math.round(ttlMs)), 'NX')) === 'OK';
    },
    // The `now` arguments below are the process's clock and not used: the server's decides.
    async enqueue(deliveries: Delivery[], _now: number) {
      if (deliveries.length === 0) return;
      await client.krAlertsEnqueue(DUE, DELIVERIES, ...deliveries.flatMap((d) => [d.id, JSON.stringify(d)]));
    },
    async claim(_now: number, leaseMs: number, max: number) {
      const found = await client.krAlertsClaim(DUE, DELIVERIES, leaseMs, max);
      return found.map((json) => parsed<Delivery>(json)).filter((d): d is Delivery => d !== undefined);
    },
    async attempted(delivery: Delivery, attempt: Attempt, nextAt: number | undefined, now: number) {
      const next = nextAt === undefined ? '' : String(Math.max(0, Math.round(nextAt - now)));
      await client.krAlertsAttempted(DUE, DELIVERIES, attemptsKey(delivery.webhookId), delivery.id, JSON.stringify(delivery), next, JSON.stringify(attempt), ATTEMPTS_KEPT);
    },
    async attempts(webhookId: string, limit: number) {
      const list = await client.lrange(attemptsKey(webhookId), 0, limit - 1);
      return list.map((json) => parsed<Attempt>(json)).filter((a): a is Attempt => a !== undefined);
    },
  };
}
