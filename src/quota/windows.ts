// The quota windows: UTC calendar days and months (CONTRACT.md: "Days and months are UTC").
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

export function dayWindow(now: number): Window {
  const d = new Date(now);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return {
    id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
    start,
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1),
  };
}

export function monthWindow(now: number): Window {
  const d = new Date(now);
  return {
    id: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`,
    start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1),
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  };
}

/** The end of the window an id names (a reservation remembers ids, and settles into them). */
export function windowEnd(id: string): number {
  const [y = 0, m = 1, d] = id.split('-').map(Number);
  return d === undefined ? Date.UTC(y, m, 1) : Date.UTC(y, m - 1, d + 1);
}
