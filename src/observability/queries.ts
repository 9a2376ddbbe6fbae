// The query strings of GET /admin/requests and GET /admin/usage, turned into what the stores take,
// or a 400 naming the parameter.
import { GatewayError } from '../errors.js';
import { type RequestFilter, beforeId } from './request-log.js';
import { GROUPS, type Group } from './usage-report.js';
import { RETENTION_DAYS, daysBetween, utcDay } from './usage.js';

export interface RequestsQuery {
  user?: string;
  status?: string;
  outcome?: string;
  limit?: number;
  before?: string;
}

export interface UsageQuery {
  user?: string;
  from?: string;
  to?: string;
  groupBy?: string;
}

const invalid = (param: string, message: string): GatewayError => new GatewayError('invalid_request', { param, message });

export function requestFilter(query: RequestsQuery): RequestFilter {
  const filter: RequestFilter = { user: query.user, outcome: query.outcome };
  if (query.status !== undefined) {
    const exact = /^[1-5][0-9]{2}$/.exec(query.status);
    const range = /^([1-5])xx$/i.exec(query.status);
    if (exact) filter.status = { exact: Number(query.status) };
    else if (range) filter.status = { class: Number(range[1]) };
    else throw invalid('status', '`status` must be a status code like 429 or a class like 5xx.');
  }
  return filter;
}

export function before(query: RequestsQuery): string | undefined {
  if (query.before === undefined) return undefined;
  const id = beforeId(query.before);
  if (id === undefined) throw invalid('before', '`before` must be the `next` of a previous page or an ISO 8601 time.');
  return id;
}

/** A UTC day from `YYYY-MM-DD` or a full ISO 8601 time. */
function day(value: string, param: string): string {
  const ms = Date.parse(/^[0-9]{4}-[0-9]{2}-[0-9]{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(value) || Number.isNaN(ms)) {
    throw invalid(param, `\`${param}\` must be a day (2030-01-31) or an ISO 8601 time.`);
  }
  return utcDay(ms);
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
  const from = query.from === undefined ? `${today.slice(0, 7)}-01` : day(query.from, 'from');
  const to = query.to === undefined ? today : day(query.to, 'to');
  if (from > to) throw invalid('from', '`from` is after `to`.');
  const days = daysBetween(from, to);
  if (days.length > RETENTION_DAYS) throw invalid('from', `At most ${RETENTION_DAYS} days at once: usage is kept that long.`);
  const groupBy = (query.groupBy ?? 'day').split(',').map((g) => g.trim());
  for (const g of groupBy) {
    if (!(GROUPS as readonly string[]).includes(g)) throw invalid('groupBy', '`groupBy` takes day, model or user (or several, comma-separated).');
  }
  return { from, to, days, user: query.user, groupBy: [...new Set(groupBy)] as Group[] };
}
