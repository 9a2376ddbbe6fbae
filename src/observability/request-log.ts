// The kept request log: the most recent requests, bounded (`logging.requestLogSize`), newest
// first, with filters. Every entry has an id of the Redis Stream shape `<ms>-<seq>` in both
// backends, so `before` and the `next` cursor mean the same thing whatever the store.
import type { StoredRecord, RequestRecord } from './record.js';

export interface RequestFilter {
  user?: string;
  /** `429` exactly, or a class: `4` for 4xx. */
  status?: { exact: number } | { class: number };
  outcome?: string;
}

export interface PageQuery extends RequestFilter {
  limit: number;
  /** Only entries older than this id (exclusive). */
  before?: string;
}

export interface Page {
  data: StoredRecord[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  next: string | null;
}

export interface RequestLogStore {
  /** Never waits and never throws: the request path calls it. */
  append(record: RequestRecord): void;
  page(query: PageQuery): Promise<Page>;
  /** Oldest first, for the export. */
  scan(filter: RequestFilter): AsyncIterable<StoredRecord>;
  /** Writes out what is buffered (Redis); resolves after one attempt. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface EntryId {
  ms: number;
  seq: number;
}

export function parseId(id: string): EntryId | undefined {
  const match = /^([0-9]{1,16})-([0-9]{1,16})$/.exec(id);
  return match ? { ms: Number(match[1]), seq: Number(match[2]) } : undefined;
}

export function compareIds(a: EntryId, b: EntryId): number {
  return a.ms - b.ms || a.seq - b.seq;
}

/** `before` as an entry id: an id itself, or an ISO 8601 time (entries of that ms and later are excluded). */
export function beforeId(before: string): string | undefined {
  if (parseId(before)) return before;
  const ms = Date.parse(before);
  return /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(before) && !Number.isNaN(ms) && ms >= 0 ? `${ms}-0` : undefined;
}

export function matches(record: RequestRecord, filter: RequestFilter): boolean {
  if (filter.user !== undefined && record.userId !== filter.user) return false;
  if (filter.outcome !== undefined && record.outcome !== filter.outcome) return false;
  const status = filter.status;
  if (status) {
    if ('exact' in status ? record.status !== status.exact : Math.floor(record.status / 100) !== status.class) return false;
  }
  return true;
}

export function stored(record: RequestRecord, id: string): StoredRecord {
  return record.costMicros === undefined ? { id, ...record } : { id, ...record, costUsd: record.costMicros / 1_000_000 };
}

/** A ring of the last `capacity` records. */
export function createMemoryRequestLog(capacity: number, now: () => number = Date.now): RequestLogStore {
  const ring: Array<StoredRecord | undefined> = new Array<StoredRecord | undefined>(capacity);
  let head = 0; // where the next record goes
  let count = 0;
  let last: EntryId = { ms: 0, seq: 0 };

  function nextId(): string {
    const ms = now();
    last = ms > last.ms ? { ms, seq: 0 } : { ms: last.ms, seq: last.seq + 1 };
    return `${last.ms}-${last.seq}`;
  }

  /** Newest first. */
  function* newest(): Generator<StoredRecord> {
    for (let i = 1; i <= count; i++) yield ring[(head - i + capacity) % capacity] as StoredRecord;
  }

  return {
    append(record) {
      if (capacity === 0) return;
      ring[head] = stored(record, nextId());
      head = (head + 1) % capacity;
      count = Math.min(count + 1, capacity);
    },
    async page(query) {
      const bound = query.before === undefined ? undefined : parseId(query.before);
      const data: StoredRecord[] = [];
      let more = false;
      for (const entry of newest()) {
        if (bound && compareIds(parseId(entry.id) as EntryId, bound) >= 0) continue;
        if (!matches(entry, query)) continue;
        if (data.length === query.limit) {
          more = true;
          break;
        }
        data.push(entry);
      }
      return { data, next: more ? (data[data.length - 1]?.id ?? null) : null };
    },
    async *scan(filter) {
      const all = [...newest()].reverse();
      for (const entry of all) if (matches(entry, filter)) yield entry;
    },
    async flush() {},
    async close() {},
  };
}
