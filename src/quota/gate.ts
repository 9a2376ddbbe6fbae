// Admission and settlement of one request against its user's limits: the request path calls
// admit() before choosing a pool key and settle() when the answer has ended. The arithmetic and
// its atomicity live in the store (memory, or the Lua scripts on Redis); this module prices the
// worst case, turns a refusal into the answer the README prescribes ("Users, limits and
// quotas"), and prices real usage.
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { Denial, QuotaLimits, RateState, Reservation, Store, User } from '../store/types.js';
import { MAX_AMOUNT, MAX_LIMIT, ledgerLimit } from './amounts.js';
import { MAX_RATE_LIMIT } from './bucket.js';
import type { Estimate, OutputBound } from './estimate.js';
import { rateLimitHeaders, retryHeaders } from './headers.js';
import { type Price, type PriceTable, costMicros, worstCostMicros } from './prices.js';
import { type TokenUsage, totalTokens } from './usage.js';

export interface QuotaGateOptions {
  store: Store;
  prices: PriceTable;
  leaseMs: number;
  log: Logger;
  now?: () => number;
  /** Told of each store call that failed (the `keyrelay_store_errors_total` metric). */
  onStoreError?: (operation: 'reserve' | 'settle') => void;
  /** Told of each settle that charged something, once it is in the store (quota alerts watch it). */
  onSettled?: (userId: string, limits: QuotaLimits) => void;
}

/** An admitted request: what it holds, until it settles. */
export interface Ticket {
  reservation: Reservation;
  limits: QuotaLimits;
  price?: Price;
  /** A price per call (Estimate.flatMicros), charged with whatever usage the request settles with. */
  flatMicros: number;
  /** The user's x-ratelimit-* headers after this admission. */
  headers: Record<string, string>;
  /** A renewal under way (renew()): its settle waits for it. */
  renewal?: Promise<void>;
  /** It was settled: a renewal leaves it alone. */
  settled?: boolean;
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

/** What a refusal explains: the worst case and where its output bound came from, and what is left. */
interface Need {
  tokens: number;
  micros: number;
  prompt: number;
  output: number;
  bound?: OutputBound;
  /** What is left in the refused window (its limit less what is used and reserved), when it was read. */
  left?: { amount: number; limit: number };
}

const BOUND_WORDS: Record<OutputBound['from'], string> = {
  request: 'its max_tokens',
  request_capped: "the model's output cap, below its max_tokens",
  model_cap: "the model's output cap, as it sets no max_tokens",
  default_setting: "quota.defaultMaxOutputTokens, as it sets no max_tokens and the gateway does not know the model's output cap",
  api_default: "the API's default max_tokens for completions, as it sets none",
};
const SET_MAX_TOKENS = ' Set max_tokens (max_completion_tokens; max_output_tokens on /v1/responses) to the output you need, and the request is sized by that.';

const usd = (micros: number): string => `$${(micros / 1_000_000).toFixed(6)}`;

/** "1234 tokens ($0.000740): 34 prompt tokens plus up to 1200 output tokens (1200 per answer: its max_tokens)" */
function worstCase(need: Need, unit: 'tokens' | 'usd'): string {
  const amount = unit === 'usd' ? `${usd(need.micros)}, ${need.tokens} tokens` : `${need.tokens} tokens`;
  const output = need.bound ? ` (${need.bound.tokens} per answer: ${BOUND_WORDS[need.bound.from]})` : '';
  return `${amount}: ${need.prompt} prompt tokens plus up to ${need.output} output tokens${output}`;
}

/** The advice to set max_tokens, when the bound was not the request's own. */
const hint = (need: Need): string =>
  need.bound && (need.bound.from === 'model_cap' || need.bound.from === 'default_setting') && need.output > 0 ? SET_MAX_TOKENS : '';

export function refusal(denial: Denial, retryAfterMs: number, rate: Record<string, string>, need: Need, now: number): GatewayError {
  const words = WINDOW_WORDS[denial];
  if (words) {
    const [period, limit, unit] = words;
    const resets = new Date(now + retryAfterMs).toISOString();
    const show = unit === 'tokens' ? (n: number) => `${n} tokens` : usd;
    const left = need.left ? `${show(need.left.amount)} left of ${show(need.left.limit)}` : 'what is left';
    return new GatewayError('insufficient_quota', {
      message: `This request's worst case (${worstCase(need, unit)}) does not fit in your ${period} quota (${limit}): ${left}. It resets at ${resets}.${hint(need)}`,
      headers: { ...rate, 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))), 'x-should-retry': 'false' },
    });
  }
  switch (denial) {
    case 'too_large':
      return new GatewayError('invalid_request', {
        param: 'max_tokens',
        message: `This request's worst case (${need.tokens} tokens, ${usd(need.micros)}: its prompt plus max_tokens × n × prompts) is larger than this gateway can count (${MAX_AMOUNT} tokens or micro-dollars). Lower max_tokens, n or best_of, or send fewer prompts at once.`,
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
    case 'tpm': {
      const left = need.left ? `, ${need.left.amount} of ${need.left.limit} left now` : '';
      return new GatewayError('rate_limit_exceeded', {
        type: 'tokens',
        message: `Rate limit reached for tokens per minute (tpm${left}): this request may use up to ${worstCase(need, 'tokens')}. Retry in ${Math.ceil(retryAfterMs)} ms.${hint(need)}`,
        headers: { ...rate, ...retryHeaders(retryAfterMs) },
      });
    }
    case 'tpm_exceeded':
      return new GatewayError('rate_limit_exceeded', {
        type: 'tokens',
        message: `Request too large: it may use up to ${worstCase(need, 'tokens')}, more than the tokens per minute limit (tpm${need.left ? ` ${need.left.limit}` : ''}) allows. Lower max_tokens or shorten the prompt.${hint(need)}`,
        headers: { ...rate, ...retryHeaders(retryAfterMs), 'x-should-retry': 'false' },
      });
    default:
      return new GatewayError('quota_backend_unavailable', { headers: { 'retry-after': '1' } });
  }
}

const WINDOW_LIMITS: Partial<Record<Denial, (limits: QuotaLimits) => number | undefined>> = {
  tokens_per_day: (l) => l.tokensPerDay,
  tokens_per_month: (l) => l.tokensPerMonth,
  usd_per_day: (l) => l.microsPerDay,
  usd_per_month: (l) => l.microsPerMonth,
};

/** What is left in the window a refusal names, read after the refusal (only then: it costs a
 * store call). Unknown when the store cannot say: the refusal is still sent, without the number. */
async function leftIn(store: Store, userId: string, denial: Denial, limits: QuotaLimits, rate: RateState, now: number): Promise<Need['left']> {
  if (denial === 'tpm' || denial === 'tpm_exceeded') return rate.tokens && { amount: rate.tokens.remaining, limit: rate.tokens.limit };
  const words = WINDOW_WORDS[denial];
  if (!words) return undefined;
  const snapshot = await store.usage(userId, limits, now).catch(() => undefined);
  if (!snapshot) return undefined;
  const window = denial === 'tokens_per_day' || denial === 'usd_per_day' ? snapshot.day : snapshot.month;
  const limit = WINDOW_LIMITS[denial]?.(limits);
  if (limit === undefined) return undefined;
  const used = words[2] === 'tokens' ? window.tokens + window.reservedTokens : window.micros + window.reservedMicros;
  return { amount: Math.max(0, limit - used), limit };
}

/** What the ledger is charged: an upstream that reports absurd usage spends every limit, and
 * cannot hand the ledger a number it does not hold (src/quota/amounts.ts). */
const charged = (amount: number | undefined): number => Math.min(amount ?? 0, MAX_AMOUNT);

export class QuotaGate {
  private readonly now: () => number;

  constructor(private readonly options: QuotaGateOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The model's price, or undefined when it has none (or the request names no model). */
  priceOf(model: string | undefined): Price | undefined {
    return model === undefined ? undefined : this.options.prices.lookup(model);
  }

  /** Reserves the request's worst case, or throws the 429 (or 403, 503) it gets instead. */
  async admit(user: User, requestId: string, estimate: Estimate): Promise<Ticket> {
    const limits = quotaLimits(user);
    // Priced at the size and quality of its images: what it is charged per image when it settles.
    const price = estimate.model === undefined ? undefined : this.options.prices.lookup(estimate.model, estimate.units?.image);
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
    const flat = estimate.flatMicros ?? 0;
    // Any token may be the dearest kind (a realtime or audio answer may be all audio).
    const worstMicros = (price ? worstCostMicros(price, { input: prompt, output }, sized ? estimate.units : undefined) : 0) + flat;
    const now = this.now();
    const admission = await this.options.store
      .reserve({ userId: user.id, requestId, limits, tokens, micros: worstMicros, now, leaseMs: this.options.leaseMs })
      .catch((err: unknown) => {
        this.options.onStoreError?.('reserve');
        throw err;
      });
    const headers = rateLimitHeaders(admission.rate);
    if (!admission.admitted) {
      const { denial, retryAfterMs } = admission;
      const left = await leftIn(this.options.store, user.id, denial, limits, admission.rate, now);
      throw refusal(denial, retryAfterMs, headers, { tokens, micros: worstMicros, prompt, output, bound: estimate.outputBound, left }, now);
    }
    return { reservation: admission.reservation, limits, price, flatMicros: flat, headers };
  }

  /** Charges what the request used; `undefined` usage releases the reservation in full. `atWorst`:
   * the usage is a worst case, not a report, so its tokens are priced as admit() priced them, at the
   * model's dearest rates (a cut audio answer is not charged as text). */
  async settle(ticket: Ticket, used: { usage: TokenUsage; estimated: boolean; atWorst?: boolean } | undefined): Promise<Charge | undefined> {
    ticket.settled = true;
    // Settled where it is held now: a renewal under way moves it first (and only then a wait).
    if (ticket.renewal) await ticket.renewal;
    const priced = (price: Price, usage: TokenUsage): number =>
      used?.atWorst ? worstCostMicros(price, usage, { images: usage.images, seconds: usage.seconds, characters: usage.characters }) : costMicros(price, usage);
    const charge = used && {
      usage: used.usage,
      tokens: totalTokens(used.usage),
      micros: (ticket.price ? priced(ticket.price, used.usage) : 0) + ticket.flatMicros,
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
      if (charge && (charge.tokens > 0 || charge.micros > 0)) this.options.onSettled?.(ticket.reservation.userId, ticket.limits);
    } catch (err) {
      this.options.onStoreError?.('settle');
      this.options.log.error({ err, requestId: ticket.reservation.requestId }, 'settle failed');
    }
    return charge;
  }

  /** How long a reservation holds when its process never settles it (quota.leaseMs). */
  get leaseMs(): number {
    return this.options.leaseMs;
  }

  /**
   * Keeps a reservation held longer than its lease from lapsing (a lapsed one is charged whole,
   * however little was used): what it holds moves to a fresh reservation, `<request id>.renew<n>`,
   * taken with no limits (it is never refused and takes no rpm nor tpm: the first took them), and
   * the old one is given back as a request that did not count, its tokens kept out of tpm. The
   * user's counters stay as the first admission left them. A renewal that fails leaves the old
   * one held (it lapses unless a later renewal succeeds).
   */
  renew(ticket: Ticket, renewalId: string): Promise<void> {
    if (ticket.settled) return Promise.resolve();
    const previous = ticket.renewal ?? Promise.resolve();
    const renewal = previous.then(async () => {
      if (ticket.settled) return;
      const old = ticket.reservation;
      try {
        const admission = await this.options.store.reserve({ userId: old.userId, requestId: renewalId, limits: {}, tokens: old.tokens, micros: old.micros, now: this.now(), leaseMs: this.options.leaseMs });
        if (!admission.admitted) return;
        // Settled from now on as the new one. An old one that cannot be given back (a store
        // fault) lapses, charged whole: never less than was held.
        ticket.reservation = admission.reservation;
        await this.options.store.settle({ reservation: old, limits: {}, tokens: 0, micros: 0, estimated: false, refundRequest: true, now: this.now(), leaseMs: this.options.leaseMs });
      } catch (err) {
        this.options.onStoreError?.('reserve');
        this.options.log.warn({ requestId: renewalId, reason: (err as Error).message }, 'could not renew a reservation: it lapses after its lease unless a later renewal succeeds');
      }
    });
    ticket.renewal = renewal;
    return renewal;
  }
}
