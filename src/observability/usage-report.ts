// GET /admin/usage: the counters of a span of days, grouped by day, model and/or user, with totals.
import { type UsageCounts, type UsageRow, addCounts, emptyCounts } from './usage.js';

export const GROUPS = ['day', 'model', 'user'] as const;
export type Group = (typeof GROUPS)[number];

/** What the API shows for a group or the total; money both in US dollars and micro-dollars. */
export interface UsageFigures {
  requests: number;
  errors: number;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  totalTokens: number;
  costUsd: number;
  costMicros: number;
  estimatedRequests: number;
}

export type UsageLine = Partial<Record<Group, string>> & UsageFigures;

export interface UsageReport {
  from: string;
  to: string;
  user: string | null;
  groupBy: Group[];
  data: UsageLine[];
  total: UsageFigures;
}

function figures(c: UsageCounts): UsageFigures {
  return {
    requests: c.requests,
    errors: c.errors,
    inputTokens: c.input,
    cachedInputTokens: c.cachedInput,
    outputTokens: c.output,
    totalTokens: c.input + c.output,
    costUsd: c.micros / 1_000_000,
    costMicros: c.micros,
    estimatedRequests: c.estimated,
  };
}

/** Days in order; within a day (or without one), the most expensive first, then by name. */
function compare(groups: readonly Group[]) {
  return (a: { key: Partial<Record<Group, string>>; counts: UsageCounts }, b: typeof a): number => {
    if (groups.includes('day') && a.key.day !== b.key.day) return (a.key.day ?? '') < (b.key.day ?? '') ? -1 : 1;
    if (a.counts.micros !== b.counts.micros) return b.counts.micros - a.counts.micros;
    if (a.counts.requests !== b.counts.requests) return b.counts.requests - a.counts.requests;
    const an = JSON.stringify(a.key);
    const bn = JSON.stringify(b.key);
    return an < bn ? -1 : an > bn ? 1 : 0;
  };
}

export function buildReport(rows: readonly UsageRow[], span: { from: string; to: string; user?: string; groupBy: Group[] }): UsageReport {
  const groups = new Map<string, { key: Partial<Record<Group, string>>; counts: UsageCounts }>();
  const total = emptyCounts();
  for (const row of rows) {
    const key: Partial<Record<Group, string>> = {};
    for (const g of span.groupBy) key[g] = g === 'day' ? row.day : g === 'model' ? row.model : row.user;
    const id = JSON.stringify(key);
    let group = groups.get(id);
    if (!group) {
      group = { key, counts: emptyCounts() };
      groups.set(id, group);
    }
    addCounts(group.counts, row);
    addCounts(total, row);
  }
  const data = [...groups.values()].sort(compare(span.groupBy)).map((g) => ({ ...g.key, ...figures(g.counts) }));
  return { from: span.from, to: span.to, user: span.user ?? null, groupBy: span.groupBy, data, total: figures(total) };
}
