// The request log in a capped Redis Stream (`XADD ... MAXLEN ~ N`), shared by every gateway
// process. Appends go through the background writer; reads walk the stream backwards in
// batches, filtering as they go (a stream has no secondary index; it is bounded, so is the walk).
import type { RedisClient } from '../store/redis-client.js';
import type { Metrics } from '../metrics.js';
import type { ObservabilityRedis } from './redis.js';
import type { StoredRecord, RequestRecord } from './record.js';
import { type RequestLogStore, matches, stored } from './request-log.js';
import { BackgroundWriter } from './writer.js';

export const REQUEST_LOG_KEY = 'kr:requests';
const FIELD = 'r';
const READ_BATCH = 500;

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
  const writer = new BackgroundWriter<string>({
    async write(batch) {
      await redis.ready();
      const pipeline = client.pipeline();
      for (const json of batch) pipeline.xadd(REQUEST_LOG_KEY, 'MAXLEN', '~', capacity, '*', FIELD, json);
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([err]) => err);
      if (failed) throw failed[0];
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
