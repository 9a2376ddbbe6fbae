// GET /admin/usage/series: usage over the last hour (60 minutes), day (24 hours) or month (30
// days) as series for a chart, from the counters kept per bucket, user, model and pool key
// (usage.ts), never from the request log. The most expensive series are named, at most
// MAX_SERIES of them; the rest are summed into one named OTHER.
import { GatewayError } from '../errors.js';
import { type SeriesRow, type Step, hourLabel, minuteLabel, utcDay } from './usage.js';

export const RANGES = { hour: { step: 'minute', count: 60 }, day: { step: 'hour', count: 24 }, month: { step: 'day', count: 30 } } as const;
export type Range = keyof typeof RANGES;
export const BY = ['user', 'model', 'poolKey'] as const;
export type By = (typeof BY)[number];

export const MAX_SERIES = 8;
export const TOP = 10;
export const OTHER = '(other)';

const STEP_MS: Record<Step, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const LABEL: Record<Step, (ms: number) => string> = { minute: minuteLabel, hour: hourLabel, day: utcDay };
const START_SUFFIX: Record<Step, string> = { minute: ':00.000Z', hour: ':00:00.000Z', day: 'T00:00:00.000Z' };

export interface SeriesSpan {
  range: Range;
  step: Step;
  by: By;
  user?: string;
  /** Bucket labels, oldest first; the last is the bucket of now. */
  buckets: string[];
}

export interface SeriesQuery {
  range?: string;
  by?: string;
  user?: string;
}

const invalid = (param: string, message: string): GatewayError => new GatewayError('invalid_request', { param, message });

export function seriesSpan(query: SeriesQuery, now: number = Date.now()): SeriesSpan {
  const range = query.range ?? 'day';
  if (!Object.hasOwn(RANGES, range)) throw invalid('range', '`range` takes hour, day or month.');
  const by = query.by ?? 'model';
  if (!(BY as readonly string[]).includes(by)) throw invalid('by', '`by` takes user, model or poolKey.');
  const { step, count } = RANGES[range as Range];
  const buckets: string[] = [];
  for (let i = count - 1; i >= 0; i--) buckets.push(LABEL[step](now - i * STEP_MS[step]));
  return { range: range as Range, step, by: by as By, user: query.user, buckets };
}

interface Figures {
  requests: number;
  errors: number;
  input: number;
  output: number;
  micros: number;
}

const empty = (): Figures => ({ requests: 0, errors: 0, input: 0, output: 0, micros: 0 });

function add(into: Figures, row: Figures): void {
  into.requests += row.requests;
  into.errors += row.errors;
  into.input += row.input;
  into.output += row.output;
  into.micros += row.micros;
}

/** The most expensive first, then the most requests, then the most tokens, then by name. */
function rank(a: [string, Figures], b: [string, Figures]): number {
  const [an, af] = a;
  const [bn, bf] = b;
  return bf.micros - af.micros || bf.requests - af.requests || bf.input + bf.output - (af.input + af.output) || (an < bn ? -1 : an > bn ? 1 : 0);
}

function top(rows: readonly SeriesRow[], name: (row: SeriesRow) => string) {
  const totals = new Map<string, Figures>();
  for (const row of rows) {
    const key = name(row);
    let figures = totals.get(key);
    if (!figures) totals.set(key, (figures = empty()));
    add(figures, row);
  }
  return [...totals]
    .sort(rank)
    .slice(0, TOP)
    .map(([n, f]) => ({ name: n, requests: f.requests, totalTokens: f.input + f.output, costMicros: f.micros }));
}

export function buildSeries(rows: readonly SeriesRow[], span: SeriesSpan) {
  const index = new Map(span.buckets.map((b, i) => [b, i]));
  const nameOf = (row: SeriesRow): string => (span.by === 'user' ? row.user : span.by === 'model' ? row.model : row.poolKey);

  const totals = new Map<string, Figures>();
  const total = empty();
  for (const row of rows) {
    if (!index.has(row.bucket)) continue;
    const name = nameOf(row);
    let figures = totals.get(name);
    if (!figures) totals.set(name, (figures = empty()));
    add(figures, row);
    add(total, row);
  }
  const ranked = [...totals].sort(rank);
  const named = new Set(ranked.slice(0, MAX_SERIES).map(([n]) => n));
  const zeros = (): number[] => new Array<number>(span.buckets.length).fill(0);
  const series = new Map<string, { name: string; requests: number[]; errors: number[]; tokens: number[]; costMicros: number[] }>();
  for (const [name] of ranked) {
    const shown = named.has(name) ? name : OTHER;
    if (!series.has(shown)) series.set(shown, { name: shown, requests: zeros(), errors: zeros(), tokens: zeros(), costMicros: zeros() });
  }
  for (const row of rows) {
    const i = index.get(row.bucket);
    if (i === undefined) continue;
    const name = nameOf(row);
    const s = series.get(named.has(name) ? name : OTHER);
    if (!s) continue;
    s.requests[i] = (s.requests[i] ?? 0) + row.requests;
    s.errors[i] = (s.errors[i] ?? 0) + row.errors;
    s.tokens[i] = (s.tokens[i] ?? 0) + row.input + row.output;
    s.costMicros[i] = (s.costMicros[i] ?? 0) + row.micros;
  }
  const inRange = rows.filter((row) => index.has(row.bucket));
  return {
    range: span.range,
    step: span.step,
    user: span.user ?? null,
    by: span.by,
    buckets: span.buckets.map((b) => `${b}${START_SUFFIX[span.step]}`),
    series: [...series.values()],
    total: {
      requests: total.requests,
      errors: total.errors,
      inputTokens: total.input,
      outputTokens: total.output,
      totalTokens: total.input + total.output,
      costMicros: total.micros,
      costUsd: total.micros / 1_000_000,
    },
    top: { users: top(inRange, (r) => r.user), models: top(inRange, (r) => r.model) },
  };
}
