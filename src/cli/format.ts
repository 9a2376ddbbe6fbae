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

/**
 * Integer micro-dollars as US dollars with all six decimals, computed on integers so that the
 * figure is the ledger's own (README, "Users, limits and quotas": money is kept in integer micro-dollars).
 */
export function dollars(micros: number): string {
  if (!Number.isSafeInteger(micros)) return (micros / 1_000_000).toFixed(6);
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  return `${sign}${Math.trunc(abs / 1_000_000)}.${String(abs % 1_000_000).padStart(6, '0')}`;
}

/** Prints the API's answer: as JSON with --json, else as `render` words it. Resolves exit code 0. */
export function answer<T>(ctx: Context, value: T, render: (value: T) => string): number {
  ctx.out(ctx.json ? json(value) : render(value));
  return 0;
}
