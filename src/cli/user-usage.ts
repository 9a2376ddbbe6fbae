// The usage part of `keyrelay users show`: one table row per window of GET /admin/users/{id}
// (src/quota/view.ts), spent against limit, instead of the raw counters.
import type { usageView } from '../quota/view.js';
import { dollars, table } from './format.js';

export type UserUsage = ReturnType<typeof usageView>;
type Window = UserUsage['day'];
type Minute = UserUsage['minute'];
type Concurrent = UserUsage['concurrent'];

const HEADER = ['WINDOW', 'REQUESTS', 'TOKENS', 'USD', 'RESERVED', 'LIMIT', 'RESETS AT'] as const;

/** A limit the user gave in dollars, shown with the six decimals of the spent column. */
const usdAmount = (usd: number): string => usd.toFixed(6);

function limitCell(parts: Array<string | undefined>): string {
  const set = parts.filter((p): p is string => p !== undefined);
  return set.length ? set.join(', ') : 'unlimited';
}

function windowRow(kind: string, w: Window): string[] {
  // Requests whose usage the gateway counted itself (a stream that broke off): worth knowing.
  const estimated = w.estimatedRequests > 0 ? ` (${w.estimatedRequests} estimated)` : '';
  return [
    `${kind} ${w.window}`,
    `${w.requests}${estimated}`,
    String(w.tokens),
    dollars(w.usdMicros),
    `${w.reservedTokens} tokens, ${dollars(w.reservedUsdMicros)} USD`,
    limitCell([
      w.limits.tokens === null ? undefined : `${w.limits.tokens} tokens`,
      w.limits.usd === null ? undefined : `${usdAmount(w.limits.usd)} USD`,
    ]),
    w.resetsAt,
  ];
}

/**
 * The rpm and tpm token buckets. They refill continuously, so "used" is what the bucket lacks
 * now, and the API gives the time until it is full relative to its own clock: shown as such
 * rather than turned into a time by this machine's clock.
 */
function minuteRow({ requests, tokens }: Minute): string[] {
  const used = (b: Minute['requests']): string => (b === null ? '-' : String(b.limit - b.remaining));
  const resetMs = Math.max(requests?.resetMs ?? 0, tokens?.resetMs ?? 0);
  return [
    'minute',
    used(requests),
    used(tokens),
    '-',
    '-',
    limitCell([requests ? `${requests.limit} requests` : undefined, tokens ? `${tokens.limit} tokens` : undefined]),
    resetMs > 0 ? `in ${(Math.ceil(resetMs / 100) / 10).toFixed(1)} s` : '-',
  ];
}

function concurrentRow(c: Concurrent): string[] {
  return ['in flight', String(c.inFlight), '-', '-', '-', c.limit === null ? 'unlimited' : `${c.limit} at once`, '-'];
}

/** The table, or '' when the answer holds no windows (a gateway older than the usage view). */
export function usageTable(usage: Partial<UserUsage>): string {
  const rows: string[][] = [];
  if (usage.day) rows.push(windowRow('day', usage.day));
  if (usage.month) rows.push(windowRow('month', usage.month));
  if (usage.minute && (usage.minute.requests || usage.minute.tokens)) rows.push(minuteRow(usage.minute));
  if (usage.concurrent) rows.push(concurrentRow(usage.concurrent));
  return rows.length ? table(HEADER, rows) : '';
}
