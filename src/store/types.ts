// The store keeps users, their keys, the quota ledger, and what the key pool shares between
// processes (key health, object owners). One interface, several backends: the tests run the same
// suite against each (test/store-contract.test.ts) so they cannot drift.
import type { Permission } from '../operations/costs.js';
import type { AlertStore } from '../alerts/types.js';
import type { AuditLog } from '../audit/log.js';
import type { CatalogStore } from '../pool/catalog-store.js';
import type { HealthSync } from '../pool/health-sync.js';
import type { ObjectOwners } from '../pool/object-owners.js';
import type { LaterCharges } from './later-charges.js';
import type { SessionStore } from '../console-server/sessions.js';
import type { FailureCounter } from '../console-server/throttle.js';

export interface Limits {
  rpm?: number;
  tpm?: number;
  tokensPerDay?: number;
  tokensPerMonth?: number;
  usdPerDay?: number;
  usdPerMonth?: number;
  maxConcurrent?: number;
}

export interface User {
  id: string;
  name?: string;
  /** Glob patterns of the models the user may call; absent means any. */
  models?: string[];
  /** ISO 8601; past it, the user's keys stop working. */
  expiresAt?: string;
  limits: Limits;
  /** The operations refused unless allowed that this user may call (src/operations/costs.ts). */
  allow?: Permission[];
  /** The page origins the user's keys may be used from (src/inbound/cors.ts); absent means any. */
  origins?: string[];
  createdAt: string;
}

export interface KeyRecord {
  id: string;
  userId: string;
  name?: string;
  /** The first characters of the key, enough to recognise it in a list. */
  prefix: string;
  /** SHA-256 of the whole key, hex. The key itself is never stored. */
  digest: string;
  createdAt: string;
  expiresAt?: string;
  revokedAt?: string;
}

/** A user's limits as the ledger applies them: whole numbers, money in micro-dollars, at most
 * src/quota/amounts.ts LIMIT_MAXIMUM (src/quota/gate.ts quotaLimits makes them so). */
export interface QuotaLimits {
  rpm?: number;
  tpm?: number;
  tokensPerDay?: number;
  tokensPerMonth?: number;
  microsPerDay?: number;
  microsPerMonth?: number;
  maxConcurrent?: number;
}

export interface ReserveInput {
  userId: string;
  /** The gateway's request id: a reserve or settle sent twice for it counts once. */
  requestId: string;
  limits: QuotaLimits;
  /** The request's worst case; one past src/quota/amounts.ts MAX_AMOUNT, or not a whole number,
   * is refused as `too_large`. */
  tokens: number;
  micros: number;
  now: number;
  /** How long the reservation holds when its process never settles it (a crash). */
  leaseMs: number;
}

/** What a reservation holds, as the caller keeps it until it settles. */
export interface Reservation {
  userId: string;
  requestId: string;
  tokens: number;
  micros: number;
  /** The ids of the day and month it was made in: it settles into those. */
  day: string;
  month: string;
}

export type Denial =
  | 'tokens_per_day'
  | 'tokens_per_month'
  | 'usd_per_day'
  | 'usd_per_month'
  | 'max_concurrent'
  | 'rpm'
  | 'tpm'
  /** The worst case is larger than the whole tpm limit: waiting cannot help. */
  | 'tpm_exceeded'
  /** The request id was already settled (a reserve resent after its cancel). */
  | 'settled'
  /** The worst case is not an amount the ledger counts (src/quota/amounts.ts): never admitted.
   * It still takes its unit of rpm, as any request the client made. */
  | 'too_large';

export interface RateWindow {
  limit: number;
  remaining: number;
  /** ms until the bucket is full again. */
  resetMs: number;
}

/** The user's per-minute limits after this decision, for the x-ratelimit-* headers. */
export interface RateState {
  requests?: RateWindow;
  tokens?: RateWindow;
}

export type Admission =
  | { admitted: true; reservation: Reservation; rate: RateState }
  | { admitted: false; denial: Denial; retryAfterMs: number; rate: RateState };

export interface SettleInput {
  reservation: Reservation;
  /** The limits now: a token bucket takes back what the request did not use. */
  limits: QuotaLimits;
  /** Real usage; `estimated` when it was counted by the gateway, not reported by the upstream. */
  tokens: number;
  micros: number;
  estimated: boolean;
  /** The request does not count at all (the upstream failed before answering): it leaves the
   * windows' request counts and goes back to the rpm bucket. */
  refundRequest: boolean;
  now: number;
  /** The lease the reservation was made with (how long its bookkeeping must be kept). */
  leaseMs: number;
}

export interface WindowUsage {
  window: string;
  /** ISO 8601: when the window ends. */
  resetsAt: string;
  requests: number;
  tokens: number;
  micros: number;
  reservedTokens: number;
  reservedMicros: number;
  /** Requests whose usage the gateway counted itself (a broken or aborted stream). */
  estimatedRequests: number;
}

export interface UsageSnapshot {
  day: WindowUsage;
  month: WindowUsage;
  rate: RateState;
  inFlight: number;
}

export type UserPatch = Partial<Pick<User, 'name' | 'models' | 'expiresAt' | 'limits' | 'allow' | 'origins'>>;

export interface Store {
  readonly kind: 'memory' | 'redis' | 'cluster';
  /**
   * Creates the user; resolves false when the id is taken or ever was: a deleted user's id is
   * never given out again, since their objects and counters outlive them.
   */
  createUser(user: User): Promise<boolean>;
  /** True when a user of this id was deleted (its id is retired). */
  wasDeleted(id: string): Promise<boolean>;
  getUser(id: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  updateUser(id: string, patch: UserPatch): Promise<User | undefined>;
  /** Deletes the user and every key of theirs, and retires the id; resolves false when there was none. */
  deleteUser(id: string): Promise<boolean>;

  /**
   * Stores the key; with `maxLive`, only while its user holds fewer live keys (not revoked, not
   * expired) than that, checked and taken in one atomic step: resolves false, storing nothing, at
   * the cap.
   */
  createKey(key: KeyRecord, maxLive?: number): Promise<boolean>;
  findKeyByDigest(digest: string): Promise<KeyRecord | undefined>;
  /** The key of a digest and its user (undefined when either is missing), read as currently stored. */
  findCaller(digest: string): Promise<{ key: KeyRecord; user: User | undefined } | undefined>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  listKeys(userId: string): Promise<KeyRecord[]>;
  /** Marks the key revoked; resolves the updated record, or undefined when there is none. */
  revokeKey(id: string, at: string): Promise<KeyRecord | undefined>;
  /** Forgets the user's ended keys (revoked or expired) past the `keep` most recently made:
   * their records and digests. Resolves how many were forgotten. */
  forgetEndedKeys(userId: string, keep: number, now: number): Promise<number>;

  /** Checks every limit and, when all hold, reserves the worst case: one atomic step. */
  reserve(input: ReserveInput): Promise<Admission>;
  /** Releases the reservation and charges the real usage; a second settle is a no-op. A charge the
   * ledger cannot count (src/quota/amounts.ts) is refused with a RangeError, charging nothing. */
  settle(input: SettleInput): Promise<void>;
  /** The user's counters in the current windows. */
  usage(userId: string, limits: QuotaLimits, now: number): Promise<UsageSnapshot>;

  /** Pool key health records, shared by every gateway process on this store (src/pool/health-sync.ts). */
  readonly keyHealth: HealthSync;
  /** Upstreams and pool keys added at run time (src/pool/catalog-store.ts). */
  readonly poolCatalog: CatalogStore;
  /** The user and pool key behind each object created through the gateway (src/pool/object-owners.ts). */
  readonly objectOwners: ObjectOwners;
  /** The admin API's audit log (src/audit/log.ts). */
  readonly audit: AuditLog;
  /** Webhooks, their delivery queue and the marks that raise each event once (src/alerts/types.ts). */
  readonly alerts: AlertStore;
  /** Batches and background responses waiting to be charged, each taken once (later-charges.ts). */
  readonly laterCharges: LaterCharges;
  /** The web console's sign-in sessions (src/console-server/sessions.ts). */
  readonly consoleSessions: SessionStore;
  /** Failed console sign-ins per client address and per key tried (src/console-server/throttle.ts). */
  readonly signInFailures: FailureCounter;

  /** True when the backend answers (readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
