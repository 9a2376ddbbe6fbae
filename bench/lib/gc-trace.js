// What `node --trace-gc` printed, summed: how bench/gc-starts.js tells a slow start from a fast one.

// "[pid:0x…]   12025 ms: Scavenge 193.3 (216.2) -> 185.8 (219.4) MB, 13.31 / 0.01 ms ..."
const GC_LINE = /: (Scavenge|Mark-Compact|Mark-sweep)[^\d]*([\d.]+) \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB, ([\d.]+) /;

/** A start is slow when young collections move more than this share of what was made to the old
 * generation: a few percent in a fast start of keyrelay, a quarter and more in a slow one. */
export const SLOW_PROMOTED = 0.1;

/** The collections of a --trace-gc text: young ones, the share they promoted, old ones, milliseconds. */
export function gcSummary(text) {
  let young = 0;
  let old = 0;
  let ms = 0;
  let made = 0;
  let freed = 0;
  let lastAfter;
  for (const line of text.split('\n')) {
    const m = GC_LINE.exec(line);
    if (!m) continue;
    const [before, after, took] = [Number(m[2]), Number(m[3]), Number(m[4])];
    ms += took;
    if (m[1] === 'Scavenge') {
      young += 1;
      // What was made since the collection before: the heap now less what that one left.
      if (lastAfter !== undefined && before > lastAfter) {
        made += before - lastAfter;
        freed += before - after;
      }
    } else {
      old += 1;
    }
    lastAfter = after;
  }
  const promoted = made > 0 ? Math.max(0, made - freed) / made : 0;
  return { young, old, ms, promoted, slow: promoted > SLOW_PROMOTED };
}
