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
}

export interface UsageStore {
  /** Never waits and never throws: the request path calls it. */
  add(row: UsageRow): void;
  /** Every row of these days, of one user when given. */
  read(days: readonly string[], user?: string): Promise<UsageRow[]>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export const COUNT_NAMES = ['requests', 'errors', 'input', 'cachedInput', 'output', 'micros', 'estimated'] as const;
/** Days kept: a year and a month, so that last year's same month can still be compared. */
export const RETENTION_DAYS = 400;
/** Where a model that passes the per-day cap is counted (a client can send any model name). */
export const OTHER_MODEL = '(other)';
export const NO_MODEL = '(none)';

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

export function createMemoryUsage(now: () => number = Date.now): UsageStore {
  const days = new Map<string, Map<string, UsageRow>>();

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
      const key = `${row.user}\t${row.model}`;
      const kept = rows.get(key);
      if (kept) addCounts(kept, row);
      else rows.set(key, { ...row });
    },
    async read(wanted, user) {
      const out: UsageRow[] = [];
      for (const day of wanted) {
        for (const row of days.get(day)?.values() ?? []) if (user === undefined || row.user === user) out.push({ ...row });
      }
      return out;
    },
    async flush() {},
    async close() {},
  };
}
