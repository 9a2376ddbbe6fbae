// Usage reports from aggregated counters: per UTC day, per user and model, the requests, errors,
// tokens and cost of a user's requests. A month's report reads about 31 small hashes, not a month of
// request records. Requests counts those relayed and those the gateway refused for the user (400,
// 403, 429 ...); errors counts the refused ones and the upstream's errors. A refused key (401)
// belongs to no user: it is in the request log and the metrics only.

/** Counters kept per (day, user, model). */
export interface UsageCounts {
  requests: number;
  errors: number;
  input: number;
  cachedInput: number;
  output: number;
  micros: number;
  /** Requests whose tokens the gateway counted itself (no usage reported). */
  estimated: number;
}

export interface UsageRow extends UsageCounts {
  day: string;
  user: string;
  model: string;
  /** The pool key that answered, NO_POOL_KEY when none did; absent in what `read` gives. */
  poolKey?: string;
}

/** A row with the minute (`2030-01-31T12:34`) and hour (`2030-01-31T12`) of the request: the
 * series counters of those buckets move with the day's. */
export interface UsageAdd extends UsageRow {
  minute?: string;
  hour?: string;
}

/** The steps of the series counters, and how long each is kept. */
export type Step = 'minute' | 'hour' | 'day';
export const SERIES_RETENTION_MS = { minute: 2 * 3_600_000, hour: 3 * 86_400_000 } as const;

/** Counters of one bucket (a minute, an hour or a day) for one user, model and pool key. */
export interface SeriesRow {
  /** The bucket's label: `2030-01-31T12:34`, `2030-01-31T12` or `2030-01-31`. */
  bucket: string;
  user: string;
  model: string;
  poolKey: string;
  requests: number;
  errors: number;
  input: number;
  output: number;
  micros: number;
}

export interface UsageStore {
  /** Never waits and never throws: the request path calls it. */
  add(row: UsageAdd): void;
  /** Every row of these days, of one user when given. */
  read(days: readonly string[], user?: string): Promise<UsageRow[]>;
  /** Every row of these buckets of a step, of one user when given. */
  series(step: Step, buckets: readonly string[], user?: string): Promise<SeriesRow[]>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export const COUNT_NAMES = ['requests', 'errors', 'input', 'cachedInput', 'output', 'micros', 'estimated'] as const;
/** Days kept: a year and a month, so that last year's same month can still be compared. */
export const RETENTION_DAYS = 400;
/** Where a model that passes the per-day cap is counted (a client can send any model name). */
export const OTHER_MODEL = '(other)';
export const NO_MODEL = '(none)';
/** The pool key of a request no key answered (refused by the gateway, or every key failed). */
export const NO_POOL_KEY = '(none)';
/** The pool key of day counters written before they were kept per pool key. */
export const UNKNOWN_POOL_KEY = '(unknown)';

export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export function emptyCounts(): UsageCounts {
  return { requests: 0, errors: 0, input: 0, cachedInput: 0, output: 0, micros: 0, estimated: 0 };
}

/** Spelled out rather than looped over COUNT_NAMES: the request path adds a row per request. */
export function addCounts(into: UsageCounts, from: UsageCounts): void {
  into.requests += from.requests;
  into.errors += from.errors;
  into.input += from.input;
  into.cachedInput += from.cachedInput;
  into.output += from.output;
  into.micros += from.micros;
  into.estimated += from.estimated;
}

/** The days from `from` to `to`, both included (YYYY-MM-DD). */
export function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  const end = Date.parse(`${to}T00:00:00Z`);
  for (let ms = Date.parse(`${from}T00:00:00Z`); ms <= end; ms += 86_400_000) days.push(utcDay(ms));
  return days;
}

/**
 * Bounds the distinct models counted per day in this process: past `cap`, a new model name is
 * counted as OTHER_MODEL, so a client cycling through made-up names cannot grow the counters
 * without end.
 */
export class ModelCap {
  private day = '';
  private seen = new Set<string>();
  constructor(private readonly cap = 1000) {}
  label(day: string, model: string): string {
    if (day !== this.day) {
      this.day = day;
      this.seen = new Set();
    }
    if (this.seen.has(model)) return model;
    if (this.seen.size >= this.cap) return OTHER_MODEL;
    this.seen.add(model);
    return model;
  }
}

function seriesRow(bucket: string, row: UsageRow, poolKey: string): SeriesRow {
  return { bucket, user: row.user, model: row.model, poolKey, requests: row.requests, errors: row.errors, input: row.input, output: row.output, micros: row.micros };
}

function addSeries(into: SeriesRow, from: UsageRow): void {
  into.requests += from.requests;
  into.errors += from.errors;
  into.input += from.input;
  into.output += from.output;
  into.micros += from.micros;
}

/** Minute or hour buckets in memory, each dropped once older than its retention. */
class Buckets {
  private readonly buckets = new Map<string, Map<string, SeriesRow>>();
  constructor(
    private readonly retentionMs: number,
    private readonly labelOf: (ms: number) => string,
  ) {}
  /** `key`: the row's user, model and pool key, as the day counters key it. */
  add(bucket: string, key: string, row: UsageRow, poolKey: string, now: () => number): void {
    let rows = this.buckets.get(bucket);
    if (!rows) {
      const oldest = this.labelOf(now() - this.retentionMs);
      for (const label of this.buckets.keys()) if (label < oldest) this.buckets.delete(label);
      rows = new Map();
      this.buckets.set(bucket, rows);
    }
    const kept = rows.get(key);
    if (kept) addSeries(kept, row);
    else rows.set(key, seriesRow(bucket, row, poolKey));
  }
  read(wanted: readonly string[], user?: string): SeriesRow[] {
    const out: SeriesRow[] = [];
    for (const bucket of wanted) {
      for (const row of this.buckets.get(bucket)?.values() ?? []) if (user === undefined || row.user === user) out.push({ ...row });
    }
    return out;
  }
}

export const minuteLabel = (ms: number): string => new Date(ms).toISOString().slice(0, 16);
export const hourLabel = (ms: number): string => new Date(ms).toISOString().slice(0, 13);

export function createMemoryUsage(now: () => number = Date.now): UsageStore {
  // Per day, per user, model and pool key.
  const days = new Map<string, Map<string, UsageRow>>();
  const minutes = new Buckets(SERIES_RETENTION_MS.minute, minuteLabel);
  const hours = new Buckets(SERIES_RETENTION_MS.hour, hourLabel);

  function prune(): void {
    const oldest = utcDay(now() - RETENTION_DAYS * 86_400_000);
    for (const day of days.keys()) if (day < oldest) days.delete(day);
  }

  return {
    add(row) {
      let rows = days.get(row.day);
      if (!rows) {
        prune();
        rows = new Map();
        days.set(row.day, rows);
      }
      const poolKey = row.poolKey ?? NO_POOL_KEY;
      const key = `${row.user}\t${row.model}\t${poolKey}`;
      const kept = rows.get(key);
      if (kept) addCounts(kept, row);
      else rows.set(key, { day: row.day, user: row.user, model: row.model, poolKey, requests: row.requests, errors: row.errors, input: row.input, cachedInput: row.cachedInput, output: row.output, micros: row.micros, estimated: row.estimated });
      if (row.minute !== undefined) minutes.add(row.minute, key, row, poolKey, now);
      if (row.hour !== undefined) hours.add(row.hour, key, row, poolKey, now);
    },
    async read(wanted, user) {
      const out: UsageRow[] = [];
      for (const day of wanted) {
        // Summed over pool keys: a row per user and model, as ever.
        const byPair = new Map<string, UsageRow>();
        for (const row of days.get(day)?.values() ?? []) {
          if (user !== undefined && row.user !== user) continue;
          const pair = `${row.user}\t${row.model}`;
          let kept = byPair.get(pair);
          if (!kept) byPair.set(pair, (kept = { day, user: row.user, model: row.model, ...emptyCounts() }));
          addCounts(kept, row);
        }
        out.push(...byPair.values());
      }
      return out;
    },
    async series(step, wanted, user) {
      if (step === 'minute') return minutes.read(wanted, user);
      if (step === 'hour') return hours.read(wanted, user);
      const out: SeriesRow[] = [];
      for (const day of wanted) {
        for (const row of days.get(day)?.values() ?? []) if (user === undefined || row.user === user) out.push(seriesRow(day, row, row.poolKey ?? NO_POOL_KEY));
      }
      return out;
    },
    async flush() {},
    async close() {},
  };
}
