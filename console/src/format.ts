// How numbers, money and times are written: the browser's locale and time zone, thousands
// separators, and the UTC time on hover (title) of every time shown.
const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const money = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 6 });
const local = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export const num = (n: number | null | undefined): string => (typeof n === 'number' && Number.isFinite(n) ? integer.format(n) : '–');
export const dec = (n: number | null | undefined): string => (typeof n === 'number' && Number.isFinite(n) ? decimal.format(n) : '–');
export const usd = (dollars: number | null | undefined): string => (typeof dollars === 'number' && Number.isFinite(dollars) ? money.format(dollars) : '–');
export const usdOfMicros = (micros: number | null | undefined): string => (typeof micros === 'number' ? usd(micros / 1_000_000) : '–');
export const ms = (n: number | null | undefined): string => (typeof n === 'number' && Number.isFinite(n) ? `${decimal.format(n)} ms` : '–');

export function localTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : local.format(date);
}

export function utcTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC')}`;
}
