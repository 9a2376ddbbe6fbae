// Times the admin API takes (`expiresAt`) and the store keeps: ISO 8601 date-times as RFC 3339
// section 5.6 writes them, with a real calendar date and a time zone.
//
// Checked here rather than by JSON Schema's `date-time` format, which allows a leap second
// (`2020-12-31T23:59:60Z`) that JavaScript time cannot hold: Date.parse gives NaN, and an expiry
// that is NaN was never past, so the key never expired. Date.parse alone is no check either: it
// rolls `2021-02-30` over to March 2nd.

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** The time in milliseconds, or undefined when the text is not a real ISO 8601 date-time. */
export function parseIsoTime(text: string): number | undefined {
  const m = DATE_TIME.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const zoneHour = m[7] === undefined ? 0 : Number(m[7]);
  const zoneMinute = m[8] === undefined ? 0 : Number(m[8]);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  // Second 60 (a leap second) has no JavaScript time: refused, not rounded.
  if (hour > 23 || minute > 59 || second > 59 || zoneHour > 23 || zoneMinute > 59) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Whether an expiry has passed. One that cannot be read at all (written by hand into the store)
 * counts as passed: a key whose expiry is unknown is refused, not kept forever. Read as leniently
 * as Date.parse reads, so that a time stored before the API checked them strictly keeps its meaning.
 */
export function isPast(iso: string | undefined, now: number): boolean {
  if (iso === undefined) return false;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) || ms <= now;
}
