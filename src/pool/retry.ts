// Failover inside one request: whether a failed attempt may be sent again, on another key.
// Only while nothing has reached the client, only when the request can be sent again without
// doing twice what the upstream may already have done, within a few attempts, one deadline and a
// pool-wide retry budget. The budget is Finagle's RetryBudget idea (also Envoy's retry budgets):
// retries may be at most a share of the requests of a sliding window, with a floor per second so a
// quiet gateway can still fail over, so that an upstream-wide outage cannot multiply the load on it.
import { type AttemptResult, type Verdict, classifyAttempt, failedToConnect, isReset } from './outcome.js';

export interface RetrySettings {
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** No retry starts later than this after the request's first attempt. */
  deadlineMs: number;
  /** Backoff before a retry after an upstream-wide kind of failure: full jitter up to base·2^n, capped. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Retries may be this share of the requests of the window… */
  budgetRatio: number;
  /** …or this many per second of the window, whichever is more. */
  budgetMinPerSecond: number;
  budgetWindowMs: number;
}

export const DEFAULT_RETRY_SETTINGS: Readonly<RetrySettings> = Object.freeze({
  maxAttempts: 3,
  deadlineMs: 30_000,
  baseDelayMs: 50,
  maxDelayMs: 1_000,
  budgetRatio: 0.2,
  budgetMinPerSecond: 5,
  budgetWindowMs: 10_000,
});

const BUCKETS = 10;

interface Bucket {
  slot: number;
  requests: number;
  retries: number;
}

/** Requests and retries over a sliding window, in ten buckets. */
export class RetryBudget {
  private readonly buckets: Bucket[] = Array.from({ length: BUCKETS }, () => ({ slot: -1, requests: 0, retries: 0 }));
  private readonly bucketMs: number;

  constructor(
    private readonly settings: Pick<RetrySettings, 'budgetRatio' | 'budgetMinPerSecond' | 'budgetWindowMs'>,
    private readonly now: () => number = Date.now,
  ) {
    this.bucketMs = Math.max(1, Math.ceil(settings.budgetWindowMs / BUCKETS));
  }

  /** One client request (not a retry) began. */
  recordRequest(): void {
    this.current().requests++;
  }

  /** Takes one retry from the budget if it has one left. */
  tryAcquire(): boolean {
    const { retries, allowed } = this.snapshot();
    if (retries >= allowed) return false;
    this.current().retries++;
    return true;
  }

  snapshot(): { requests: number; retries: number; allowed: number } {
    const slot = Math.floor(this.now() / this.bucketMs);
    let requests = 0;
    let retries = 0;
    for (const b of this.buckets) {
      if (b.slot > slot - BUCKETS && b.slot <= slot) {
        requests += b.requests;
        retries += b.retries;
      }
    }
    const floor = (this.settings.budgetMinPerSecond * this.settings.budgetWindowMs) / 1000;
    return { requests, retries, allowed: Math.floor(Math.max(floor, this.settings.budgetRatio * requests)) };
  }

  private current(): Bucket {
    const slot = Math.floor(this.now() / this.bucketMs);
    const bucket = this.buckets[slot % BUCKETS] as Bucket;
    if (bucket.slot !== slot) {
      bucket.slot = slot;
      bucket.requests = 0;
      bucket.retries = 0;
    }
    return bucket;
  }
}

/** A failed attempt as the caller saw it. */
export interface FailedAttempt extends AttemptResult {
  method: string;
  /** Any byte of the answer, the status line included, already went to the client. */
  clientSawBytes: boolean;
  /** The whole request had been handed to the upstream connection. */
  requestWritten: boolean;
  /** The body can be sent again: none, or held in memory; not a stream already read. */
  replayable: boolean;
}

export type RetryRefusal = 'client_saw_bytes' | 'not_retryable' | 'body_not_replayable' | 'max_attempts' | 'deadline' | 'budget';

export type RetryDecision = { retry: true; delayMs: number; verdict: Verdict } | { retry: false; reason: RetryRefusal; verdict: Verdict };

// RFC 9110 section 9.2.1: sending these twice has the effect of sending them once.
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether another key may take the request. 429, 401, 403 and 5xx are answers that did nothing;
 * a connection that failed or was reset before the request was written carried nothing. A timeout
 * waiting for headers, or a reset after the request was written, may have left work running
 * upstream (and billed): only a safe method is sent again then (fastify-reply-from does the same).
 */
function retryable(failure: FailedAttempt, verdict: Verdict): boolean {
  switch (verdict.kind) {
    case 'ok':
    case 'neutral':
    // A 401 or 403 that refuses this operation to the key (outcome.ts) is the request's answer:
    // pool keys are mostly made alike, and trying each would make one request cost several calls.
    case 'refused':
      return false;
    case 'rate_limited':
    case 'disable':
      return true;
    case 'ignored':
      // A malformed answer came after the request was sent: the upstream may be working on it.
      if (verdict.reason === 'malformed_answer') return SAFE_METHODS.has(failure.method.toUpperCase());
      return verdict.reason !== 'client_aborted';
    case 'transient': {
      if (failure.transportCode === undefined) return verdict.reason === 'server_error';
      if (failedToConnect(failure.transportCode)) return true;
      if (isReset(failure.transportCode) && !failure.requestWritten) return true;
      if (failure.status !== undefined && failure.status >= 500) return true;
      return SAFE_METHODS.has(failure.method.toUpperCase());
    }
  }
}

/** Key-specific refusals say nothing about the next key: it is tried at once. */
function keySpecific(verdict: Verdict): boolean {
  return verdict.kind === 'rate_limited' || verdict.kind === 'disable' || (verdict.kind === 'ignored' && verdict.reason === 'model_unavailable');
}

export interface RetryDeps {
  now?: () => number;
  /** 0 ≤ x < 1. */
  random?: () => number;
  budget?: RetryBudget;
}

/** The attempts of one request. */
export class RetryRun {
  attempts = 1;
  readonly deadline: number;

  constructor(
    private readonly policy: RetryPolicy,
    readonly startedAt: number,
  ) {
    this.deadline = startedAt + policy.settings.deadlineMs;
  }

  /** Decides about the attempt that just failed; on `retry`, counts the next attempt. */
  decide(failure: FailedAttempt): RetryDecision {
    const verdict = classifyAttempt(failure);
    const refuse = (reason: RetryRefusal): RetryDecision => ({ retry: false, reason, verdict });
    if (failure.clientSawBytes) return refuse('client_saw_bytes');
    if (!retryable(failure, verdict)) return refuse('not_retryable');
    if (!failure.replayable) return refuse('body_not_replayable');
    if (this.attempts >= this.policy.settings.maxAttempts) return refuse('max_attempts');
    const delayMs = keySpecific(verdict) ? 0 : this.policy.backoff(this.attempts - 1);
    if (this.policy.now() + delayMs >= this.deadline) return refuse('deadline');
    if (!this.policy.budget.tryAcquire()) return refuse('budget');
    this.attempts++;
    return { retry: true, delayMs, verdict };
  }
}

export class RetryPolicy {
  readonly settings: Readonly<RetrySettings>;
  readonly budget: RetryBudget;
  readonly now: () => number;
  private readonly random: () => number;

  constructor(settings: Partial<RetrySettings> = {}, deps: RetryDeps = {}) {
    this.settings = { ...DEFAULT_RETRY_SETTINGS, ...settings };
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.budget = deps.budget ?? new RetryBudget(this.settings, this.now);
  }

  /** A new client request: counted in the budget; its attempts are decided by the run. */
  begin(): RetryRun {
    this.budget.recordRequest();
    return new RetryRun(this, this.now());
  }

  /** Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^n)). */
  backoff(retryIndex: number): number {
    const ceiling = Math.min(this.settings.maxDelayMs, this.settings.baseDelayMs * 2 ** Math.min(retryIndex, 30));
    return Math.floor(this.random() * ceiling);
  }
}
