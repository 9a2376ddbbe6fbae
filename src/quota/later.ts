// Charges made after the answer: a batch (its cost is known when it ends, hours later) and a
// `background: true` response (answered `queued`, run afterwards). When the work is created, its
// worst case is reserved against the user's token and dollar windows under the id
// `later:<request id>`, with a lease of its own (LATER_LEASE_MS), and a record of it is kept in the
// store under the upstream's id of the work. When a request shows the gateway the work has ended,
// the record is taken (once, across processes: src/store/later-charges.ts) and the reservation
// settled with the usage the work reported, at the batch discount for a batch.
//
// A lease that runs out before the gateway saw the work end is swept by the ledger as any lease
// whose holder vanished: charged its worst case, marked estimated (the operator's money is not
// given back on a guess). The record lapses a little before the lease, so that no charge can land
// after the sweep has charged.
import type { Logger } from 'pino';
import type { RequestRecord } from '../observability/record.js';
import type { Reservation, Store, User } from '../store/types.js';
import { refusal, quotaLimits } from './gate.js';
import { rateLimitHeaders } from './headers.js';
import { type PriceTable, costMicros } from './prices.js';
import { LATER_PREFIX } from './rules.js';
import { type TokenUsage, totalTokens } from './usage.js';
import { MAX_AMOUNT } from './amounts.js';

/** The Batch API's price: half the standard price of the model (OpenAI pricing page). */
export const BATCH_DISCOUNT = 0.5;
/** A batch's completion window (24 h) plus a day for the gateway to see it end. */
export const LATER_LEASE_MS = 48 * 3_600_000;
/** The record lapses this long before its lease, so a charge never races the ledger's sweep. */
const RECORD_MARGIN_MS = 10 * 60_000;

export type LaterKind = 'batch' | 'response';

/** What is kept in the store until the work is charged. */
export interface LaterRecord {
  kind: LaterKind;
  userId: string;
  reservation: Reservation;
  model?: string;
  /** The gateway's id of the request that created the work. */
  createdBy: string;
  operation: string;
  /** The pool key the work runs on: a batch's output is read with it. */
  upstreamId: string;
  keyId: string;
  /** For a batch: how many requests its input file held. */
  requests?: number;
  /** The worst case reserved, for a share of it when the real usage cannot be read. */
  worst?: TokenUsage;
}

export interface LaterUsage {
  usage: TokenUsage;
  /** Not reported by the upstream: counted from the worst case (a lost output, say). */
  estimated: boolean;
}

export interface LaterOptions {
  store: Store;
  prices: PriceTable;
  log: Logger;
  leaseMs?: number;
  now?: () => number;
}

const laterId = (requestId: string): string => `${LATER_PREFIX}${requestId}`;
const recordId = (kind: LaterKind, upstreamId: string): string => `${kind}:${upstreamId}`;
const charged = (n: number): number => Math.min(n, MAX_AMOUNT);

export class LaterLedger {
  readonly leaseMs: number;
  private readonly now: () => number;

  constructor(private readonly options: LaterOptions) {
    this.leaseMs = options.leaseMs ?? LATER_LEASE_MS;
    this.now = options.now ?? Date.now;
  }

  /** Micro-dollars of `usage` on `model` at the kind's price (a batch at BATCH_DISCOUNT). */
  micros(kind: LaterKind, model: string | undefined, usage: TokenUsage): number {
    const price = model === undefined ? undefined : this.options.prices.lookup(model);
    if (!price) return 0;
    const full = costMicros(price, usage);
    return kind === 'batch' ? Math.ceil(full * BATCH_DISCOUNT) : full;
  }

  /**
   * Reserves the worst case against the user's day and month windows (and tpm, for a background
   * response, which OpenAI counts as any response), or throws the 429 the user gets instead. rpm
   * and maxConcurrent were taken by the request itself.
   */
  async reserve(user: User, requestId: string, kind: LaterKind, model: string | undefined, worst: TokenUsage): Promise<Reservation> {
    const all = quotaLimits(user);
    const limits = {
      tokensPerDay: all.tokensPerDay,
      tokensPerMonth: all.tokensPerMonth,
      microsPerDay: all.microsPerDay,
      microsPerMonth: all.microsPerMonth,
      ...(kind === 'response' ? { tpm: all.tpm } : {}),
    };
    const tokens = totalTokens(worst);
    const micros = this.micros(kind, model, worst);
    const now = this.now();
    const admission = await this.options.store.reserve({ userId: user.id, requestId: laterId(requestId), limits, tokens, micros, now, leaseMs: this.leaseMs });
    if (!admission.admitted) throw refusal(admission.denial, admission.retryAfterMs, rateLimitHeaders(admission.rate), { tokens, micros, prompt: worst.input, output: worst.output }, now);
    return admission.reservation;
  }

  /** Keeps the record until the work ends (or its lease does). */
  async keep(upstreamObjectId: string, record: LaterRecord): Promise<void> {
    const ttl = Math.max(1, this.leaseMs - RECORD_MARGIN_MS);
    await this.options.store.laterCharges.put(recordId(record.kind, upstreamObjectId), JSON.stringify(record), ttl);
  }

  /** The record of work not charged yet, for this caller alone; undefined for every later one. */
  async take(kind: LaterKind, upstreamObjectId: string): Promise<LaterRecord | undefined> {
    const json = await this.options.store.laterCharges.take(recordId(kind, upstreamObjectId));
    return json === undefined ? undefined : (JSON.parse(json) as LaterRecord);
  }

  /** True when the work is still to be charged (an answer about it is worth reading). */
  async pending(kind: LaterKind, upstreamObjectId: string): Promise<boolean> {
    return (await this.options.store.laterCharges.peek(recordId(kind, upstreamObjectId))) !== undefined;
  }

  /** Settles the reservation with what the work used; undefined releases it (nothing ran). */
  async settle(kind: LaterKind, reservation: Reservation, model: string | undefined, used: LaterUsage | undefined): Promise<{ tokens: number; micros: number }> {
    const tokens = used ? charged(totalTokens(used.usage)) : 0;
    const micros = used ? charged(this.micros(kind, model, used.usage)) : 0;
    await this.options.store.settle({
      reservation,
      limits: {},
      tokens,
      micros,
      estimated: used?.estimated ?? false,
      refundRequest: false,
      now: this.now(),
      leaseMs: this.leaseMs,
    });
    return { tokens, micros };
  }

  /** Settles a taken record and returns the request log's record of the charge. */
  async charge(record: LaterRecord, used: LaterUsage | undefined, seenBy: string): Promise<RequestRecord> {
    const { tokens, micros } = await this.settle(record.kind, record.reservation, record.model, used);
    this.options.log.info({ createdBy: record.createdBy, seenBy, kind: record.kind, tokens, micros }, 'charged later');
    return {
      requestId: record.reservation.requestId,
      time: new Date(this.now()).toISOString(),
      userId: record.userId,
      poolKeyId: record.keyId,
      upstream: record.upstreamId,
      method: 'POST',
      route: record.kind === 'batch' ? '/v1/batches' : '/v1/responses',
      operation: record.operation,
      model: record.model,
      stream: false,
      status: 200,
      outcome: 'ok',
      retries: 0,
      durationMs: 0,
      bytesOut: 0,
      tokens: used ? { ...used.usage, estimated: used.estimated } : { input: 0, cachedInput: 0, output: 0, estimated: false },
      costMicros: micros,
      chargedLater: true,
      createdBy: record.createdBy,
      chargedBy: seenBy,
    };
  }
}
