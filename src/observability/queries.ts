// The query strings of GET /admin/requests and GET /admin/usage, turned into what the stores take,
// or a 400 naming the parameter.
import { GatewayError } from '../errors.js';
import { parseIsoTime } from '../iso-time.js';
import { type RequestFilter, beforeId } from './request-log.js';
import { GROUPS, type Group } from './usage-report.js';
import { RETENTION_DAYS, daysBetween, utcDay } from './usage.js';

export interface RequestsQuery {
  user?: string;
  status?: string;
  outcome?: string;
  model?: string;
  from?: string;
  to?: string;
  limit?: string;
  before?: string;
}

export const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

export interface UsageQuery {
  user?: string;
  from?: string;
  to?: string;
  groupBy?: string;
}

const invalid = (param: string, message: string): GatewayError => new GatewayError('invalid_request', { param, message });

/** A time given as an ISO 8601 date-time, or a day (`2030-01-31`: its start, UTC). */
function timeParam(value: string | undefined, param: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseIsoTime(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (ms === undefined) throw invalid(param, `\`${param}\` must be an ISO 8601 time (2030-01-31T12:00:00Z) or a day (2030-01-31).`);
  return ms;
}

export function requestFilter(query: RequestsQuery): RequestFilter {
  const filter: RequestFilter = { user: query.user, outcome: query.outcome, model: query.model };
  filter.from = timeParam(query.from, 'from');
  filter.to = timeParam(query.to, 'to');
  if (filter.from !== undefined && filter.to !== undefined && filter.from > filter.to) throw invalid('from', '`from` is after `to`.');
  if (query.status !== undefined) {
    const exact = /^[1-5][0-9]{2}$/.exec(query.status);
    const range = /^([1-5])xx$/i.exec(query.status);
    if (exact) filter.status = { exact: Number(query.status) };
    else if (range) filter.status = { class: Number(range[1]) };
    else throw invalid('status', '`status` must be a status code like 429 or a class like 5xx.');
  }
  return filter;
}

/** `limit`, written in digits only (not `1e2`, ` 5` or `5.0`, which a Number() would take). */
export function pageSize(query: RequestsQuery): number {
  if (query.limit === undefined) return DEFAULT_PAGE;
  const size = /^[0-9]{1,4}$/.test(query.limit) ? Number(query.limit) : 0;
  if (size < 1 || size > MAX_PAGE) throw invalid('limit', `\`limit\` must be a whole number from 1 to ${MAX_PAGE}.`);
  return size;
}

export function before(query: RequestsQuery): string | undefined {
  if (query.before === undefined) return undefined;
  const id = beforeId(query.before);
  if (id === undefined) throw invalid('before', '`before` must be the `next` of a previous page or an ISO 8601 time after 1970-01-01T00:00:00Z.');
  return id;
}

const DAY_MS = 86_400_000;

/** The start (ms) of a UTC day given as `YYYY-MM-DD` or as a full ISO 8601 time (iso-time.ts). */
function dayStart(value: string, param: string): number {
  const ms = parseIsoTime(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (ms === undefined) throw invalid(param, `\`${param}\` must be a day (2030-01-31) or an ISO 8601 time (2030-01-31T12:00:00Z).`);
  return ms - (((ms % DAY_MS) + DAY_MS) % DAY_MS);
}

export interface UsageSpan {
  from: string;
  to: string;
  days: string[];
  user?: string;
  groupBy: Group[];
}

/** Defaults: this UTC month so far, grouped by day. */
export function usageSpan(query: UsageQuery, now: number = Date.now()): UsageSpan {
  const today = utcDay(now);
  const fromMs = query.from === undefined ? Date.parse(`${today.slice(0, 7)}-01T00:00:00Z`) : dayStart(query.from, 'from');
  const toMs = query.to === undefined ? Date.parse(`${today}T00:00:00Z`) : dayStart(query.to, 'to');
  if (fromMs > toMs) throw invalid('from', '`from` is after `to`.');
  // Counted before the days are listed: listing ten thousand years of days took seconds.
  if ((toMs - fromMs) / DAY_MS + 1 > RETENTION_DAYS) throw invalid('from', `At most ${RETENTION_DAYS} days at once: usage is kept that long.`);
  const from = utcDay(fromMs);
  const to = utcDay(toMs);
  const days = daysBetween(from, to);
  const groupBy = (query.groupBy ?? 'day').split(',').map((g) => g.trim());
  for (const g of groupBy) {
    if (!(GROUPS as readonly string[]).includes(g)) throw invalid('groupBy', '`groupBy` takes day, model or user (or several, comma-separated).');
  }
  return { from, to, days, user: query.user, groupBy: [...new Set(groupBy)] as Group[] };
}
