// A user's usage as the admin API shows it (GET /admin/users/{id}): each window with what was
// spent, what is reserved by requests in flight, and the limit, money both in US dollars and in
// the integer micro-dollars the ledger keeps.
import type { Limits, RateWindow, UsageSnapshot, WindowUsage } from '../store/types.js';

const usd = (micros: number): number => micros / 1_000_000;

function window(w: WindowUsage, tokenLimit: number | undefined, usdLimit: number | undefined) {
  return {
    window: w.window,
    resetsAt: w.resetsAt,
    requests: w.requests,
    tokens: w.tokens,
    usd: usd(w.micros),
    usdMicros: w.micros,
    reservedTokens: w.reservedTokens,
    reservedUsdMicros: w.reservedMicros,
    estimatedRequests: w.estimatedRequests,
    limits: { tokens: tokenLimit ?? null, usd: usdLimit ?? null },
  };
}

const rate = (w: RateWindow | undefined) => w ?? null;

export function usageView(snapshot: UsageSnapshot, limits: Limits) {
  return {
    day: window(snapshot.day, limits.tokensPerDay, limits.usdPerDay),
    month: window(snapshot.month, limits.tokensPerMonth, limits.usdPerMonth),
    minute: { requests: rate(snapshot.rate.requests), tokens: rate(snapshot.rate.tokens) },
    concurrent: { inFlight: snapshot.inFlight, limit: limits.maxConcurrent ?? null },
  };
}
