// Usage counters in Redis: one hash per UTC day, `kr:usage:{YYYY-MM-DD}` (the braces keep a day's
// hash in one cluster slot), fields `<counter>\t<user>\t<model>\t<pool key>` moved with HINCRBY.
// Model names were escaped before they got here (escape.ts), so a raw tab cannot appear in one;
// user ids and pool key ids cannot hold one either (admin.ts, config.ts). Each hash lives
// RETENTION_DAYS. Fields written before the pool key was kept have three parts: they read as
// UNKNOWN_POOL_KEY, and a reader that splits out three parts sums over pool keys unawares.
// Beside each day, for the usage series: a hash per minute `kr:usage:m:{YYYY-MM-DDTHH:MM}` and per
// hour `kr:usage:h:{YYYY-MM-DDTHH}`, same fields (requests, errors, tokens and cost only), kept
// SERIES_RETENTION_MS. All are written by the same batch.
import type { Metrics } from '../metrics.js';
import type { ObservabilityRedis } from './redis.js';
import {
  COUNT_NAMES,
  NO_POOL_KEY,
  RETENTION_DAYS,
  SERIES_RETENTION_MS,
  type SeriesRow,
  type Step,
  UNKNOWN_POOL_KEY,
  type UsageAdd,
  type UsageCounts,
  type UsageRow,
  type UsageStore,
  emptyCounts,
} from './usage.js';
import { BackgroundWriter } from './writer.js';

const LETTERS: Record<keyof UsageCounts, string> = {
  requests: 'r',
  errors: 'e',
  input: 'i',
  cachedInput: 'c',
  output: 'o',
  micros: 'm',
  estimated: 'x',
};
const BY_LETTER = new Map(Object.entries(LETTERS).map(([name, letter]) => [letter, name as keyof UsageCounts]));

export const usageKey = (day: string): string => `kr:usage:{${day}}`;
export const seriesKey = (step: Step, bucket: string): string => (step === 'day' ? usageKey(bucket) : `kr:usage:${step === 'minute' ? 'm' : 'h'}:{${bucket}}`);
/** How long a row waits for others to go with it. */
const BATCH_MS = 50;
const SERIES_NAMES = ['requests', 'errors', 'input', 'output', 'micros'] as const;
const SECONDS_KEPT = { day: RETENTION_DAYS * 86_400, hour: SERIES_RETENTION_MS.hour / 1000, minute: SERIES_RETENTION_MS.minute / 1000 };

export function createRedisUsage(redis: ObservabilityRedis, metrics: Metrics): UsageStore {
  const { client } = redis;

  async function write(batch: UsageAdd[]): Promise<void> {
    await redis.ready();
    // Rows of one user, model, pool key and minute summed first: a burst of a hundred requests
    // makes one set of fields, and one HINCRBY per counter of each hash.
    const sums = new Map<string, UsageAdd>();
    for (const row of batch) {
      const id = `${row.day}\t${row.minute}\t${row.hour}\t${row.user}\t${row.model}\t${row.poolKey ?? NO_POOL_KEY}`;
      const sum = sums.get(id);
      if (!sum) sums.set(id, { ...row });
      else for (const name of COUNT_NAMES) sum[name] += row[name];
    }
    const perKey = new Map<string, { seconds: number; fields: Map<string, number> }>();
    const move = (key: string, seconds: number, names: readonly (keyof UsageCounts)[], row: UsageRow, tail: string): void => {
      let hash = perKey.get(key);
      if (!hash) perKey.set(key, (hash = { seconds, fields: new Map() }));
      for (const name of names) {
        if (row[name] === 0) continue;
        const field = `${LETTERS[name]}\t${tail}`;
        hash.fields.set(field, (hash.fields.get(field) ?? 0) + row[name]);
      }
    };
    for (const row of sums.values()) {
      const tail = `${row.user}\t${row.model}\t${row.poolKey ?? NO_POOL_KEY}`;
      move(usageKey(row.day), SECONDS_KEPT.day, COUNT_NAMES, row, tail);
      if (row.minute !== undefined) move(seriesKey('minute', row.minute), SECONDS_KEPT.minute, SERIES_NAMES, row, tail);
      if (row.hour !== undefined) move(seriesKey('hour', row.hour), SECONDS_KEPT.hour, SERIES_NAMES, row, tail);
    }
    // A pipeline per hash (a cluster takes a pipeline's keys from one slot only), all sent at once.
    await Promise.all(
      [...perKey].map(async ([key, { seconds, fields }]) => {
        const pipeline = client.pipeline();
        for (const [field, n] of fields) pipeline.hincrby(key, field, n);
        pipeline.expire(key, seconds);
        const results = (await pipeline.exec()) ?? [];
        const failed = results.find(([err]) => err);
        if (failed) throw failed[0];
      }),
    );
  }

  const writer = new BackgroundWriter<UsageAdd>({
    write,
    maxPending: 10_000,
    maxBatch: 500,
    retryMs: 1000,
    // Readers in this process flush first (and the admin routes do), so waiting costs them nothing;
    // other processes see a request's counters within this long. Longer batches are fewer Redis
    // round trips for the same counters: a batch costs about the same whatever it holds.
    batchMs: BATCH_MS,
    onError(err) {
      metrics.storeFailed('usage');
      redis.failed(err, 'usage counters');
    },
    onDrop(count) {
      metrics.observabilityDropped('usage', count);
    },
    onWritten() {
      redis.recovered('usage counters');
    },
  });

  return {
    add: (row) => writer.push(row),
    async read(days, user) {
      await redis.ready();
      const hashes = await Promise.all(days.map((day) => client.hgetall(usageKey(day))));
      const rows: UsageRow[] = [];
      hashes.forEach((hash, i) => {
        const day = days[i] as string;
        const byPair = new Map<string, UsageRow>();
        for (const [field, value] of Object.entries(hash)) {
          const [letter, rowUser, model] = field.split('\t');
          const name = BY_LETTER.get(letter ?? '');
          if (!name || rowUser === undefined || model === undefined) continue;
          if (user !== undefined && rowUser !== user) continue;
          const pair = `${rowUser}\t${model}`;
          let row = byPair.get(pair);
          if (!row) byPair.set(pair, (row = { day, user: rowUser, model, ...emptyCounts() }));
          row[name] += Number(value);
        }
        rows.push(...byPair.values());
      });
      return rows;
    },
    async series(step, buckets, user) {
      await redis.ready();
      const hashes = await Promise.all(buckets.map((bucket) => client.hgetall(seriesKey(step, bucket))));
      const rows: SeriesRow[] = [];
      hashes.forEach((hash, i) => {
        const bucket = buckets[i] as string;
        const byKey = new Map<string, SeriesRow>();
        for (const [field, value] of Object.entries(hash)) {
          const [letter, rowUser, model, poolKey = UNKNOWN_POOL_KEY] = field.split('\t');
          const name = BY_LETTER.get(letter ?? '');
          if (!name || name === 'cachedInput' || name === 'estimated' || rowUser === undefined || model === undefined) continue;
          if (user !== undefined && rowUser !== user) continue;
          const id = `${rowUser}\t${model}\t${poolKey}`;
          let row = byKey.get(id);
          if (!row) byKey.set(id, (row = { bucket, user: rowUser, model, poolKey, requests: 0, errors: 0, input: 0, output: 0, micros: 0 }));
          row[name] += Number(value);
        }
        rows.push(...byKey.values());
      });
      return rows;
    },
    flush: () => writer.flush(),
    close: () => writer.close(),
  };
}
