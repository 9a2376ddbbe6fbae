// The request log in a capped Redis Stream (`XADD ... MAXLEN ~ N`), shared by every gateway
// process. Appends go through the background writer; reads walk the stream backwards in
// batches, filtering as they go (a stream has no secondary index; it is bounded, so is the walk).
import type { Result } from 'ioredis';
import type { RedisClient } from '../store/redis-client.js';
import type { Metrics } from '../metrics.js';
import type { ObservabilityRedis } from './redis.js';
import type { StoredRecord, RequestRecord } from './record.js';
import { type RequestLogStore, matches, stored } from './request-log.js';
import { BackgroundWriter } from './writer.js';

export const REQUEST_LOG_KEY = 'kr:requests';
const FIELD = 'r';
const READ_BATCH = 500;

// A batch of records in one script call: ARGV 1 the cap, then one record each. A pipeline of
// XADDs costs the gateway a command object, and its argument encoding, per record.
const APPEND_LUA = `
for i = 2, #ARGV do redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '${FIELD}', ARGV[i]) end
return #ARGV - 1`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krLogAppend(key: string, capacity: number, ...records: string[]): Result<number, Context>;
  }
}

type Entry = [id: string, fields: string[]];

function decode([id, fields]: Entry): StoredRecord | undefined {
  const i = fields.indexOf(FIELD);
  const json = i === -1 ? undefined : fields[i + 1];
  if (json === undefined) return undefined;
  try {
    return stored(JSON.parse(json) as RequestRecord, id);
  } catch {
    return undefined;
  }
}

export function createRedisRequestLog(redis: ObservabilityRedis, capacity: number, metrics: Metrics): RequestLogStore {
  const client: RedisClient = redis.client;
  client.defineCommand('krLogAppend', { numberOfKeys: 1, lua: APPEND_LUA });
  const writer = new BackgroundWriter<string>({
    async write(batch) {
      await redis.ready();
      await client.krLogAppend(REQUEST_LOG_KEY, capacity, ...batch);
    },
    maxPending: Math.min(capacity, 10_000),
    maxBatch: 200,
    retryMs: 1000,
    // Readers flush first (and the admin routes do), so waiting costs them nothing.
    batchMs: 5,
    onError(err) {
      metrics.storeFailed('request_log');
      redis.failed(err, 'request log');
    },
    onDrop(count) {
      metrics.observabilityDropped('request_log', count);
    },
    onWritten() {
      redis.recovered('request log');
    },
  });

  return {
    append(record) {
      if (capacity > 0) writer.push(JSON.stringify(record));
    },
    async page(query) {
      await redis.ready();
      const data: StoredRecord[] = [];
      let end = query.before === undefined ? '+' : `(${query.before}`;
      for (;;) {
        const entries = (await client.xrevrange(REQUEST_LOG_KEY, end, '-', 'COUNT', READ_BATCH)) as Entry[];
        for (const entry of entries) {
          const record = decode(entry);
          if (!record || !matches(record, query)) continue;
          // One more than asked: then there is a next page.
          if (data.length === query.limit) return { data, next: data[data.length - 1]?.id ?? null };
          data.push(record);
        }
        const last = entries[entries.length - 1];
        if (entries.length < READ_BATCH || !last) return { data, next: null };
        end = `(${last[0]}`;
      }
    },
    async *scan(filter) {
      await redis.ready();
      let start = '-';
      for (;;) {
        const entries = (await client.xrange(REQUEST_LOG_KEY, start, '+', 'COUNT', READ_BATCH)) as Entry[];
        for (const entry of entries) {
          const record = decode(entry);
          if (record && matches(record, filter)) yield record;
        }
        const last = entries[entries.length - 1];
        if (entries.length < READ_BATCH || !last) return;
        start = `(${last[0]}`;
      }
    },
    flush: () => writer.flush(),
    close: () => writer.close(),
  };
}
