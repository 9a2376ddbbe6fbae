// The request log in a capped Redis Stream (`XADD ... MAXLEN ~ N`), shared by every gateway
// process. Appends go through the background writer; reads walk the stream backwards in
// batches, filtering as they go (a stream has no secondary index; it is bounded, so is the walk).
// The script that appends a batch also publishes it (one PUBLISH per batch, in the same call) on
// LIVE_CHANNEL, for the live tail of every process: each process holds one subscriber connection
// while anyone there listens, and hands each record to its own listeners.
import { Cluster, type Result } from 'ioredis';
import type { RedisClient } from '../store/redis-client.js';
import type { Metrics } from '../metrics.js';
import type { ObservabilityRedis } from './redis.js';
import type { StoredRecord, RequestRecord } from './record.js';
import { Listeners, type RequestLogStore, matches, parseId, stored } from './request-log.js';
import { BackgroundWriter } from './writer.js';

export const REQUEST_LOG_KEY = 'kr:requests';
/** Not a key: a Pub/Sub channel (in a cluster, published to every node). */
export const LIVE_CHANNEL = 'kr:requests:live';
const FIELD = 'r';
const READ_BATCH = 500;
// Clocks of gateway processes and of Redis (whose clock makes the entry ids) may differ: a walk
// for `from` stops only at entries kept this long before it.
const CLOCK_SLACK_MS = 60_000;

// A batch of records in one script call: ARGV 1 the cap, ARGV 2 the live channel, then one record
// each. A pipeline of XADDs costs the gateway a command object, and its argument encoding, per
// record. The message is a line `<entry id>\t<record JSON>` per record (JSON holds no raw newline).
const APPEND_LUA = `
local lines = {}
for i = 3, #ARGV do
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '${FIELD}', ARGV[i])
  lines[#lines + 1] = id .. '\\t' .. ARGV[i]
end
redis.call('PUBLISH', ARGV[2], table.concat(lines, '\\n'))
return #ARGV - 2`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krLogAppend(key: string, capacity: number, channel: string, ...records: string[]): Result<number, Context>;
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
      await client.krLogAppend(REQUEST_LOG_KEY, capacity, LIVE_CHANNEL, ...batch);
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

  const listeners = new Listeners();
  let subscriber: RedisClient | undefined;

  function onMessage(channel: string, message: string): void {
    if (channel !== LIVE_CHANNEL || listeners.size === 0) return;
    for (const line of message.split('\n')) {
      const tab = line.indexOf('\t');
      const record = tab === -1 ? undefined : decode([line.slice(0, tab), [FIELD, line.slice(tab + 1)]]);
      if (record) listeners.emit(record);
    }
  }

  /** The process's one subscriber connection, made when the first listener comes. */
  function subscribe(): void {
    if (subscriber) return;
    // Its own connection: one that subscribed can run no other command. Subscribed at every
    // `ready` (again after a reconnection; a second SUBSCRIBE to a channel is harmless).
    const sub: RedisClient = client instanceof Cluster ? client.duplicate() : client.duplicate({ connectionName: 'keyrelay-live' });
    sub.on('error', () => {});
    sub.on('message', onMessage);
    sub.on('ready', () => {
      sub.subscribe(LIVE_CHANNEL).catch(() => {});
    });
    subscriber = sub;
  }

  /** Walks the stream from the newest entry back; `visit` returns true to stop. */
  async function walkBack(end: string, visit: (entry: Entry) => boolean): Promise<void> {
    for (;;) {
      const entries = (await client.xrevrange(REQUEST_LOG_KEY, end, '-', 'COUNT', READ_BATCH)) as Entry[];
      for (const entry of entries) if (visit(entry)) return;
      const last = entries[entries.length - 1];
      if (entries.length < READ_BATCH || !last) return;
      end = `(${last[0]}`;
    }
  }

  return {
    append(record) {
      if (capacity > 0) writer.push(JSON.stringify(record));
    },
    async find(requestId) {
      await redis.ready();
      if (parseId(requestId)) {
        const entries = (await client.xrange(REQUEST_LOG_KEY, requestId, requestId)) as Entry[];
        return entries[0] ? decode(entries[0]) : undefined;
      }
      // Parsed only when the raw text holds the id: a walk over the whole log stays cheap.
      const needle = `"requestId":${JSON.stringify(requestId)}`;
      let found: StoredRecord | undefined;
      await walkBack('+', (entry) => {
        if (!entry[1].some((field) => field.includes(needle))) return false;
        const record = decode(entry);
        if (record?.requestId !== requestId) return false;
        found = record;
        return true;
      });
      return found;
    },
    subscribe(listener) {
      subscribe();
      return listeners.add(listener);
    },
    async page(query) {
      await redis.ready();
      const data: StoredRecord[] = [];
      let end = query.before === undefined ? '+' : `(${query.before}`;
      const stopBelow = query.from === undefined ? undefined : query.from - CLOCK_SLACK_MS;
      for (;;) {
        const entries = (await client.xrevrange(REQUEST_LOG_KEY, end, '-', 'COUNT', READ_BATCH)) as Entry[];
        for (const entry of entries) {
          // Older entries still would all be before `from`.
          if (stopBelow !== undefined && (parseId(entry[0])?.ms ?? 0) < stopBelow) return { data, next: null };
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
    async close() {
      await writer.close();
      if (subscriber) {
        const sub = subscriber;
        subscriber = undefined;
        if (sub.status === 'ready') await sub.quit().catch(() => sub.disconnect());
        else sub.disconnect();
      }
    },
  };
}
