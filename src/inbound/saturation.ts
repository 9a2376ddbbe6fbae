// Whether the process is saturated, for `/readyz` (docs/connections.md, "Readiness under load"). A
// process at one of its inbound limits refuses the next request or connection with a 503: a load
// balancer that reads readiness should send that traffic to another process before it is refused.
//
// A limit is reached when the next request (or connection) would be refused; it is left only once
// the reading is under RELEASE_RATIO of the limit, so that a process hovering at its limit does
// not flap in and out of the balancer at every probe. The state moves only when a probe reads it:
// readiness is what the probes saw, and nothing runs between them.

/** The limits readiness reports, named as the overload refusals' `limit` label in /metrics. */
export type SaturationLimit = 'connections' | 'requests' | 'event_loop';

export interface Reading {
  limit: SaturationLimit;
  /** Connections open, requests in flight, or the event loop's delay at its last sample (ms). */
  current: number;
  max: number;
  /** Whether the next request or connection would be refused for this limit now. */
  reached: boolean;
}

/** A saturated process stays out until every reading is under this share of its limit. */
export const RELEASE_RATIO = 0.9;

export interface Saturation {
  /** The limits reached now, hysteresis included; empty when the process takes traffic. */
  check(): Reading[];
}

export function createSaturation(read: () => Reading[]): Saturation {
  const held = new Set<SaturationLimit>();
  return {
    check() {
      const saturated: Reading[] = [];
      for (const reading of read()) {
        if (reading.reached) held.add(reading.limit);
        else if (reading.current < reading.max * RELEASE_RATIO) held.delete(reading.limit);
        if (held.has(reading.limit)) saturated.push(reading);
      }
      return saturated;
    },
  };
}
