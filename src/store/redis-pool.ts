// What the key pool keeps in Redis, for every gateway process to share.
//
// Key health: one hash, `kr:{pool}:health`, one JSON record per pool key (`upstreamId/keyId`),
// written by a script that keeps the newer record (src/pool/health-sync.ts), so two processes
// writing at once cannot put an older state back. Each process reads the whole hash every second
// (and at start): polling, not pub/sub, because a message published while a process was cut off
// from Redis is lost, while the next poll catches up by itself; the hash holds one small record
// per key, so a poll costs one HGETALL. Another process thus avoids a disabled key within a second.
// The hash has no TTL: a key an admin disabled must stay disabled however long nothing changes.
// Object owners are src/store/redis-owners.ts.
import type { Result } from 'ioredis';
import type { Logger } from 'pino';
import { type HealthRecord, type HealthSync, parseHealthRecord } from '../pool/health-sync.js';
import type { RedisClient } from './redis-client.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krHealthPut(key: string, keyRef: string, record: string, updatedAt: number): Result<number, Context>;
  }
}

export const HEALTH_KEY = 'kr:{pool}:health';
export const HEALTH_POLL_MS = 1000;

// Writes the record unless the stored one is as new or newer (a record that does not parse loses).
const HEALTH_PUT_LUA = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if ok and type(record) == 'table' and tonumber(record.updatedAt) and tonumber(record.updatedAt) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

export function redisKeyHealth(client: RedisClient, log: Logger, pollMs = HEALTH_POLL_MS): HealthSync {
  client.defineCommand('krHealthPut', { numberOfKeys: 1, lua: HEALTH_PUT_LUA });

  async function load(): Promise<Map<string, HealthRecord>> {
    const raw = await client.hgetall(HEALTH_KEY);
    const records = new Map<string, HealthRecord>();
    for (const [ref, json] of Object.entries(raw)) {
      let record: HealthRecord | undefined;
      try {
        record = parseHealthRecord(JSON.parse(json));
      } catch {
        record = undefined;
      }
      if (record) records.set(ref, record);
    }
    return records;
  }

  return {
    async publish(keyRef, record) {
      await client.krHealthPut(HEALTH_KEY, keyRef, JSON.stringify(record), record.updatedAt);
    },
    load,
    subscribe(listener) {
      let failing = false;
      const poll = () => {
        load().then(
          (records) => {
            if (failing) log.info('pool key health: the shared records are readable again');
            failing = false;
            for (const [ref, record] of records) listener(ref, record);
          },
          (err: unknown) => {
            if (!failing) log.warn({ reason: (err as Error).message }, 'pool key health: cannot read the shared records; this process goes by what it sees itself until Redis answers');
            failing = true;
          },
        );
      };
      const timer = setInterval(poll, pollMs);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
