// The soak's verdict on a series of samples: does a metric grow after the warm-up?

/** Least-squares slope of y over x (per unit of x); 0 for fewer than two points. */
export function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/**
 * How fast the median of the last third of the points rose above the median of the first third,
 * per unit of x. A leak raises both this and the slope; one slow sample near the end of a run on a
 * busy machine tilts the least-squares line but not the medians.
 */
export function thirdsRise(points) {
  const third = Math.floor(points.length / 3);
  if (third < 1) return 0;
  const first = points.slice(0, third);
  const last = points.slice(-third);
  const gap = median(last.map((p) => p.x)) - median(first.map((p) => p.x));
  return gap <= 0 ? 0 : (median(last.map((p) => p.y)) - median(first.map((p) => p.y))) / gap;
}

/** A metric grows when both its slope and its thirds' rise pass the threshold. */
export function judge(points, threshold) {
  const perMin = slope(points);
  const rise = thirdsRise(points);
  const ys = points.map((p) => p.y);
  return {
    slope: perMin,
    rise,
    threshold,
    grows: perMin > threshold && rise > threshold,
    first: ys[0],
    last: ys.at(-1),
    min: Math.min(...ys),
    max: Math.max(...ys),
  };
}
