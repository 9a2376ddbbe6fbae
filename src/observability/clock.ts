// ISO 8601 times of the current millisecond, made once per millisecond: every request needs its
// start time and its log line's time, and at any load worth counting several share a millisecond.
let lastMs = -1;
let lastIso = '';

/** `new Date(ms).toISOString()`, remembered for the last `ms` asked. */
export function isoAt(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}
