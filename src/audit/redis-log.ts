// The audit log on Redis and Redis Cluster: one stream, `kr:{audit}:log`, one field `e` holding
// the entry's JSON. The append is one script (one key, so one slot on a cluster): it writes the
// entry under an id no older than the last one, then trims by count (MAXLEN, exact) and by age
// (MINID), so retention holds after every append whichever process made it.
import type { Result } from 'ioredis';
import type { RedisClient } from '../store/redis-client.js';
import { type AuditEntry, type AuditLog, type AuditQuery, type AuditRetention, type NewAuditEntry, idParts } from './log.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krAuditAppend(key: string, now: number, maxEntries: number, minMs: number, json: string): Result<string, Context>;
  }
}

export const AUDIT_KEY = 'kr:{audit}:log';

// ARGV: now (ms), maxEntries, oldest ms kept, the entry's JSON without its id.
const APPEND_LUA = `
local ms = tonumber(ARGV[1])
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  local last = tonumber(string.match(top[1][1], '^(%d+)'))
  if last > ms then ms = last end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], string.format('%d-*', ms), 'e', ARGV[4])
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', tonumber(ARGV[3])))
return id
`;

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
  return {
    async append(entry: NewAuditEntry, now: number, retention: AuditRetention) {
      const time = new Date(now).toISOString();
      const json = JSON.stringify({ time, ...entry });
      const id = await client.krAuditAppend(AUDIT_KEY, now, retention.maxEntries, now - retention.maxAgeMs, json);
      return { id, time, ...entry };
    },
    async page(query: AuditQuery, now: number, retention: AuditRetention) {
      const oldest = now - retention.maxAgeMs;
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
