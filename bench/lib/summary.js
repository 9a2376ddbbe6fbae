// From the rounds to the figures: medians per target, and per-round paired comparisons (a target
// against direct or bare measured in the same round), whose median is what the goals are held to.

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export const METRICS = {
  jsonRps: { label: 'JSON chat, req/s', unit: 'req/s', digits: 0 },
  streamRps: { label: 'streamed chat (20 events), req/s', unit: 'req/s', digits: 0 },
  streamPlainRps: { label: 'streamed chat without include_usage, req/s', unit: 'req/s', digits: 0 },
  usersRps: { label: 'JSON chat over 100 users, req/s', unit: 'req/s', digits: 0 },
  seqP50Ms: { label: 'latency at concurrency 1, p50, ms', unit: 'ms', digits: 3 },
  seqP99Ms: { label: 'latency at concurrency 1, p99, ms', unit: 'ms', digits: 3 },
  ttfbP50Ms: { label: 'first byte of a stream, p50, ms', unit: 'ms', digits: 3 },
  ttfbP99Ms: { label: 'first byte of a stream, p99, ms', unit: 'ms', digits: 3 },
  rssPerStreamKB: { label: 'resident memory per open stream, KB', unit: 'KB', digits: 1 },
  cpuPerJsonMs: { label: 'CPU per JSON request, ms', unit: 'ms', digits: 3 },
  cpuPerStreamMs: { label: 'CPU per streamed request, ms', unit: 'ms', digits: 3 },
  cpuPerStreamPlainMs: { label: 'CPU per streamed request without include_usage, ms', unit: 'ms', digits: 3 },
  cpuWholeRunMs: { label: 'CPU per request over the whole run, ms', unit: 'ms', digits: 3 },
};

const ADDED = ['seqP50Ms', 'seqP99Ms', 'ttfbP50Ms', 'ttfbP99Ms'];
const RATIOS = ['jsonRps', 'streamRps', 'streamPlainRps', 'usersRps', 'rssPerStreamKB', 'cpuPerJsonMs', 'cpuPerStreamMs', 'cpuPerStreamPlainMs'];

/** The targets, held against the keyrelay rows. */
export const GOALS = [
  { id: 'json-rps', text: 'JSON req/s, share of bare', metric: 'jsonRps', kind: 'vsBare', op: '>=', limit: 0.8 },
  { id: 'stream-rps', text: 'stream req/s, share of bare', metric: 'streamRps', kind: 'vsBare', op: '>=', limit: 0.8 },
  { id: 'latency-p50', text: 'added latency p50 over direct, ms', metric: 'seqP50Ms', kind: 'addedOverDirect', op: '<=', limit: 0.8 },
  { id: 'latency-p99', text: 'added latency p99 over direct, ms', metric: 'seqP99Ms', kind: 'addedOverDirect', op: '<=', limit: 2 },
  { id: 'ttfb-p50', text: 'added first byte p50 over direct, ms', metric: 'ttfbP50Ms', kind: 'addedOverDirect', op: '<=', limit: 1 },
  { id: 'rss', text: 'memory per open stream, times bare', metric: 'rssPerStreamKB', kind: 'vsBare', op: '<=', limit: 1.25 },
  { id: 'cpu-json', text: 'CPU per JSON request, times bare', metric: 'cpuPerJsonMs', kind: 'vsBare', op: '<=', limit: 1.3 },
  { id: 'cpu-stream', text: 'CPU per streamed request, times bare', metric: 'cpuPerStreamMs', kind: 'vsBare', op: '<=', limit: 1.3 },
];
export const GOAL_TARGETS = ['keyrelay-memory', 'keyrelay-redis', 'baseline-memory', 'baseline-redis'];

function paired(row, reference, metrics, combine) {
  const out = {};
  if (!reference || reference.status !== 'ok' || row === reference) return out;
  for (const m of metrics) {
    const values = row.rounds.map((r, i) => combine(r.metrics[m], reference.rounds[i]?.metrics[m]));
    out[m] = median(values);
  }
  return out;
}

/** Adds metrics, addedOverDirect and vsBare to every measured row; returns the goals and the workers' comparison. */
export function summarise(rows) {
  const byId = Object.fromEntries(rows.map((r) => [r.target, r]));
  for (const row of rows) {
    if (row.status !== 'ok') continue;
    row.metrics = Object.fromEntries(Object.keys(METRICS).map((m) => [m, median(row.rounds.map((r) => r.metrics[m]))]));
    row.addedOverDirect = paired(row, byId.direct, ADDED, (a, b) => a - b);
    // A ratio of a non-positive figure (memory that fell during a measurement) means nothing.
    row.vsBare = paired(row, byId.bare, RATIOS, (a, b) => (a > 0 && b > 0 ? a / b : Number.NaN));
  }
  // One figure per target for the whole run (run.js: CPU from before the first warm-up request to
  // after the last round, over every request the load generator sent it), not a median of rounds.
  const whole = (row) => (row?.status === 'ok' && row.whole?.requests > 0 ? row.whole.cpuMs / row.whole.requests : Number.NaN);
  for (const row of rows) {
    if (row.status !== 'ok') continue;
    row.metrics.cpuWholeRunMs = whole(row);
    if (row !== byId.bare) row.vsBare.cpuWholeRunMs = whole(row) / whole(byId.bare);
  }
  const goals = GOALS.map((goal) => ({
    ...goal,
    results: Object.fromEntries(
      GOAL_TARGETS.filter((id) => byId[id]?.status === 'ok').map((id) => {
        const value = byId[id][goal.kind][goal.metric];
        const met = Number.isFinite(value) && (goal.op === '>=' ? value >= goal.limit : value <= goal.limit);
        return [id, { value, met }];
      }),
    ),
  }));
  // Two workers against one on the same store.
  const two = byId['keyrelay-workers'];
  const baseline = two?.store === 'redis' ? 'keyrelay-redis' : 'keyrelay-memory';
  const one = byId[baseline];
  const workers = one?.status === 'ok' && two?.status === 'ok'
    ? { baseline, ...paired(two, one, ['jsonRps', 'streamRps', 'cpuPerJsonMs'], (a, b) => a / b) }
    : undefined;
  return { goals, workers };
}
