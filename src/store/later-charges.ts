// What a charge made later needs to find when its time comes (src/quota/later.ts): the reservation
// a batch or a background response holds, keyed by the upstream's id of it. `take` hands the
// record to one caller only, across every gateway process on the store: whoever takes it charges,
// so a batch retrieved from two processes at once, or its output fetched ten times, is charged
// once. A record lapses with the reservation's lease (the ledger then charges its worst case).
import type { Result } from 'ioredis';
import type { RedisClient } from './redis-client.js';

export interface LaterCharges {
  /** Keeps `json` under `id` for `ttlMs`, replacing what was there. */
  put(id: string, json: string, ttlMs: number): Promise<void>;
  /** The record, removed in the same step: undefined for every caller but the first. */
  take(id: string): Promise<string | undefined>;
  /** The record, left in place (to decide whether an answer is worth reading). */
  peek(id: string): Promise<string | undefined>;
}

export class MemoryLaterCharges implements LaterCharges {
  private readonly records = new Map<string, { json: string; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async put(id: string, json: string, ttlMs: number): Promise<void> {
    this.prune();
    this.records.set(id, { json, until: this.now() + ttlMs });
  }

  // Read and removed with no await between: two takers at once cannot both find it.
  async take(id: string): Promise<string | undefined> {
    const json = this.current(id);
    this.records.delete(id);
    return json;
  }

  async peek(id: string): Promise<string | undefined> {
    return this.current(id);
  }

  private current(id: string): string | undefined {
    const record = this.records.get(id);
    if (!record || record.until <= this.now()) return undefined;
    return record.json;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, record] of this.records) if (record.until <= now) this.records.delete(id);
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    krLaterTake(key: string): Result<string | null, Context>;
  }
}

// GET and DEL in one step (GETDEL wants Redis 6.2; the store otherwise asks for less).
const TAKE_LUA = `
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
`;

export const laterKey = (id: string): string => `kr:later:${id}`;

/** One key per record, so each lives in its own slot of a cluster and expires on its own. */
export function redisLaterCharges(data: RedisClient, guard: <T>(op: () => Promise<T>) => Promise<T>): LaterCharges {
  data.defineCommand('krLaterTake', { numberOfKeys: 1, lua: TAKE_LUA });
  return {
    put: (id, json, ttlMs) => guard(async () => void (await data.set(laterKey(id), json, 'PX', Math.max(1, Math.ceil(ttlMs))))),
    take: (id) => guard(async () => (await data.krLaterTake(laterKey(id))) ?? undefined),
    peek: (id) => guard(async () => (await data.get(laterKey(id))) ?? undefined),
  };
}
