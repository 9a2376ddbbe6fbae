// The in-flight limit that follows the CPU (docs/connections.md, "When the CPU runs out"). A fixed
// cap on requests in flight keeps latency only when it is near the rate the process can serve
// times the upstream's latency, and both change. Under more load than the CPU can take, requests
// wait in the socket buffers for the event loop, and every answer slows down together.
//
// With `maxEventLoopUtilization` set, the share of time the event loop was busy is read every
// WINDOW_MS. A window busier than that share lowers the limit under what is in flight now, so the
// admitted requests and the cheap refusals together leave the loop some idle time in every
// window: nothing then waits in a buffer, and the admitted requests keep their normal latency.
// A window under it raises the limit again, by the idle time there was while refusals are still
// happening and by half once none are, back up to `maxRequestsInFlight`. One busy window is not
// enough to refuse: a burst the loop clears within a window or two is served, not refused.
import { performance } from 'node:perf_hooks';

/** How often the event loop's utilisation is read. */
const WINDOW_MS = 100;
/** Busy windows in a row before the limit is lowered: a burst shorter than this is served. */
const BUSY_WINDOWS = 2;
/** Over the target: the limit goes to what is in flight times this. */
const DECREASE = 0.9;
/** Under the target: the limit grows at most by this factor in a window. */
const RECOVER = 1.5;
/** The limit never goes under this, so that a saturated process still serves; nor is it lowered
 * while no more than this many are in flight (so never above `maxRequestsInFlight` either). */
const FLOOR = 4;

/** What the limit knows between windows. */
export interface BusyState {
  limit: number;
  /** Windows in a row busier than the target. */
  busy: number;
  /** Whether a request was refused for the limit in the window just ended. */
  refusals: boolean;
}

/** The state after one window in which the loop was busy `utilization` (0 to 1) of the time. */
export function nextWindow(state: BusyState, utilization: number, inFlight: number, max: number, target: number): BusyState {
  const busy = utilization > target ? state.busy + 1 : 0;
  let limit = state.limit;
  if (busy >= BUSY_WINDOWS) {
    // Lowered once per BUSY_WINDOWS: what the last cut refused shows in the window after it.
    // With no more than FLOOR in flight, what keeps the loop busy is not the number of requests
    // (a start, one huge body, a collection): refusing more would not help it.
    if (busy % BUSY_WINDOWS === 0 && inFlight > FLOOR) limit = Math.max(FLOOR, Math.min(limit, Math.floor(inFlight * DECREASE)));
  } else if (busy === 0) {
    // Refusals mean the limit is what holds the load back: grow it by how much idle time there
    // is, at most RECOVER times. With none it is not holding anything back: back to the maximum soon.
    const grown = state.refusals ? Math.max(limit + 1, Math.floor(limit * Math.min(RECOVER, target / Math.max(utilization, 0.01)))) : Math.ceil(limit * RECOVER);
    limit = Math.min(max, grown);
  }
  return { limit, busy, refusals: false };
}

export interface BusyLimit {
  /** Requests that may be in flight now. */
  current(): number;
  /** Tells the limit a request was refused for it in this window. */
  refused(): void;
  close(): void;
}

export function createBusyLimit(max: number, target: number, inFlight: () => number): BusyLimit {
  if (target === 0) return { current: () => max, refused: () => {}, close: () => {} };
  let state: BusyState = { limit: max, busy: 0, refusals: false };
  let mark = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    state = nextWindow(state, performance.eventLoopUtilization(now, mark).utilization, inFlight(), max, target);
    mark = now;
  }, WINDOW_MS).unref();
  return {
    current: () => state.limit,
    refused: () => {
      state.refusals = true;
    },
    close: () => clearInterval(timer),
  };
}
