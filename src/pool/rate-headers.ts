// What an upstream answer says about its key's rate limits: `retry-after-ms` / `retry-after` on a
// 429, and the `x-ratelimit-*` headers OpenAI sends on every answer. Resets are Go durations
// (`20ms`, `1s`, `6m0s`, `1h2m3.5s`): https://platform.openai.com/docs/guides/rate-limits
import { BoundedMap } from '../bounded-map.js';

export type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

export function header(headers: HeaderBag | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.trim();
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$/;
const GO_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

// Every answer carries two resets, and the same few values come back again and again.
const parsed = new BoundedMap<string, number | undefined>(1000);

/** A Go duration in ms (`1h2m3.5s` is 3,723,500), or undefined when it is not one. */
export function parseGoDuration(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  if (value === '0') return 0;
  if (parsed.has(value)) return parsed.get(value);
  let ms: number | undefined;
  if (GO_DURATION.test(value)) {
    ms = 0;
    for (const [, amount, unit] of value.matchAll(GO_PART)) ms += Number(amount) * (UNIT_MS[unit as string] ?? 0);
    if (!Number.isFinite(ms)) ms = undefined;
  }
  parsed.set(value, ms);
  return ms;
}

const SECONDS = /^\d+(?:\.\d+)?$/;

/**
 * How long the upstream asks to wait: `retry-after-ms` (what the official SDKs read first), else
 * `retry-after` in seconds or as an HTTP date (RFC 9110 section 10.2.3). Undefined when neither says.
 */
export function retryAfterMs(headers: HeaderBag | undefined, now: number): number | undefined {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined && SECONDS.test(ms)) return Number(ms);
  const after = header(headers, 'retry-after');
  if (after === undefined || after === '') return undefined;
  if (SECONDS.test(after)) return Number(after) * 1000;
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** One rate window of a key as its last answer described it. */
export interface RateWindowSnapshot {
  limit?: number;
  remaining?: number;
  /** When the window is full again, epoch ms. */
  resetAt?: number;
}

/** A key's rate limits as of one answer (`observedAt`). */
export interface RateSnapshot {
  observedAt: number;
  requests: RateWindowSnapshot;
  tokens: RateWindowSnapshot;
}

function whole(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

const NAMES = {
  requests: { limit: 'x-ratelimit-limit-requests', remaining: 'x-ratelimit-remaining-requests', reset: 'x-ratelimit-reset-requests' },
  tokens: { limit: 'x-ratelimit-limit-tokens', remaining: 'x-ratelimit-remaining-tokens', reset: 'x-ratelimit-reset-tokens' },
};

function windowOf(headers: HeaderBag, kind: 'requests' | 'tokens', now: number): RateWindowSnapshot {
  const names = NAMES[kind];
  const reset = parseGoDuration(header(headers, names.reset));
  return {
    limit: whole(header(headers, names.limit)),
    remaining: whole(header(headers, names.remaining)),
    resetAt: reset === undefined ? undefined : now + reset,
  };
}

/** The snapshot an answer carries, or undefined when it has no x-ratelimit-* header at all. */
export function rateSnapshot(headers: HeaderBag | undefined, now: number): RateSnapshot | undefined {
  if (!headers) return undefined;
  const requests = windowOf(headers, 'requests', now);
  const tokens = windowOf(headers, 'tokens', now);
  const empty = (w: RateWindowSnapshot) => w.limit === undefined && w.remaining === undefined && w.resetAt === undefined;
  if (empty(requests) && empty(tokens)) return undefined;
  return { observedAt: now, requests, tokens };
}

/** When a window that the snapshot shows spent (remaining 0) is usable again; undefined if none is. */
export function exhaustedUntil(snapshot: RateSnapshot | undefined, now: number): number | undefined {
  if (!snapshot) return undefined;
  let until: number | undefined;
  for (const w of [snapshot.requests, snapshot.tokens]) {
    if (w.remaining === 0 && w.resetAt !== undefined && w.resetAt > now) until = Math.max(until ?? 0, w.resetAt);
  }
  return until;
}

/**
 * The share of a window estimated left at `now`, 0 to 1. OpenAI's limits refill continuously and
 * the reset header says when the window is full again, so what was spent at `observedAt` comes
 * back linearly until `resetAt`.
 */
function windowHeadroom(w: RateWindowSnapshot, observedAt: number, now: number): number {
  if (w.limit === undefined || w.remaining === undefined || w.limit <= 0) return 1;
  const left = Math.min(1, w.remaining / w.limit);
  if (w.resetAt === undefined) return left;
  if (now >= w.resetAt) return 1;
  const span = w.resetAt - observedAt;
  const refilled = span <= 0 ? 1 : Math.max(0, now - observedAt) / span;
  return Math.min(1, left + (1 - left) * refilled);
}

/** The tighter of the two windows' headroom; 1 when nothing is known. */
export function headroom(snapshot: RateSnapshot | undefined, now: number): number {
  if (!snapshot) return 1;
  return Math.min(windowHeadroom(snapshot.requests, snapshot.observedAt, now), windowHeadroom(snapshot.tokens, snapshot.observedAt, now));
}

/**
 * How long a 429 asks this key to rest: the upstream's retry-after, else the reset of the window
 * the answer shows spent (the later of the two when both are), else the sooner reset given.
 */
export function rateLimitPauseMs(headers: HeaderBag | undefined, now: number): number | undefined {
  const after = retryAfterMs(headers, now);
  if (after !== undefined) return after;
  const snapshot = rateSnapshot(headers, now);
  if (!snapshot) return undefined;
  const spent = exhaustedUntil(snapshot, now - 1);
  if (spent !== undefined) return spent - now;
  const resets = [snapshot.requests.resetAt, snapshot.tokens.resetAt].filter((r): r is number => r !== undefined);
  return resets.length === 0 ? undefined : Math.min(...resets) - now;
}
