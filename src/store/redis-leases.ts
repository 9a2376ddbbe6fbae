// Quota leases (docs/quota.md): a process holds, per user, part of what the user has left, taken
// from Redis in one atomic step (src/quota/lease-script.ts), and admits and settles that user's
// requests against it in memory. Its exchanges with Redis (charges, returns, renewals) run in the
// background, one per lease per round. Whatever the process cannot admit from its lease is
// admitted in Redis one request at a time, as without leases. Redis always holds at least what the
// process may still admit: the process takes what it gives back out of its lease before it sends,
// and adds what it is granted only once Redis answered.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isLedgerAmount } from '../quota/amounts.js';
import { SCALE, rateWindow } from '../quota/bucket.js';
import { LATER_PREFIX, LEASE_PREFIX } from '../quota/rules.js';
import { type Window, dayWindow, monthWindow } from '../quota/windows.js';
import type { Admission, QuotaLimits, RateState, Reservation, ReserveInput, SettleInput } from './types.js';

/** Every round, each lease with something to say exchanges with Redis. */
const SYNC_EVERY_MS = 100;
/** A lease unused this long gives everything back and closes. */
const IDLE_MS = 2000;
/** A lease asks for room for at least this many requests like its user's last one. */
const LEAST_REQUESTS = 16;
const MOST_REQUESTS = 100_000;

export interface LeaseOptions {
  /** How long a lease outlives a process that stops renewing it (quota.leaseSeconds). */
  ttlMs: number;
  /** Local admission stops when Redis has not answered this lease for this long. */
  staleMs: number;
  /** Runs one lease step (keys of the user, arguments): src/quota/lease-script.ts. */
  run(userId: string, keys: string[], args: Array<string | number>): Promise<unknown[]>;
  keys(userId: string, day: string, month: string): string[];
  /** Admission and settle of one request in Redis: the path without leases. */
  reserve(input: ReserveInput): Promise<Admission>;
  settle(input: SettleInput): Promise<void>;
  log: Logger;
  now?: () => number;
}

interface Room {
  tokens: number;
  micros: number;
  rpm: number;
  tpm: number;
  slots: number;
}
type Dim = keyof Room;
const DIMS: readonly Dim[] = ['tokens', 'micros', 'rpm', 'tpm', 'slots'];

/** Whether the limits bound a dimension; one they do not is unlimited in a lease (Infinity). */
function bounds(limits: QuotaLimits, dim: Dim): boolean {
  switch (dim) {
    case 'tokens':
      return limits.tokensPerDay !== undefined || limits.tokensPerMonth !== undefined;
    case 'micros':
      return limits.microsPerDay !== undefined || limits.microsPerMonth !== undefined;
    case 'rpm':
      return limits.rpm !== undefined;
    case 'tpm':
      return limits.tpm !== undefined;
    case 'slots':
      return limits.maxConcurrent !== undefined;
  }
}

/** The same comparison src/quota/rules.ts windowDenies makes of what is left. */
const fits = (free: number, need: number): boolean => free > 0 && need <= free;
const limitsKey = (limits: QuotaLimits): string =>
  [limits.rpm, limits.tpm, limits.tokensPerDay, limits.tokensPerMonth, limits.microsPerDay, limits.microsPerMonth, limits.maxConcurrent].join(',');

class Lease {
  /** What the process may still admit against; Infinity where the limits bound nothing. */
  readonly free: Room;
  /** Spent since the last exchange, out of the lease: sent with the next one. */
  pending = { tokens: 0, micros: 0, requests: 0, estimated: 0, rpm: 0, tpm: 0, tpmPast: 0 };
  inFlight = 0;
  admitted = 0;
  /** Redis answered at least once: the lease exists. */
  created = false;
  /** Admits nothing more: an exchange failed, or Redis said the lease is gone. */
  dead = false;
  /** Admits nothing more, gives everything back, and closes once its requests have ended. */
  closing = false;
  closed = false;
  syncing = false;
  exchanging: Promise<void> | undefined;
  wanted = true;
  okAt = -Infinity;
  deadline = -Infinity;
  lastUsed: number;
  size = { tokens: 0, micros: 0 };
  rpmLevel = 0;
  tpmLevel = 0;
  levelAt = 0;

  constructor(
    readonly id: string,
    readonly userId: string,
    readonly limits: QuotaLimits,
    readonly key: string,
    readonly day: Window,
    readonly month: Window,
    now: number,
  ) {
    this.lastUsed = now;
    this.free = { tokens: 0, micros: 0, rpm: 0, tpm: 0, slots: 0 };
    for (const dim of DIMS) if (!bounds(limits, dim)) this.free[dim] = Infinity;
  }

  hasPending(): boolean {
    const p = this.pending;
    return p.tokens !== 0 || p.micros !== 0 || p.requests !== 0 || p.estimated !== 0 || p.rpm !== 0 || p.tpm !== 0 || p.tpmPast !== 0;
  }
}

interface HeldHere {
  lease: Lease;
  tokens: number;
  micros: number;
}

export class QuotaLeases {
  private readonly process = randomBytes(6).toString('hex');
  private serial = 0;
  /** The lease each user's requests are admitted against. */
  private readonly current = new Map<string, Lease>();
  /** Every lease not yet closed: current, closing, or dead with requests still in flight. */
  private readonly all = new Set<Lease>();
  /** Requests admitted from a lease, by request id, until they settle. */
  private readonly held = new Map<string, HeldHere>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  /** When an exchange last failed: no new lease for a second after (Redis is likely away). */
  private failedAt = -Infinity;

  constructor(private readonly o: LeaseOptions) {
    this.now = o.now ?? Date.now;
    this.timer = setInterval(() => this.tick(), SYNC_EVERY_MS);
    this.timer.unref();
  }

  /** How many requests are admitted from leases and not settled (for tests). */
  get leasedInFlight(): number {
    return this.held.size;
  }

  async reserve(input: ReserveInput): Promise<Admission> {
    const mine = this.held.get(input.requestId);
    if (mine) return { admitted: true, reservation: this.reservationOf(input, mine.lease), rate: {} };
    // Charged later (a batch, a background response): long-lived, and not in flight; in Redis.
    if (input.requestId.startsWith(LATER_PREFIX) || !isLedgerAmount(input.tokens) || !isLedgerAmount(input.micros)) return this.o.reserve(input);
    const now = input.now;
    const key = limitsKey(input.limits);
    const day = dayWindow(now);
    const month = monthWindow(now);
    let lease = this.current.get(input.userId);
    if (lease && (lease.key !== key || lease.day.id !== day.id || lease.month.id !== month.id || lease.dead)) {
      // Taken under other limits, or in another window: it gives everything back and closes.
      lease.closing = true;
      this.current.delete(input.userId);
      lease = undefined;
    }
    if (!lease && now - this.failedAt < 1000) return this.o.reserve(input);
    if (!lease) {
      lease = new Lease(`${LEASE_PREFIX}${this.process}:${++this.serial}`, input.userId, input.limits, key, day, month, now);
      lease.size = { tokens: input.tokens, micros: input.micros };
      this.current.set(input.userId, lease);
      this.all.add(lease);
      // This request first: its answer is Redis's, before any of the lease is taken.
      const admission = this.o.reserve(input);
      this.sync(lease);
      return admission;
    }
    if (this.usable(lease, now) && this.fitsIn(lease, input)) {
      this.take(lease, input, now);
      return { admitted: true, reservation: this.reservationOf(input, lease), rate: this.rateOf(lease, now) };
    }
    lease.wanted = true;
    lease.size = { tokens: input.tokens, micros: input.micros };
    return this.withOwn(await this.o.reserve(input), lease);
  }

  /** Redis's answer counts every lease as used, this process's too: what this process holds
   * unused is the user's to take here, so the headers count it as remaining (docs/quota.md). */
  private withOwn(admission: Admission, lease: Lease): Admission {
    const own = (w: RateState['requests'], free: number) =>
      w && lease.created && !lease.dead && free > 0 && free !== Infinity ? { ...w, remaining: Math.min(w.limit, w.remaining + Math.floor(free)) } : w;
    const requests = own(admission.rate.requests, lease.free.rpm);
    const tokens = own(admission.rate.tokens, lease.free.tpm);
    const rate: RateState = {};
    if (requests) rate.requests = requests;
    if (tokens) rate.tokens = tokens;
    return { ...admission, rate };
  }

  async settle(input: SettleInput): Promise<void> {
    const mine = this.held.get(input.reservation.requestId);
    if (!mine) return this.o.settle(input);
    this.held.delete(input.reservation.requestId);
    const { lease } = mine;
    lease.inFlight--;
    // The lease pays up to the request's worst case; above it, the excess is charged as a
    // request's settle charges usage above its reservation.
    const tokens = Math.min(input.tokens, mine.tokens);
    const micros = Math.min(input.micros, mine.micros);
    const f = lease.free;
    const p = lease.pending;
    const limits = lease.limits;
    f.tokens += mine.tokens - tokens;
    f.micros += mine.micros - micros;
    if (bounds(limits, 'slots')) f.slots += 1;
    if (bounds(limits, 'tpm')) {
      f.tpm += mine.tokens - tokens;
      p.tpm += tokens;
      p.tpmPast += input.tokens - tokens;
    }
    if (input.refundRequest) {
      if (bounds(limits, 'rpm')) f.rpm += 1;
    } else {
      if (bounds(limits, 'rpm')) p.rpm += 1;
      p.requests += 1;
    }
    p.tokens += tokens;
    p.micros += micros;
    if (input.estimated) p.estimated += 1;
    // A dropped lease is charged in full in Redis, which pays for this request in every unit a
    // window limits; a unit none limits was never reserved in it, so its usage is charged here.
    const unpaidTokens = lease.dead && !bounds(limits, 'tokens') ? tokens : 0;
    const unpaidMicros = lease.dead && !bounds(limits, 'micros') ? micros : 0;
    if (input.tokens > tokens || input.micros > micros || unpaidTokens > 0 || unpaidMicros > 0) {
      await this.o.settle({ ...input, tokens: input.tokens - tokens + unpaidTokens, micros: input.micros - micros + unpaidMicros, refundRequest: false });
    }
  }

  /** Gives every lease back (its requests have ended: the server waited for them). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const last: Array<Promise<void>> = [];
    for (const lease of this.all) {
      if (lease.dead) continue;
      lease.closing = true;
      // After the exchange under way, if any: it may have been sent before the lease was closing.
      last.push((lease.exchanging ?? Promise.resolve()).then(() => this.exchange(lease)));
    }
    await Promise.all(last);
  }

  private usable(lease: Lease, now: number): boolean {
    return lease.created && !lease.dead && !lease.closing && now < lease.deadline && now - lease.okAt <= this.o.staleMs;
  }

  private fitsIn(lease: Lease, input: ReserveInput): boolean {
    const f = lease.free;
    const limits = lease.limits;
    if (!fits(f.tokens, input.tokens) || !fits(f.micros, input.micros)) return false;
    if (bounds(limits, 'rpm') && f.rpm < 1) return false;
    if (bounds(limits, 'tpm') && !fits(f.tpm, input.tokens)) return false;
    if (bounds(limits, 'slots') && f.slots < 1) return false;
    return true;
  }

  private take(lease: Lease, input: ReserveInput, now: number): void {
    const f = lease.free;
    f.tokens -= input.tokens;
    f.micros -= input.micros;
    if (bounds(lease.limits, 'rpm')) f.rpm -= 1;
    if (bounds(lease.limits, 'tpm')) f.tpm -= input.tokens;
    if (bounds(lease.limits, 'slots')) f.slots -= 1;
    lease.inFlight++;
    lease.admitted++;
    lease.lastUsed = now;
    lease.size = { tokens: input.tokens, micros: input.micros };
    this.held.set(input.requestId, { lease, tokens: input.tokens, micros: input.micros });
    // Running low: ask now rather than at the next round.
    const want = this.want(lease);
    if (DIMS.some((dim) => f[dim] < want[dim] / 2)) this.sync(lease);
  }

  private reservationOf(input: ReserveInput, lease: Lease): Reservation {
    return { userId: input.userId, requestId: input.requestId, tokens: input.tokens, micros: input.micros, day: lease.day.id, month: lease.month.id };
  }

  /** The buckets as Redis last reported them, refilled since, plus what this lease still holds:
   * what the user could be admitted now if this process gave its lease back (docs/quota.md). */
  private rateOf(lease: Lease, now: number): RateState {
    const rate: RateState = {};
    const level = (at: number, limit: number, free: number) => Math.min(limit * SCALE, at + Math.max(0, now - lease.levelAt) * limit + free * SCALE);
    const { rpm, tpm } = lease.limits;
    if (rpm !== undefined) rate.requests = rateWindow(level(lease.rpmLevel, rpm, lease.free.rpm), rpm);
    if (tpm !== undefined) rate.tokens = rateWindow(level(lease.tpmLevel, tpm, lease.free.tpm), tpm);
    return rate;
  }

  /** Room for about twice what the lease admitted since its last exchange, at least LEAST_REQUESTS
   * requests like the last one. */
  private want(lease: Lease): Room {
    const n = Math.min(MOST_REQUESTS, Math.max(LEAST_REQUESTS, 2 * lease.admitted));
    return { tokens: n * lease.size.tokens, micros: n * lease.size.micros, rpm: n, tpm: n * lease.size.tokens, slots: n };
  }

  private tick(): void {
    const now = this.now();
    for (const lease of this.all) {
      if (lease.dead || lease.closed) {
        if (lease.inFlight === 0) this.all.delete(lease);
        continue;
      }
      if (lease.syncing) continue;
      if (now - lease.lastUsed > IDLE_MS && lease.created) lease.closing = true;
      if (lease.closing && this.current.get(lease.userId) === lease) this.current.delete(lease.userId);
      const renew = now >= lease.deadline - this.o.ttlMs / 2;
      // A closing lease whose requests run on (a long stream, a WebSocket session) has nothing to
      // say until one of them ends or its deadline nears.
      const toGiveBack = lease.closing && (lease.inFlight === 0 || DIMS.some((dim) => lease.free[dim] > 0 && lease.free[dim] !== Infinity));
      if (toGiveBack || lease.wanted || renew || lease.admitted > 0 || lease.hasPending()) this.sync(lease);
    }
  }

  private sync(lease: Lease): void {
    if (lease.syncing || lease.closed || lease.dead) return;
    lease.exchanging = this.exchange(lease);
  }

  /** One exchange with Redis: charges, returns, wants, renewal. */
  private async exchange(lease: Lease): Promise<void> {
    if (lease.syncing || lease.closed || lease.dead) return;
    lease.syncing = true;
    const sentAt = this.now();
    const f = lease.free;
    const want = this.want(lease);
    const back: Room = { tokens: 0, micros: 0, rpm: 0, tpm: 0, slots: 0 };
    const ask: Room = { tokens: 0, micros: 0, rpm: 0, tpm: 0, slots: 0 };
    for (const dim of DIMS) {
      if (f[dim] === Infinity) continue;
      if (lease.closing) back[dim] = Math.max(0, f[dim]);
      else ask[dim] = Math.max(0, want[dim] - f[dim]);
      // Given back before it is sent: from now on this process may not admit against it.
      f[dim] -= back[dim];
    }
    const close = lease.closing && lease.inFlight === 0;
    const p = lease.pending;
    lease.pending = { tokens: 0, micros: 0, requests: 0, estimated: 0, rpm: 0, tpm: 0, tpmPast: 0 };
    lease.admitted = 0;
    lease.wanted = false;
    const l = lease.limits;
    const limit = (v: number | undefined): number => (v === undefined ? -1 : v);
    const args: Array<string | number> = [
      lease.id, sentAt, this.o.ttlMs, lease.created ? 0 : 1, close ? 1 : 0,
      p.tokens, p.micros, p.requests, p.estimated,
      back.tokens, back.micros, ask.tokens, ask.micros, lease.size.tokens, lease.size.micros,
      p.rpm, back.rpm, ask.rpm,
      p.tpm, back.tpm, ask.tpm, lease.size.tokens, p.tpmPast,
      back.slots, ask.slots,
      limit(l.rpm), limit(l.tpm), limit(l.tokensPerDay), limit(l.tokensPerMonth), limit(l.microsPerDay), limit(l.microsPerMonth), limit(l.maxConcurrent),
      lease.day.id, lease.month.id, lease.day.end, lease.month.end,
    ];
    try {
      const reply = (await this.o.run(lease.userId, this.o.keys(lease.userId, lease.day.id, lease.month.id), args)) as number[];
      if (reply[0] !== 1) {
        // Gone: it expired and was charged in full, which pays for all it admitted.
        this.drop(lease);
        return;
      }
      const [, tokens, micros, rpm, tpm, slots, rpmLevel, tpmLevel] = reply.map(Number) as number[];
      const granted: Room = { tokens: tokens ?? 0, micros: micros ?? 0, rpm: rpm ?? 0, tpm: tpm ?? 0, slots: slots ?? 0 };
      for (const dim of DIMS) if (f[dim] !== Infinity && granted[dim] > 0) f[dim] += granted[dim];
      lease.created = true;
      lease.okAt = this.now();
      // Redis's deadline is sentAt + ttl, on this process's clock: stop well before it.
      lease.deadline = sentAt + this.o.ttlMs - Math.min(1000, this.o.ttlMs / 4);
      lease.rpmLevel = rpmLevel ?? 0;
      lease.tpmLevel = tpmLevel ?? 0;
      lease.levelAt = sentAt;
      if (close) {
        lease.closed = true;
        this.all.delete(lease);
        if (this.current.get(lease.userId) === lease) this.current.delete(lease.userId);
      }
    } catch (err) {
      // Unknown whether Redis took it: the lease admits nothing more, and what it holds is charged
      // in full when its deadline passes (docs/quota.md, Failure).
      this.failedAt = this.now();
      this.o.log.warn({ lease: lease.id, reason: (err as Error).message }, 'quota lease exchange failed: the lease is dropped');
      this.drop(lease);
    } finally {
      lease.syncing = false;
    }
  }

  private drop(lease: Lease): void {
    lease.dead = true;
    if (this.current.get(lease.userId) === lease) this.current.delete(lease.userId);
    if (lease.inFlight === 0) this.all.delete(lease);
  }
}
