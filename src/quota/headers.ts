// The x-ratelimit-* headers in OpenAI's format, carrying the user's own gateway limits (the pool
// key's are stripped on the way back). Resets are written as Go durations, as OpenAI writes
// them: `250ms`, `1.5s`, `6m0s`, `1h0m0s`.
import type { RateState, RateWindow } from '../store/types.js';

export function goDuration(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const seconds = ((whole % 60_000) / 1000).toFixed(3).replace(/\.?0+$/, '');
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

function window(out: Record<string, string>, kind: 'requests' | 'tokens', w: RateWindow | undefined): void {
  if (!w) return;
  out[`x-ratelimit-limit-${kind}`] = String(w.limit);
  out[`x-ratelimit-remaining-${kind}`] = String(w.remaining);
  out[`x-ratelimit-reset-${kind}`] = goDuration(w.resetMs);
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
