// keyrelay usage: GET /admin/usage as a table, JSON (--json) or CSV (--csv) for scripts.
import type { Group, UsageFigures, UsageLine, UsageReport } from '../observability/usage-report.js';
import { type Command, UsageError } from './command.js';
import { dollars, table } from './format.js';
import { text } from './options.js';

const GROUP_TITLES: Record<Group, string> = { day: 'DAY', model: 'MODEL', user: 'USER' };

const NUMBER_COLUMNS: ReadonlyArray<readonly [string, string, (f: UsageFigures) => string]> = [
  ['REQUESTS', 'requests', (f) => String(f.requests)],
  ['ERRORS', 'errors', (f) => String(f.errors)],
  ['INPUT', 'input_tokens', (f) => String(f.inputTokens)],
  ['CACHED', 'cached_input_tokens', (f) => String(f.cachedInputTokens)],
  ['OUTPUT', 'output_tokens', (f) => String(f.outputTokens)],
  ['TOKENS', 'total_tokens', (f) => String(f.totalTokens)],
  ['COST USD', 'cost_usd', (f) => dollars(f.costMicros)],
];

function day(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new UsageError(`--${name}: expected a day like 2030-01-31, got "${value}"`);
  }
  return value;
}

function groupBy(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const groups = value.split(',').map((g) => g.trim());
  for (const g of groups) {
    if (!(g in GROUP_TITLES)) throw new UsageError(`--group-by: expected day, model or user (or several, comma-separated), got "${value}"`);
  }
  return groups.join(',');
}

/** Numbers right-aligned: each cell padded to its column's width before the table lays it out. */
function rightAligned(rows: string[][], from: number): string[][] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((row) => row.map((cell, i) => (i >= from ? cell.padStart(widths[i] ?? 0) : cell)));
}

/** What the two request columns count, under the table: ERRORS is not only the upstream's. */
const COUNTED = 'REQUESTS: relayed, and refused by the gateway for the user. ERRORS: refused by the gateway (400, 403, 429, ...) or answered with an error by the upstream.\n';

function scope(report: UsageReport): string {
  const who = report.user === null ? 'all users' : `user ${report.user}`;
  return `Usage from ${report.from} to ${report.to} (UTC), ${who}, by ${report.groupBy.join(' and ')}`;
}

export function usageTable(report: UsageReport): string {
  if (report.data.length === 0) return `${scope(report)}: no requests.\n`;
  const groups = report.groupBy;
  const header = [...groups.map((g) => GROUP_TITLES[g]), ...NUMBER_COLUMNS.map(([title]) => title)];
  const line = (keys: string[], f: UsageFigures) => [...keys, ...NUMBER_COLUMNS.map(([, , show]) => show(f))];
  const rows = report.data.map((d: UsageLine) => line(groups.map((g) => d[g] ?? '-'), d));
  const total = line(groups.map((_, i) => (i === 0 ? 'TOTAL' : '')), report.total);
  const [head, ...body] = rightAligned([header, ...rows, total], groups.length);
  return `${scope(report)}:\n\n${table(head ?? header, body)}\n${COUNTED}`;
}

// What a spreadsheet may run as a formula when a cell begins with it (OWASP, CSV injection):
// = + - @, a tab or carriage return, and the full-width forms some spreadsheets read the same.
const FORMULA_START = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;
// Quoted: RFC 4180's comma, quote and line breaks, and the semicolon that spreadsheets in
// locales with a decimal comma split on.
const NEEDS_QUOTES = /[",;\r\n]/;

/** A CSV cell: quoted when needed; text that a spreadsheet would run as a formula is defused. */
function cell(value: string, isText: boolean): string {
  const safe = isText && FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function usageCsv(report: UsageReport): string {
  const groups = report.groupBy;
  const header = [...groups, ...NUMBER_COLUMNS.map(([, name]) => name)].join(',');
  const rows = report.data.map((d) =>
    [...groups.map((g) => cell(d[g] ?? '', true)), ...NUMBER_COLUMNS.map(([, , show]) => cell(show(d), false))].join(','),
  );
  return [header, ...rows].map((r) => `${r}\r\n`).join('');
}

export const usageCommands: readonly Command[] = [
  {
    path: ['usage'],
    args: [],
    options: {
      from: { type: 'string', value: 'DAY', help: 'first UTC day, e.g. 2030-01-01 (default: the first of this month)' },
      to: { type: 'string', value: 'DAY', help: 'last UTC day, included (default: today)' },
      'group-by': { type: 'string', value: 'day|model|user', help: 'rows per day, model or user; several comma-separated (default: day)' },
      user: { type: 'string', value: 'ID', help: "one user's usage only" },
      csv: { type: 'boolean', help: 'print CSV (RFC 4180) instead of a table' },
    },
    summary: 'requests, tokens and cost by day, model or user',
    async run(ctx, _args, options) {
      if (ctx.json && options.csv === true) throw new UsageError('--json and --csv: choose one');
      const params = new URLSearchParams();
      const set = (name: string, value: string | undefined) => value !== undefined && params.set(name, value);
      set('from', day(text(options, 'from'), 'from'));
      set('to', day(text(options, 'to'), 'to'));
      set('groupBy', groupBy(text(options, 'group-by')));
      set('user', text(options, 'user'));
      const query = params.size > 0 ? `?${params}` : '';
      const report = await ctx.admin().get<UsageReport>(`/usage${query}`);
      if (options.csv === true) {
        ctx.out(usageCsv(report));
        return 0;
      }
      ctx.out(ctx.json ? `${JSON.stringify(report, null, 2)}\n` : usageTable(report));
      return 0;
    },
  },
];
