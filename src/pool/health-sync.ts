// The part of a pool key's health that every gateway process must agree on, as one small record
// per key, and the channel that carries it between processes. The record changes only on a state
// change (a key cools, is disabled, comes back), never per request, so sharing it costs one store
// write per incident. Where two processes disagree, the newer record wins (`updatedAt`).

export type KeyState = 'active' | 'cooling' | 'disabled';

export type HealthReason =
  | 'rate_limited'
  | 'circuit_open'
  | 'invalid_api_key'
  | 'forbidden'
  | 'insufficient_quota'
  | 'account_deactivated'
  | 'manual';

export interface HealthRecord {
  state: KeyState;
  reason?: HealthReason;
  /** cooling: usable again from; disabled: next probe from (absent when disabled by hand). Epoch ms. */
  until?: number;
  /** When this state began: outcomes of attempts started before it cannot undo it. Epoch ms. */
  since: number;
  /** Circuit openings, or failed probes, in a row: the exponent of the next wait. */
  strikes: number;
  /** When the record was written. Epoch ms. */
  updatedAt: number;
}

export const ACTIVE: HealthRecord = Object.freeze({ state: 'active', since: 0, strikes: 0, updatedAt: 0 });

export interface HealthSync {
  /** Stores a key's new record for the other processes; `keyRef` is `upstreamId/keyId`. */
  publish(keyRef: string, record: HealthRecord): Promise<void>;
  /** Every record stored, for a process that starts or catches up. */
  load(): Promise<Map<string, HealthRecord>>;
  /** Optional push of other processes' records as they are published; returns the unsubscribe. */
  subscribe?(listener: (keyRef: string, record: HealthRecord) => void): () => void;
}

const STATES = new Set<string>(['active', 'cooling', 'disabled']);
const REASONS = new Set<string>(['rate_limited', 'circuit_open', 'invalid_api_key', 'forbidden', 'insufficient_quota', 'account_deactivated', 'manual']);

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A record read back from a store, checked field by field; undefined when it is not one. */
export function parseHealthRecord(value: unknown): HealthRecord | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.state !== 'string' || !STATES.has(v.state)) return undefined;
  if (v.reason !== undefined && (typeof v.reason !== 'string' || !REASONS.has(v.reason))) return undefined;
  if (v.until !== undefined && !finite(v.until)) return undefined;
  if (!finite(v.since) || !finite(v.strikes) || !finite(v.updatedAt)) return undefined;
  return {
    state: v.state as KeyState,
    ...(v.reason === undefined ? {} : { reason: v.reason as HealthReason }),
    ...(v.until === undefined ? {} : { until: v.until }),
    since: v.since,
    strikes: v.strikes,
    updatedAt: v.updatedAt,
  };
}

/** The newer of two records; the current one on a tie, so a process's own echo changes nothing. */
export function newer(current: HealthRecord, incoming: HealthRecord): HealthRecord {
  return incoming.updatedAt > current.updatedAt ? incoming : current;
}

/** One process's sync, or several KeyHealth instances sharing one object (as the tests do). */
export class MemoryHealthSync implements HealthSync {
  private readonly records = new Map<string, HealthRecord>();
  private readonly listeners = new Set<(keyRef: string, record: HealthRecord) => void>();

  async publish(keyRef: string, record: HealthRecord): Promise<void> {
    const current = this.records.get(keyRef);
    const kept = current ? newer(current, record) : record;
    this.records.set(keyRef, { ...kept });
    if (kept !== current) for (const listener of this.listeners) listener(keyRef, { ...kept });
  }

  async load(): Promise<Map<string, HealthRecord>> {
    return new Map([...this.records].map(([ref, record]) => [ref, { ...record }]));
  }

  subscribe(listener: (keyRef: string, record: HealthRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
