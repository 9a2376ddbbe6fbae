// Text output of the keyrelay tool: aligned tables, field lists and JSON. Values come from the
// server, so control characters are shown escaped rather than sent to the terminal.
import type { Context } from './command.js';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

export function printable(value: string): string {
  return value.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cells = [header, ...rows].map((row) => row.map(printable));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** `name  value` lines, names aligned: one record shown whole. */
export function fields(pairs: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...pairs.map(([name]) => name.length));
  return pairs.map(([name, value]) => `${name.padEnd(width)}  ${printable(value)}`.trimEnd() + '\n').join('');
}

/** The API's JSON, indented. A `digest` field is dropped wherever it appears: never print one. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, (key, v: unknown) => (key === 'digest' ? undefined : v), 2)}\n`;
}

export function orDash(value: string | undefined | null): string {
  return value === undefined || value === null || value === '' ? '-' : value;
}

/** Nested objects as `a.b=1 c=2`, for the usage counters whatever their shape. */
export function flatten(value: unknown, prefix = ''): Array<[string, string]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return [[prefix, Array.isArray(value) ? value.join(', ') : String(value)]];
  }
  return Object.entries(value).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

/** Prints the API's answer: as JSON with --json, else as `render` words it. Resolves exit code 0. */
export function answer<T>(ctx: Context, value: T, render: (value: T) => string): number {
  ctx.out(ctx.json ? json(value) : render(value));
  return 0;
}
