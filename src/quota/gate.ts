// Admission and settlement of one request against its user's limits: the request path calls
// admit() before choosing a pool key and settle() when the answer has ended. The arithmetic and
// its atomicity live in the store (memory, or the Lua scripts on Redis); this module prices the
// worst case, turns a refusal into the answer CONTRACT.md prescribes, and prices real usage.
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { Denial, QuotaLimits, Reservation, Store, User } from '../store/types.js';
import { MAX_AMOUNT, MAX_LIMIT, ledgerLimit } from './amounts.js';
import { MAX_RATE_LIMIT } from './bucket.js';
import type { Estimate } from './estimate.js';
import { rateLimitHeaders, retryHeaders } from './headers.js';
import { type Price, type PriceTable, costMicros } from './prices.js';
import { type TokenUsage, totalTokens } from './usage.js';

export interface QuotaGateOptions {
  store: Store;
  prices: PriceTable;
  leaseMs: number;
  log: Logger;
  now?: () => number;
  /** Told of each store call that failed (the `keyrelay_store_errors_total` metric). */
  onStoreError?: (operation: 'reserve' | 'settle') => void;
}

/** An admitted request: what it holds, until it settles. */
export interface Ticket {
  reservation: Reservation;
  limits: QuotaLimits;
  price?: Price;
  /** The user's x-ratelimit-* headers after this admission. */
  headers: Record<string, string>;
}

export interface Charge {
  usage: TokenUsage;
  tokens: number;
  micros: number;
  estimated: boolean;
}

const perMinute = (v: number | undefined): number | undefined => ledgerLimit(v, MAX_RATE_LIMIT);
const whole = (v: number | undefined): number | undefined => ledgerLimit(v, MAX_LIMIT);
const micros = (usd: number | undefined): number | undefined => whole(usd === undefined ? undefined : Math.round(usd * 1_000_000));

/** The user's limits as the ledger applies them: whole numbers within src/quota/amounts.ts. */
export function quotaLimits(user: Pick<User, 'limits'>): QuotaLimits {
  const l = user.limits ?? {};
  const out: QuotaLimits = {
    rpm: perMinute(l.rpm),
    tpm: perMinute(l.tpm),
    tokensPerDay: whole(l.tokensPerDay),
    tokensPerMonth: whole(l.tokensPerMonth),
    microsPerDay: micros(l.usdPerDay),
    microsPerMonth: micros(l.usdPerMonth),
    maxConcurrent: whole(l.maxConcurrent),
  };
  for (const key of Object.keys(out) as Array<keyof QuotaLimits>) if (out[key] === undefined) delete out[key];
  return out;
}

const WINDOW_WORDS: Partial<Record<Denial, [string, string, 'tokens' | 'usd']>> = {
  tokens_per_day: ['daily', 'tokensPerDay', 'tokens'],
  tokens_per_month: ['monthly', 'tokensPerMonth', 'tokens'],
  usd_per_day: ['daily', 'usdPerDay', 'usd'],
  usd_per_month: ['monthly', 'usdPerMonth', 'usd'],
};

export function refusal(denial: Denial, retryAfterMs: number, rate: Record<string, string>, need: { tokens: number; micros: number }, now: number): GatewayError {
  const words = WINDOW_WORDS[denial];
  if (words) {
    const [period, limit, unit] = words;
    const resets = new Date(now + retryAfterMs).toISOString();
    const what = unit === 'tokens' ? `${need.tokens} tokens` : `$${(need.micros / 1_000_000).toFixed(6)}`;
    return new GatewayError('insufficient_quota', {
      message: `You exceeded your ${period} quota (${limit}), or this request's worst case (${what}, from its prompt and max_tokens) does not fit in what is left of it. It resets at ${resets}.`,
      headers: { ...rate, 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))), 'x-should-retry': 'false' },
    });
  }
  switch (denial) {
    case 'too_large':
      return new GatewayError('invalid_request', {
        param: 'max_tokens',
        message: `This request's worst case (${need.tokens} tokens, $${(need.micros / 1_000_000).toFixed(6)}: its prompt plus max_tokens × n × prompts) is larger than this gateway can count (${MAX_AMOUNT} tokens or micro-dollars). Lower max_tokens, n or best_of, or send fewer prompts at once.`,
        headers: rate,
      });
    case 'max_concurrent':
      return new GatewayError('rate_limit_exceeded', {
        type: 'requests',
        message: 'Too many requests in flight at once for this key (maxConcurrent). Retry when one has finished.',
        headers: { ...rate, ...retryHeaders(retryAfterMs) },
      });
    case 'rpm':
      return new GatewayError('rate_limit_exceeded', {
        type: 'requests',
        message: `Rate limit reached for requests per minute (rpm). Retry in ${Math.ceil(retryAfterMs)} ms.`,
        headers: { ...rate, ...retryHeaders(retryAfterMs) },
      });
    case 'tpm':
      return new GatewayError('rate_limit_exceeded', {
        type: 'tokens',
        message: `Rate limit reached for tokens per minute (tpm): this request may use up to ${need.tokens} tokens. Retry in ${Math.ceil(retryAfterMs)} ms.`,
        headers: { ...rate, ...retryHeaders(retryAfterMs) },
      });
    case 'tpm_exceeded':
      return new GatewayError('rate_limit_exceeded', {
        type: 'tokens',
        message: `Request too large: it may use up to ${need.tokens} tokens, more than the tokens per minute limit (tpm) allows. Lower max_tokens or shorten the prompt.`,
        headers: { ...rate, ...retryHeaders(retryAfterMs), 'x-should-retry': 'false' },
      });
    default:
      return new GatewayError('quota_backend_unavailable', { headers: { 'retry-after': '1' } });
  }
}

/** What the ledger is charged: an upstream that reports absurd usage spends every limit, and
 * cannot hand the ledger a number it does not hold (src/quota/amounts.ts). */
const charged = (amount: number | undefined): number => Math.min(amount ?? 0, MAX_AMOUNT);

export class QuotaGate {
  private readonly now: () => number;

  constructor(private readonly options: QuotaGateOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Reserves the request's worst case, or throws the 429 (or 403, 503) it gets instead. */
  async admit(user: User, requestId: string, estimate: Estimate): Promise<Ticket> {
    const limits = quotaLimits(user);
    const price = estimate.model === undefined ? undefined : this.options.prices.lookup(estimate.model);
    const dollarLimited = limits.microsPerDay !== undefined || limits.microsPerMonth !== undefined;
    if (dollarLimited && estimate.metered && estimate.model !== undefined && !price) {
      // A model with no price would spend money that no dollar limit sees: refuse rather than leak.
      throw new GatewayError('model_not_allowed', {
        param: 'model',
        message: `The model "${estimate.model}" has no price in this gateway's price table, so it cannot be used under a dollar limit. Add it under prices: in the settings.`,
      });
    }
    // Only token and dollar limits need the worst case; without them the prompt is not tokenized.
    const sized = limits.tpm !== undefined || limits.tokensPerDay !== undefined || limits.tokensPerMonth !== undefined || dollarLimited;
    const prompt = sized ? estimate.promptTokens : 0;
    const output = sized ? estimate.maxOutputTokens : 0;
    const tokens = prompt + output;
    const worstMicros = price ? costMicros(price, { input: prompt, cachedInput: 0, output }) : 0;
    const now = this.now();
    const admission = await this.options.store
      .reserve({ userId: user.id, requestId, limits, tokens, micros: worstMicros, now, leaseMs: this.options.leaseMs })
      .catch((err: unknown) => {
        this.options.onStoreError?.('reserve');
        throw err;
      });
    const headers = rateLimitHeaders(admission.rate);
    if (!admission.admitted) throw refusal(admission.denial, admission.retryAfterMs, headers, { tokens, micros: worstMicros }, now);
    return { reservation: admission.reservation, limits, price, headers };
  }

  /** Charges what the request used; `undefined` usage releases the reservation in full. */
  async settle(ticket: Ticket, used: { usage: TokenUsage; estimated: boolean } | undefined): Promise<Charge | undefined> {
    const charge = used && {
      usage: used.usage,
      tokens: totalTokens(used.usage),
      micros: ticket.price ? costMicros(ticket.price, used.usage) : 0,
      estimated: used.estimated,
    };
    try {
      await this.options.store.settle({
        reservation: ticket.reservation,
        limits: ticket.limits,
        tokens: charged(charge?.tokens),
        micros: charged(charge?.micros),
        estimated: charge?.estimated ?? false,
        refundRequest: charge === undefined,
        now: this.now(),
        leaseMs: this.options.leaseMs,
      });
    } catch (err) {
      this.options.onStoreError?.('settle');
      this.options.log.error({ err, requestId: ticket.reservation.requestId }, 'settle failed');
    }
    return charge;
  }
}
