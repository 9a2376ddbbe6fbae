// The audit log: one entry per change made through the admin API, kept in the store so that every
// gateway process writes to, and reads, the same log. Append-only; the only deletion is retention,
// which keeps at most `maxEntries` entries and none older than `maxAgeMs`, both enforced on every
// append (and the age again on every read, so an idle log shows nothing past its age either).
//
// Entry ids are Redis Stream ids (`<ms>-<seq>`), made the same way by the memory log: they sort as
// time does, are unique across processes, and are what `before` takes to page back.
//
// Whose clock: ids and age are the store's clock. On Redis that is the server's TIME, so that no
// gateway process's clock can trim the others' entries; in memory the store is the process, so its
// clock is the `now` passed in. An entry's `time` is the appending process's clock, for display.

export interface AuditEntry {
  id: string;
  /** ISO 8601. */
  time: string;
  /** Who: `admin` (the admin token or an admin console session), or `user:<id>` (a user in the console). */
  actor: string;
  /** What, as `<object>.<verb>`: `user.create`, `pool_key.disable`, `webhook.remove` … */
  action: string;
  /** What it was done to, as `<kind>:<id>`: `user:alice`, `pool_key:default/k1`. */
  target: string;
  requestId: string;
  ip: string;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'time'>;

export interface AuditRetention {
  maxEntries: number;
  maxAgeMs: number;
}

export interface AuditQuery {
  limit: number;
  /** Entries older than this id only. */
  before?: string;
  /** Entries of this target only. */
  target?: string;
}

export interface AuditLog {
  /** Appends the entry (its `time` is `now`, epoch ms), then drops what retention no longer keeps by the store's clock. */
  append(entry: NewAuditEntry, now: number, retention: AuditRetention): Promise<AuditEntry>;
  /** Newest first. */
  page(query: AuditQuery, now: number, retention: AuditRetention): Promise<AuditEntry[]>;
}

/** `<ms>-<seq>`, as Redis writes stream ids. */
export const AUDIT_ID = /^([0-9]{1,15})-([0-9]{1,15})$/;

export function idParts(id: string): [number, number] {
  const match = AUDIT_ID.exec(id);
  return match ? [Number(match[1]), Number(match[2])] : [0, 0];
}

export function olderId(a: string, b: string): boolean {
  const [am, as] = idParts(a);
  const [bm, bs] = idParts(b);
  return am < bm || (am === bm && as < bs);
}

export class MemoryAuditLog implements AuditLog {
  // Oldest first.
  private readonly entries: AuditEntry[] = [];

  async append(entry: NewAuditEntry, now: number, retention: AuditRetention): Promise<AuditEntry> {
    const last = this.entries.at(-1);
    const [lastMs, lastSeq] = last ? idParts(last.id) : [0, -1];
    // Ids never go back, even when the clock does.
    const ms = Math.max(now, lastMs);
    const id = `${ms}-${ms === lastMs ? lastSeq + 1 : 0}`;
    const kept: AuditEntry = { id, time: new Date(now).toISOString(), ...entry };
    this.entries.push(kept);
    this.trim(now, retention);
    return { ...kept };
  }

  async page(query: AuditQuery, now: number, retention: AuditRetention): Promise<AuditEntry[]> {
    this.trim(now, retention);
    const out: AuditEntry[] = [];
    for (let i = this.entries.length - 1; i >= 0 && out.length < query.limit; i--) {
      const entry = this.entries[i] as AuditEntry;
      if (query.before !== undefined && !olderId(entry.id, query.before)) continue;
      if (query.target !== undefined && entry.target !== query.target) continue;
      out.push({ ...entry });
    }
    return out;
  }

  private trim(now: number, retention: AuditRetention): void {
    const excess = this.entries.length - retention.maxEntries;
    if (excess > 0) this.entries.splice(0, excess);
    const oldest = now - retention.maxAgeMs;
    let stale = 0;
    while (stale < this.entries.length && idParts((this.entries[stale] as AuditEntry).id)[0] < oldest) stale++;
    if (stale > 0) this.entries.splice(0, stale);
  }
}
