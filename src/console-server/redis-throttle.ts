// Sign-in failures on Redis and Redis Cluster, so that every gateway process on one Redis counts
// the same guesses: one counter per address or key, `kr:console:throttle:<kind>:<id>`, that
// expires at the end of its window (Redis's clock, one for all processes). Each call is one
// script on one key, so a cluster spreads the counters over its slots freely.
import type { Result } from 'ioredis';
import type { RedisClient } from '../store/redis-client.js';
import { type FailureCounter, SIGN_IN_THROTTLE, type ThrottleOptions } from './throttle.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krThrottleBegin(key: string, limit: number, windowMs: number): Result<number, Context>;
    krThrottleForgive(key: string): Result<number, Context>;
  }
}

export const failuresKey = (kind: string, id: string): string => `kr:console:throttle:${kind}:${id}`;

// The ms left of a full window (counting nothing), or 0 after counting one failure; a counter
// that somehow lost its expiry gets one.
const BEGIN_LUA = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then return ttl end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(ARGV[2])
end
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;
// DECR keeps the key's expiry; a counter at 0 or gone is left alone.
const FORGIVE_LUA = `
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
`;

export function redisFailureCounter(client: RedisClient, options: ThrottleOptions = SIGN_IN_THROTTLE): FailureCounter {
  client.defineCommand('krThrottleBegin', { numberOfKeys: 1, lua: BEGIN_LUA });
  client.defineCommand('krThrottleForgive', { numberOfKeys: 1, lua: FORGIVE_LUA });
  return {
    async begin(kind, id) {
      const ms = await client.krThrottleBegin(failuresKey(kind, id), options.limit, options.windowMs);
      return ms > 0 ? Math.ceil(ms / 1000) : 0;
    },
    async forgive(kind, id) {
      await client.krThrottleForgive(failuresKey(kind, id));
    },
  };
}
