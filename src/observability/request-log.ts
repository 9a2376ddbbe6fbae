// The kept request log: the most recent requests, bounded (`logging.requestLogSize`), newest
// first, with filters. Every entry has an id of the Redis Stream shape `<ms>-<seq>` in both
// backends, so `before` and the `next` cursor mean the same thing whatever the store.
import type { StoredRecord, RequestRecord } from './record.js';

export interface RequestFilter {
  user?: string;
  /** `429` exactly, or a class: `4` for 4xx. */
  status?: { exact: number } | { class: number };
  outcome?: string;
  model?: string;
  /** The request's `time` at or after this (ms), and at or before `to`. */
  from?: number;
  to?: number;
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

/** Called with each record as it is kept, in the shape a read gives; must not throw. */
export type RecordListener = (record: StoredRecord) => void;

export interface RequestLogStore {
  /** Never waits and never throws: the request path calls it. */
  append(record: RequestRecord): void;
  page(query: PageQuery): Promise<Page>;
  /** The kept record of the gateway's request id (or of a log entry id), if still kept. */
  find(requestId: string): Promise<StoredRecord | undefined>;
  /** Every record kept from now on, by any process on the store; returns the unsubscribe. */
  subscribe(listener: RecordListener): () => void;
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

/**
 * `before` as an entry id: an id itself, or an ISO 8601 time (entries of that ms and later are
 * excluded). Undefined when it is neither, or is `0-0`, the first id there can be: nothing is
 * before it, and Redis refuses it as an exclusive end (XREVRANGE `(0-0`).
 */
export function beforeId(before: string): string | undefined {
  const id = parseId(before);
  if (id) return id.ms === 0 && id.seq === 0 ? undefined : `${id.ms}-${id.seq}`;
  const ms = Date.parse(before);
  return /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(before) && !Number.isNaN(ms) && ms > 0 ? `${ms}-0` : undefined;
}

export function matches(record: RequestRecord, filter: RequestFilter): boolean {
  if (filter.user !== undefined && record.userId !== filter.user) return false;
  if (filter.outcome !== undefined && record.outcome !== filter.outcome) return false;
  if (filter.model !== undefined && record.model !== filter.model) return false;
  if (filter.from !== undefined || filter.to !== undefined) {
    const time = Date.parse(record.time);
    if (filter.from !== undefined && !(time >= filter.from)) return false;
    if (filter.to !== undefined && !(time <= filter.to)) return false;
  }
  const status = filter.status;
  if (status) {
    if ('exact' in status ? record.status !== status.exact : Math.floor(record.status / 100) !== status.class) return false;
  }
  return true;
}

export function stored(record: RequestRecord, id: string): StoredRecord {
  return record.costMicros === undefined ? { id, ...record } : { id, ...record, costUsd: record.costMicros / 1_000_000 };
}

/** `stored` for a record that may hold undefined fields (what the request path keeps): those are
 * left out, as a record read back from JSON has none. */
function storedDefined(record: RequestRecord, id: string): StoredRecord {
  const out: Record<string, unknown> = { id };
  for (const key in record) {
    const value = record[key as keyof RequestRecord];
    if (value !== undefined) out[key] = value;
  }
  if (record.costMicros !== undefined) out.costUsd = record.costMicros / 1_000_000;
  return out as unknown as StoredRecord;
}

/** Listeners of one process; one that throws is no reason to skip the others. */
export class Listeners {
  private readonly set = new Set<RecordListener>();
  get size(): number {
    return this.set.size;
  }
  add(listener: RecordListener): () => void {
    this.set.add(listener);
    return () => {
      this.set.delete(listener);
    };
  }
  emit(record: StoredRecord): void {
    for (const listener of this.set) {
      try {
        listener(record);
      } catch {
        // A listener's own fault; the request path must not see it.
      }
    }
  }
}

/** A ring of the last `capacity` records. Each is kept as it was appended with its id's two
 * numbers beside it; the stored shape is made only for the entries a read returns. */
export function createMemoryRequestLog(capacity: number, now: () => number = Date.now): RequestLogStore {
  const ring: Array<RequestRecord | undefined> = new Array<RequestRecord | undefined>(capacity);
  const msAt = new Float64Array(capacity);
  const seqAt = new Float64Array(capacity);
  let head = 0; // where the next record goes
  let count = 0;
  let lastMs = 0;
  let lastSeq = 0;
  const listeners = new Listeners();

  /** Ring slots, newest first. */
  function* newest(): Generator<number> {
    for (let i = 1; i <= count; i++) yield (head - i + capacity) % capacity;
  }

  const idAt = (slot: number): string => `${msAt[slot]}-${seqAt[slot]}`;

  return {
    append(record) {
      if (capacity === 0) return;
      const ms = now();
      if (ms > lastMs) {
        lastMs = ms;
        lastSeq = 0;
      } else {
        lastSeq += 1;
      }
      ring[head] = record;
      msAt[head] = lastMs;
      seqAt[head] = lastSeq;
      head = (head + 1) % capacity;
      count = Math.min(count + 1, capacity);
      if (listeners.size > 0) listeners.emit(storedDefined(record, `${lastMs}-${lastSeq}`));
    },
    async page(query) {
      const bound = query.before === undefined ? undefined : parseId(query.before);
      const data: StoredRecord[] = [];
      let more = false;
      for (const slot of newest()) {
        if (bound && compareIds({ ms: msAt[slot] as number, seq: seqAt[slot] as number }, bound) >= 0) continue;
        if (!matches(ring[slot] as RequestRecord, query)) continue;
        if (data.length === query.limit) {
          more = true;
          break;
        }
        data.push(storedDefined(ring[slot] as RequestRecord, idAt(slot)));
      }
      return { data, next: more ? (data[data.length - 1]?.id ?? null) : null };
    },
    async find(requestId) {
      const entry = parseId(requestId);
      for (const slot of newest()) {
        const record = ring[slot] as RequestRecord;
        const hit = entry ? msAt[slot] === entry.ms && seqAt[slot] === entry.seq : record.requestId === requestId;
        if (hit) return storedDefined(record, idAt(slot));
      }
      return undefined;
    },
    subscribe: (listener) => listeners.add(listener),
    async *scan(filter) {
      // Taken now: appends made while the export is being read reuse the oldest slots.
      const slots = [...newest()].reverse();
      const records = slots.map((slot) => ring[slot] as RequestRecord);
      const ids = slots.map(idAt);
      for (let i = 0; i < records.length; i++) {
        const record = records[i] as RequestRecord;
        if (matches(record, filter)) yield storedDefined(record, ids[i] as string);
      }
    },
    async flush() {},
    async close() {},
  };
}
