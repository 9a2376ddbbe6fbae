// The audit log on Redis and Redis Cluster: one stream, `kr:{audit}:log`, one field `e` holding
// the entry's JSON. The append is one script (one key, so one slot on a cluster): it writes the
// entry under an id no older than the last one, then trims by count (MAXLEN, exact) and by age
// (MINID), so retention holds after every append whichever process made it.
//
// Ids and age are measured by the Redis server's clock (TIME, on the node that holds the stream),
// never by the appending process's: a process whose clock runs ahead would otherwise trim away
// every entry the others wrote, and push the ids of later entries into its future. The entry's
// `time` field keeps the process's clock, for display only.
import type { Result } from 'ioredis';
import type { RedisClient } from '../store/redis-client.js';
import { type AuditEntry, type AuditLog, type AuditQuery, type AuditRetention, type NewAuditEntry, idParts } from './log.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krAuditAppend(key: string, maxEntries: number, maxAgeMs: number, json: string): Result<string, Context>;
    krAuditNow(key: string): Result<[string, string], Context>;
  }
}

export const AUDIT_KEY = 'kr:{audit}:log';

// ARGV: maxEntries, maxAgeMs, the entry's JSON without its id.
const APPEND_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = now
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  local last = tonumber(string.match(top[1][1], '^(%d+)'))
  if last > ms then ms = last end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], string.format('%d-*', ms), 'e', ARGV[3])
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', now - tonumber(ARGV[2])))
return id
`;

// The server's clock, read on the node that holds the stream (a cluster's nodes may differ).
const NOW_LUA = `return redis.call('TIME')`;

// Pages read from the stream while looking for entries of one target.
const SCAN_BATCH = 500;

type StreamEntry = [id: string, fields: string[]];

function parse([id, fields]: StreamEntry): AuditEntry | undefined {
  const json = fields[1];
  if (json === undefined) return undefined;
  try {
    return { id, ...(JSON.parse(json) as Omit<AuditEntry, 'id'>) };
  } catch {
    return undefined;
  }
}

export function redisAuditLog(client: RedisClient): AuditLog {
  client.defineCommand('krAuditAppend', { numberOfKeys: 1, lua: APPEND_LUA });
  client.defineCommand('krAuditNow', { numberOfKeys: 1, lua: NOW_LUA });
  return {
    async append(entry: NewAuditEntry, now: number, retention: AuditRetention) {
      const time = new Date(now).toISOString();
      const json = JSON.stringify({ time, ...entry });
      const id = await client.krAuditAppend(AUDIT_KEY, retention.maxEntries, retention.maxAgeMs, json);
      return { id, time, ...entry };
    },
    // `now` (the process's clock) is not used: the age is the server's, as on append.
    async page(query: AuditQuery, _now: number, retention: AuditRetention) {
      const [seconds, micros] = await client.krAuditNow(AUDIT_KEY);
      const oldest = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - retention.maxAgeMs;
      const out: AuditEntry[] = [];
      let end = query.before === undefined ? '+' : `(${query.before}`;
      for (;;) {
        const count = query.target === undefined ? query.limit - out.length : SCAN_BATCH;
        const batch = (await client.xrevrange(AUDIT_KEY, end, '-', 'COUNT', count)) as StreamEntry[];
        for (const raw of batch) {
          if (idParts(raw[0])[0] < oldest) return out;
          const entry = parse(raw);
          if (!entry || (query.target !== undefined && entry.target !== query.target)) continue;
          out.push(entry);
          if (out.length === query.limit) return out;
        }
        if (batch.length < count) return out;
        end = `(${(batch.at(-1) as StreamEntry)[0]}`;
      }
    },
  };
}
