// The in-flight limit that follows the CPU (src/inbound/busy-limit.ts), one window at a time: two
// busy windows in a row before it moves, then under what is in flight; a floor; growth by the idle
// time while refusals go on, and back to the maximum once none do.
import { describe, expect, it } from 'vitest';
import { type BusyState, nextWindow } from '../src/inbound/busy-limit.js';

const MAX = 5000;
const TARGET = 0.9;
const start: BusyState = { limit: MAX, busy: 0, refusals: false };

/** The state after windows of these utilisations, with `inFlight` requests and `refusals` in each. */
function run(utilizations: number[], inFlight: number, refusals = false, from: BusyState = start): BusyState {
  let state = from;
  for (const u of utilizations) state = nextWindow({ ...state, refusals }, u, inFlight, MAX, TARGET);
  return state;
}

describe('nextWindow', () => {
  it('leaves the limit alone for one busy window: a burst the loop clears in a window is served', () => {
    expect(run([1], 200).limit).toBe(MAX);
    expect(run([1, 0.5, 1, 0.5], 200).limit).toBe(MAX);
  });

  it('lowers the limit under what is in flight after two busy windows in a row, once per two', () => {
    const two = run([1, 1], 200);
    expect(two.limit).toBe(180);
    expect(run([1, 1, 1], 200).limit).toBe(180);
    expect(run([1, 1, 1, 1], 150).limit).toBe(135);
  });

  it('never lowers it under the floor of 4, and never raises it while busy', () => {
    expect(run([1, 1, 1, 1, 1, 1], 5).limit).toBe(4);
    // A maximum under the floor stays the most it can be.
    expect(nextWindow({ limit: 2, busy: 1, refusals: false }, 1, 2, 2, TARGET).limit).toBe(2);
    // Fewer in flight than the limit: the limit goes down to them, not up.
    expect(run([1, 1], 100, false, { limit: 50, busy: 0, refusals: false }).limit).toBe(50);
  });

  it('grows by the idle time while refusals go on, at most half again per window', () => {
    const held: BusyState = { limit: 100, busy: 0, refusals: false };
    expect(run([0.6], 100, true, held).limit).toBe(150);
    expect(run([0.85], 100, true, held).limit).toBe(105);
    // At the target exactly it still probes one more.
    expect(run([0.9], 100, true, held).limit).toBe(101);
  });

  it('goes back to the maximum once nothing is refused, and never past it', () => {
    let state: BusyState = { limit: 4, busy: 0, refusals: false };
    let windows = 0;
    while (state.limit < MAX) {
      state = nextWindow(state, 0.2, 0, MAX, TARGET);
      windows += 1;
    }
    expect(state.limit).toBe(MAX);
    expect(windows).toBeLessThanOrEqual(20);
    expect(run([0.1, 0.1], 0, true).limit).toBe(MAX);
  });

  it('leaves it alone while no more than 4 are in flight: a start or one huge body keeps the loop busy, not the requests', () => {
    expect(run([1, 1, 1, 1, 1, 1], 0).limit).toBe(MAX);
    expect(run([1, 1, 1, 1], 4).limit).toBe(MAX);
  });

  it('forgets the refusals of a window once it has ended', () => {
    expect(nextWindow({ limit: 100, busy: 0, refusals: true }, 0.5, 10, MAX, TARGET).refusals).toBe(false);
  });
});
