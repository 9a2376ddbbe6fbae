// bench/gc-starts.js tells a slow start of keyrelay from a fast one by what `node --trace-gc`
// prints: the share of what was made between young collections that survives them into the old
// generation. Lines as Node 20 prints them, from a fast and a slow start of the same build.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a benchmark module in plain JavaScript, without types
import { gcSummary } from '../bench/lib/gc-trace.js';

const FAST = `[7097:0x3d5d5cc0]    12060 ms: Scavenge 122.5 (143.4) -> 110.2 (143.9) MB, 2.71 / 0.01 ms  (average mu = 0.975, current mu = 0.975) task; 
[7097:0x3d5d5cc0]    12123 ms: Scavenge 122.9 (143.9) -> 110.7 (144.4) MB, 2.55 / 0.01 ms  (average mu = 0.975, current mu = 0.975) task; 
{"level":40,"msg":"a log line between them"}
[7097:0x3d5d5cc0]    12223 ms: Scavenge 124.2 (144.4) -> 111.3 (145.1) MB, 2.74 / 0.01 ms  (average mu = 0.975, current mu = 0.975) task; 
`;

const SLOW = `[7166:0x431fccc0]    12025 ms: Scavenge 193.3 (216.2) -> 185.8 (219.4) MB, 13.31 / 0.01 ms  (average mu = 0.992, current mu = 0.992) task; 
[7166:0x431fccc0]    12086 ms: Scavenge 196.3 (219.4) -> 188.7 (222.7) MB, 12.09 / 0.01 ms  (average mu = 0.992, current mu = 0.992) task; 
[7166:0x431fccc0]    12147 ms: Scavenge 199.6 (222.7) -> 192.0 (225.4) MB, 12.14 / 0.01 ms  (average mu = 0.992, current mu = 0.992) task; 
[7166:0x431fccc0]    12951 ms: Mark-Compact 220.8 (252.9) -> 55.7 (212.2) MB, 10.64 / 0.12 ms  (+ 23.9 ms in 59 steps since start of marking, biggest step 8.2 ms, walltime since start of marking 86 ms) (average mu = 0.990, current mu = 0.987) finalize incremental marking via task; GC in old space requested
[7166:0x431fccc0]    13012 ms: Scavenge 66.2 (212.2) -> 58.7 (212.2) MB, 12.50 / 0.01 ms  (average mu = 0.990, current mu = 0.987) task; 
`;

describe('bench/lib/gc-trace.js', () => {
  it('sums a fast start: few promoted, no old collection', () => {
    const s = gcSummary(FAST);
    expect(s.young).toBe(3);
    expect(s.old).toBe(0);
    expect(s.ms).toBeCloseTo(2.71 + 2.55 + 2.74, 6);
    // Made between: 122.9 - 110.2 and 124.2 - 110.7; freed by those two: 12.2 and 12.9.
    expect(s.promoted).toBeCloseTo((12.7 + 13.5 - (12.2 + 12.9)) / (12.7 + 13.5), 6);
    expect(s.slow).toBe(false);
  });

  it('sums a slow start: a quarter promoted, an old collection, and counts across it', () => {
    const s = gcSummary(SLOW);
    expect(s.young).toBe(4);
    expect(s.old).toBe(1);
    expect(s.ms).toBeCloseTo(13.31 + 12.09 + 12.14 + 10.64 + 12.5, 6);
    // 196.3 - 185.8, 199.6 - 188.7, and after the old collection 66.2 - 55.7; freed 7.6, 7.6, 7.5.
    const made = 10.5 + 10.9 + 10.5;
    expect(s.promoted).toBeCloseTo((made - (7.6 + 7.6 + 7.5)) / made, 6);
    expect(s.slow).toBe(true);
  });

  it('reads nothing from a text without collections', () => {
    expect(gcSummary('keyrelay listening\n')).toEqual({ young: 0, old: 0, ms: 0, promoted: 0, slow: false });
  });
});
