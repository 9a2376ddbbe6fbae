// The health of each pool key: what its upstream answers do to it, and whether selection may use it.
//
//   active ──429──────────────────────────▶ cooling (rate_limited) until retry-after / reset / default
//   active ──N × 5xx or timeout in a row──▶ cooling (circuit_open) for base·2^strikes, jittered, capped;
//                                           past it one trial request: success closes, failure reopens longer
//   any ────401, 403, insufficient_quota,─▶ disabled, probed at base·2^strikes: one real request is let
//           account_deactivated             through, and success brings the key back
//   a 401/403 that refuses one operation (a missing scope, a route for admin keys; outcome.ts)
//   changes nothing: it is the client's answer, not the key's fault
//   admin disable / enable: disabled (manual, never probed) / active
//
// A key is never dropped silently: when none is usable, selection reports the earliest recovery so
// the caller answers 503 with retry-after (docs/reliability.md, case 16). Probes are in-band: a due key takes
// one client request; if that fails the failover policy sends the request on to another key.
import { ACTIVE, type HealthReason, type HealthRecord, type HealthSync, type KeyState, newer } from './health-sync.js';
import type { Verdict } from './outcome.js';
import { type HeaderBag, type RateSnapshot, exhaustedUntil, rateLimitPauseMs, rateSnapshot } from './rate-headers.js';

export interface HealthSettings {
  /** A 429 that says nothing of when to come back. */
  defaultCooldownMs: number;
  /** The longest a 429 cools a key; a daily limit's reset of hours is retried this often. */
  maxCooldownMs: number;
  /** 5xx or timeouts in a row that open the circuit. */
  failureThreshold: number;
  circuitBaseMs: number;
  circuitMaxMs: number;
  /** The first probe of a disabled key comes this long after it was disabled, then twice as long each time. */
  probeBaseMs: number;
  probeMaxMs: number;
  /** A probe (or circuit trial) request not finished after this long frees the key for another. */
  probeLeaseMs: number;
}

export const DEFAULT_HEALTH_SETTINGS: Readonly<HealthSettings> = Object.freeze({
  defaultCooldownMs: 20_000,
  maxCooldownMs: 600_000,
  failureThreshold: 3,
  circuitBaseMs: 5_000,
  circuitMaxMs: 300_000,
  probeBaseMs: 60_000,
  probeMaxMs: 1_800_000,
  probeLeaseMs: 60_000,
});

/** What selection may do with a key now. */
export type Availability =
  | { kind: 'ready' }
  /** Recovering: it may take one request, whose outcome decides. */
  | { kind: 'probe' }
  /** Not usable; `until` is the earliest it may be again (absent: only an admin brings it back). */
  | { kind: 'resting'; until?: number; reason: HealthReason };

/** Per process, never shared: counts and the key's rate limits as its last answer gave them. */
export interface KeyStats {
  inFlight: number;
  requests: number;
  failures: number;
  consecutiveFailures: number;
}

export interface KeyView extends KeyStats {
  state: KeyState;
  reason?: HealthReason;
  until?: number;
}

/** One request on one key, from `begin` to `end`. */
export interface AttemptTicket {
  readonly keyRef: string;
  readonly startedAt: number;
  readonly probe: boolean;
}

interface Local extends KeyStats {
  rate?: RateSnapshot;
  probeClaimedUntil?: number;
}

export interface HealthOptions {
  settings?: Partial<HealthSettings>;
  now?: () => number;
  /** 0 ≤ x < 1; spreads circuit and probe times so processes and keys do not move in step. */
  random?: () => number;
  sync?: HealthSync;
  /** Every change of a key's record, its own or one merged from another process (for the log). */
  onChange?: (keyRef: string, record: HealthRecord, previous: HealthRecord) => void;
  /** A publish to the sync failed; the local state still holds. */
  onSyncError?: (err: unknown) => void;
}

export class KeyHealth {
  readonly settings: Readonly<HealthSettings>;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly sync?: HealthSync;
  private readonly records = new Map<string, HealthRecord>();
  private readonly locals = new Map<string, Local>();
  private readonly unsubscribe?: () => void;

  constructor(private readonly options: HealthOptions = {}) {
    this.settings = { ...DEFAULT_HEALTH_SETTINGS, ...options.settings };
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.sync = options.sync;
    this.unsubscribe = this.sync?.subscribe?.((ref, record) => this.merge(ref, record));
  }

  record(keyRef: string): HealthRecord {
    return { ...(this.records.get(keyRef) ?? ACTIVE) };
  }

  stats(keyRef: string): KeyStats {
    const { inFlight, requests, failures, consecutiveFailures } = this.local(keyRef);
    return { inFlight, requests, failures, consecutiveFailures };
  }

  rate(keyRef: string): RateSnapshot | undefined {
    return this.local(keyRef).rate;
  }

  availability(keyRef: string): Availability {
    const now = this.now();
    const record = this.records.get(keyRef) ?? ACTIVE;
    const local = this.local(keyRef);
    if (record.state === 'disabled' && record.until === undefined) return { kind: 'resting', reason: record.reason ?? 'manual' };
    if (record.state !== 'active' && record.until !== undefined && record.until > now) {
      return { kind: 'resting', until: record.until, reason: record.reason ?? 'manual' };
    }
    if (record.state === 'disabled' || record.reason === 'circuit_open') {
      const claimed = local.probeClaimedUntil;
      if (claimed !== undefined && claimed > now) return { kind: 'resting', until: claimed, reason: record.reason ?? 'manual' };
      return { kind: 'probe' };
    }
    // Its last answer said a window is spent: a request now would only earn a 429.
    const spent = exhaustedUntil(local.rate, now);
    if (spent !== undefined) return { kind: 'resting', until: spent, reason: 'rate_limited' };
    return { kind: 'ready' };
  }

  /**
   * Reserves a recovering key's one trial request for the caller, until that request ends or the
   * lease runs out (a request that is never ended must not keep the key out forever).
   */
  claimProbe(keyRef: string): void {
    this.local(keyRef).probeClaimedUntil = this.now() + this.settings.probeLeaseMs;
  }

  /** Starts one request on the key; `probe` when it is the key's trial (see claimProbe). */
  begin(keyRef: string, probe = false): AttemptTicket {
    const local = this.local(keyRef);
    local.inFlight++;
    local.requests++;
    return { keyRef, startedAt: this.now(), probe };
  }

  /** Ends a request: counts it and applies what its outcome says about the key. */
  end(ticket: AttemptTicket, verdict: Verdict, headers?: HeaderBag): void {
    const now = this.now();
    const ref = ticket.keyRef;
    const local = this.local(ref);
    local.inFlight = Math.max(0, local.inFlight - 1);
    if (ticket.probe) local.probeClaimedUntil = undefined;
    const snapshot = rateSnapshot(headers, now);
    if (snapshot) local.rate = snapshot;

    const record = this.records.get(ref) ?? ACTIVE;
    // An attempt that began before the key's current state cannot tell anything about that state.
    const stale = ticket.startedAt < record.since;
    switch (verdict.kind) {
      case 'ok':
      case 'neutral':
      case 'refused': {
        local.consecutiveFailures = 0;
        if (stale || record.state === 'active' || record.reason === 'manual') return;
        // A 400 or a refusal proves the upstream answers, not that a revoked key or a spent quota is fixed.
        if (verdict.kind !== 'ok' && record.reason !== 'circuit_open') return;
        if (record.state === 'cooling' && record.reason === 'rate_limited' && (record.until ?? 0) > now) return;
        this.set(ref, { state: 'active', since: now, strikes: 0 });
        return;
      }
      case 'rate_limited': {
        local.failures++;
        if (record.state === 'disabled') return;
        const pause = rateLimitPauseMs(headers, now) ?? this.settings.defaultCooldownMs;
        const until = now + Math.min(Math.max(0, pause), this.settings.maxCooldownMs);
        if (record.state === 'cooling' && (record.until ?? 0) >= until) return;
        this.set(ref, { state: 'cooling', reason: 'rate_limited', until, since: now, strikes: 0 });
        return;
      }
      case 'disable': {
        local.failures++;
        if (record.reason === 'manual' || (record.state === 'disabled' && stale)) return;
        const strikes = record.state === 'disabled' ? record.strikes + 1 : 0;
        this.set(ref, { state: 'disabled', reason: verdict.reason, until: now + this.probeWait(strikes), since: now, strikes });
        return;
      }
      case 'transient': {
        local.failures++;
        local.consecutiveFailures++;
        if (stale || record.reason === 'manual') return;
        if (record.state === 'disabled') {
          // A probe that met a 5xx learnt nothing about the key's account: try again as soon, not later.
          if (ticket.probe) this.set(ref, { ...record, until: now + this.probeWait(record.strikes), since: now });
          return;
        }
        if (record.reason === 'circuit_open') {
          // Its trial failed: open again, for longer.
          this.openCircuit(ref, record.strikes + 1, now);
          return;
        }
        if (record.state === 'cooling' && (record.until ?? 0) > now) return;
        if (local.consecutiveFailures >= this.settings.failureThreshold) this.openCircuit(ref, 0, now);
        return;
      }
      case 'ignored':
        return;
    }
  }

  /** The admin's hand: disabled until enabled again, never probed. */
  disable(keyRef: string): void {
    this.set(keyRef, { state: 'disabled', reason: 'manual', since: this.now(), strikes: 0 });
  }

  enable(keyRef: string): void {
    const local = this.local(keyRef);
    local.consecutiveFailures = 0;
    local.probeClaimedUntil = undefined;
    this.set(keyRef, { state: 'active', since: this.now(), strikes: 0 });
  }

  /** Takes another process's record when it is newer. Returns whether it was taken. */
  merge(keyRef: string, incoming: HealthRecord): boolean {
    const current = this.records.get(keyRef) ?? ACTIVE;
    if (newer(current, incoming) === current) return false;
    this.records.set(keyRef, { ...incoming });
    this.options.onChange?.(keyRef, { ...incoming }, current);
    return true;
  }

  /** Catches up with every record the sync holds (at start, and after the store was unreachable). */
  async refresh(): Promise<void> {
    if (!this.sync) return;
    for (const [ref, record] of await this.sync.load()) this.merge(ref, record);
  }

  /** What the admin API shows: the state as selection sees it now, and this process's counts. */
  view(keyRef: string): KeyView {
    const record = this.records.get(keyRef) ?? ACTIVE;
    const availability = this.availability(keyRef);
    const stats = this.stats(keyRef);
    if (availability.kind === 'resting') {
      const state: KeyState = record.state === 'active' ? 'cooling' : record.state;
      return { ...stats, state, reason: availability.reason, ...(availability.until === undefined ? {} : { until: availability.until }) };
    }
    // A disabled key due for its probe is still disabled until the probe succeeds.
    if (record.state === 'disabled') return { ...stats, state: 'disabled', ...(record.reason ? { reason: record.reason } : {}) };
    return { ...stats, state: 'active' };
  }

  close(): void {
    this.unsubscribe?.();
  }

  private openCircuit(ref: string, strikes: number, now: number): void {
    this.local(ref).consecutiveFailures = 0;
    const wait = this.jittered(this.settings.circuitBaseMs, this.settings.circuitMaxMs, strikes);
    this.set(ref, { state: 'cooling', reason: 'circuit_open', until: now + wait, since: now, strikes });
  }

  private probeWait(strikes: number): number {
    return this.jittered(this.settings.probeBaseMs, this.settings.probeMaxMs, strikes);
  }

  /** base·2^strikes capped, then "equal jitter": between half and all of it, so it still grows. */
  private jittered(base: number, cap: number, strikes: number): number {
    const full = Math.min(cap, base * 2 ** Math.min(strikes, 30));
    return Math.round(full / 2 + (this.random() * full) / 2);
  }

  private set(ref: string, fields: Omit<HealthRecord, 'updatedAt'>): void {
    const previous = this.records.get(ref) ?? ACTIVE;
    const record: HealthRecord = { ...fields, updatedAt: Math.max(this.now(), previous.updatedAt + 1) };
    if (record.until === undefined) delete record.until;
    if (record.reason === undefined) delete record.reason;
    this.records.set(ref, record);
    this.options.onChange?.(ref, { ...record }, previous);
    this.sync?.publish(ref, { ...record }).catch((err: unknown) => this.options.onSyncError?.(err));
  }

  private local(ref: string): Local {
    let local = this.locals.get(ref);
    if (!local) {
      local = { inFlight: 0, requests: 0, failures: 0, consecutiveFailures: 0 };
      this.locals.set(ref, local);
    }
    return local;
  }
}
