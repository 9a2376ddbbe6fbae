// Who a key digest belongs to (the key record and its user), as read from the store within the
// last second. Authentication then costs no store round trip for a key in steady use. The
// process's own admin writes (revoke, user update or delete) empty it at once; a change made by
// another process counts here within TTL_MS (docs/reliability.md, case 2 asks that a
// revocation reach every process, and set no tighter bound). Expiry times are checked on every
// request against the cached records, so they stay exact.
import type { KeyRecord, User } from './types.js';

export const CALLER_TTL_MS = 1000;
const MAX_ENTRIES = 10_000;

export interface FoundCaller {
  key: KeyRecord;
  user: User | undefined;
}

export class CallerCache {
  private readonly entries = new Map<string, { found: FoundCaller; until: number }>();
  /** Moves on with every clear: a read that began before a change must not be kept after it. */
  private generation = 0;

  /** To pass to `set` with what a read starting now finds. */
  get ticket(): number {
    return this.generation;
  }

  get(digest: string, now: number): FoundCaller | undefined {
    const entry = this.entries.get(digest);
    if (entry === undefined) return undefined;
    if (entry.until > now) return entry.found;
    this.entries.delete(digest);
    return undefined;
  }

  set(digest: string, found: FoundCaller, now: number, ticket: number): void {
    if (ticket !== this.generation) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(digest, { found, until: now + CALLER_TTL_MS });
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
  }
}
