// The quota windows: UTC calendar days and months (README, "Users, limits and quotas": "Days
// and months are UTC").
// Every backend derives them from the same `now`, so memory and Redis agree on the boundaries.

export interface Window {
  /** `2026-01-15` for a day, `2026-01` for a month. */
  id: string;
  /** Epoch ms of the window's first instant. */
  start: number;
  /** Epoch ms of the next window's first instant. */
  end: number;
}

/** Counters outlive their window by this much, so that a request admitted just before midnight
 * still finds its window's counters when it settles just after. */
export const WINDOW_GRACE_MS = 24 * 60 * 60 * 1000;

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

// Every admission asks for the current day and month: the last answer holds until its window ends.
let lastDay: Window | undefined;
let lastMonth: Window | undefined;

export function dayWindow(now: number): Window {
  if (lastDay !== undefined && now >= lastDay.start && now < lastDay.end) return lastDay;
  const d = new Date(now);
  lastDay = Object.freeze({
    id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
    start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()),
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1),
  });
  return lastDay;
}

export function monthWindow(now: number): Window {
  if (lastMonth !== undefined && now >= lastMonth.start && now < lastMonth.end) return lastMonth;
  const d = new Date(now);
  lastMonth = Object.freeze({
    id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`,
    start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1),
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  });
  return lastMonth;
}

/** The end of the window an id names (a reservation remembers ids, and settles into them). */
export function windowEnd(id: string): number {
  if (id === lastDay?.id) return lastDay.end;
  if (id === lastMonth?.id) return lastMonth.end;
  const [y = 0, m = 1, d] = id.split('-').map(Number);
  return d === undefined ? Date.UTC(y, m, 1) : Date.UTC(y, m - 1, d + 1);
}
