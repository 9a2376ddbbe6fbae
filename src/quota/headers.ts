// The x-ratelimit-* headers in OpenAI's format, carrying the user's own gateway limits (the pool
// key's are stripped on the way back). Resets are written as Go durations, as OpenAI writes
// them: `250ms`, `1.5s`, `6m0s`, `1h0m0s`.
import type { RateState, RateWindow } from '../store/types.js';

export function goDuration(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const seconds = secondsText(whole % 60_000);
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** Whole milliseconds as seconds, with no trailing zeros: 1500 → `1.5`, 60 → `0.06`, 2000 → `2`.
 * Written out rather than toFixed and a regular expression: every answer carries two of these. */
function secondsText(ms: number): string {
  const whole = Math.floor(ms / 1000);
  let fraction = ms % 1000;
  if (fraction === 0) return String(whole);
  let digits = 3;
  while (fraction % 10 === 0) {
    fraction /= 10;
    digits--;
  }
  return `${whole}.${String(fraction).padStart(digits, '0')}`;
}

// The names spelled out: built from a template, each answer would make six new strings.
const NAMES = {
  requests: ['x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests'],
  tokens: ['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens'],
} as const;

function window(out: Record<string, string>, kind: 'requests' | 'tokens', w: RateWindow | undefined): void {
  if (!w) return;
  const [limit, remaining, reset] = NAMES[kind];
  out[limit] = String(w.limit);
  out[remaining] = String(w.remaining);
  out[reset] = goDuration(w.resetMs);
}

export function rateLimitHeaders(rate: RateState): Record<string, string> {
  const out: Record<string, string> = {};
  window(out, 'requests', rate.requests);
  window(out, 'tokens', rate.tokens);
  return out;
}

/** retry-after (whole seconds, rounded up) and retry-after-ms, which the official SDKs prefer. */
export function retryHeaders(ms: number): Record<string, string> {
  const whole = Math.max(1, Math.ceil(ms));
  return { 'retry-after': String(Math.ceil(whole / 1000)), 'retry-after-ms': String(whole) };
}
