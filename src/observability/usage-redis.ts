// Usage counters in Redis: one hash per UTC day, `kr:usage:{YYYY-MM-DD}` (the braces keep a day's
// hash in one cluster slot), fields `<counter>\t<user>\t<model>` moved with HINCRBY. Model names
// were escaped before they got here (escape.ts), so a raw tab cannot appear in one; user ids
// cannot hold one either (admin.ts). Each hash lives RETENTION_DAYS.
import type { Metrics } from '../metrics.js';
import type { ObservabilityRedis } from './redis.js';
import { COUNT_NAMES, RETENTION_DAYS, type UsageCounts, type UsageRow, type UsageStore, emptyCounts } from './usage.js';
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

export function createRedisUsage(redis: ObservabilityRedis, metrics: Metrics): UsageStore {
  const { client } = redis;

  async function write(batch: UsageRow[]): Promise<void> {
    await redis.ready();
    // Summed per field first: a burst of a hundred requests is one HINCRBY per counter.
    const perDay = new Map<string, Map<string, number>>();
    for (const row of batch) {
      let fields = perDay.get(row.day);
      if (!fields) perDay.set(row.day, (fields = new Map()));
      for (const name of COUNT_NAMES) {
        if (row[name] === 0) continue;
        const field = `${LETTERS[name]}\t${row.user}\t${row.model}`;
        fields.set(field, (fields.get(field) ?? 0) + row[name]);
      }
    }
    await Promise.all(
      [...perDay].map(async ([day, fields]) => {
        const key = usageKey(day);
        const pipeline = client.pipeline();
        for (const [field, n] of fields) pipeline.hincrby(key, field, n);
        pipeline.expire(key, RETENTION_DAYS * 86_400);
        const results = (await pipeline.exec()) ?? [];
        const failed = results.find(([err]) => err);
        if (failed) throw failed[0];
      }),
    );
  }

  const writer = new BackgroundWriter<UsageRow>({
    write,
    maxPending: 10_000,
    maxBatch: 500,
    retryMs: 1000,
    // Readers flush first (and the admin routes do), so waiting costs them nothing.
    batchMs: 5,
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
    flush: () => writer.flush(),
    close: () => writer.close(),
  };
}
