// Prometheus metrics (prom-client). Every label value is bounded: routes are reduced to a
// template and capped, models are capped, user ids appear only when an operator enables them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LABEL_CAP = 200;
const OTHER = 'other';
// A segment made only of lower-case letters and underscores is a resource name
// (`chat`, `completions`, `vector_stores`), as is an API version (`v1`); anything else is an id.
const STATIC_SEGMENT = /^(?:[a-z_]+|v[0-9]+)$/;

/** Keeps at most LABEL_CAP distinct values; the rest count as `other`. */
class BoundedLabels {
  private readonly seen = new Set<string>();
  constructor(private readonly cap = LABEL_CAP) {}
  label(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.cap) return OTHER;
    this.seen.add(value);
    return value;
  }
}

/** `/v1/files/file-abc/content` → `/v1/files/{id}/content`. */
export function routeTemplate(path: string): string {
  let out = '';
  for (const segment of path.split('/')) {
    if (segment === '') continue;
    out += `/${STATIC_SEGMENT.test(segment) ? segment : '{id}'}`;
  }
  return out || '/';
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export function createMetrics(options: { userLabels?: boolean } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'keyrelay_' });
  const routes = new BoundedLabels();
  const models = new BoundedLabels();
  const users = new BoundedLabels(1000);

  const requests = new Counter({
    name: 'keyrelay_requests_total',
    help: 'Relayed requests by route template, status and outcome.',
    labelNames: ['route', 'status', 'outcome'] as const,
    registers: [registry],
  });
  const ttfb = new Histogram({
    name: 'keyrelay_time_to_first_byte_seconds',
    help: 'From the request reaching the gateway to the first answer byte sent to the client.',
    labelNames: ['stream'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'keyrelay_request_duration_seconds',
    help: 'Whole request time, to the last answer byte.',
    labelNames: ['stream'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'keyrelay_tokens_total',
    help: 'Tokens charged, by model and kind (input, output).',
    labelNames: options.userLabels ? (['model', 'kind', 'user'] as const) : (['model', 'kind'] as const),
    registers: [registry],
  });
  const cost = new Counter({
    name: 'keyrelay_cost_usd_total',
    help: 'Cost charged in US dollars, by model.',
    labelNames: ['model'] as const,
    registers: [registry],
  });
  const quotaRejections = new Counter({
    name: 'keyrelay_quota_rejections_total',
    help: 'Requests refused by a limit, by code (rate_limit_exceeded, insufficient_quota, ...).',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'keyrelay_requests_in_flight', help: 'Requests being relayed now.', registers: [registry] });
  const openStreams = new Gauge({ name: 'keyrelay_open_streams', help: 'SSE answers being streamed now.', registers: [registry] });
  const retries = new Counter({
    name: 'keyrelay_upstream_retries_total',
    help: 'Attempts retried on another pool key, by the reason of the failed attempt.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: 'keyrelay_store_errors_total',
    help: 'Store operations that failed (the quota store fails closed).',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const dropped = new Counter({
    name: 'keyrelay_observability_dropped_total',
    help: 'Request-log records and usage updates dropped because the store stayed unreachable too long.',
    labelNames: ['sink'] as const,
    registers: [registry],
  });
  const poolKeys = new Gauge({
    name: 'keyrelay_pool_key_state',
    help: '1 for the state each pool key is in (active, cooling, disabled).',
    labelNames: ['upstream', 'key', 'state'] as const,
    registers: [registry],
  });

  return {
    registry,
    request(route: string, status: number, outcome: string): void {
      requests.inc({ route: routes.label(routeTemplate(route)), status: String(status), outcome });
    },
    timing(stream: boolean, ttfbMs: number | undefined, durationMs: number): void {
      const label = { stream: stream ? 'true' : 'false' };
      if (ttfbMs !== undefined) ttfb.observe(label, ttfbMs / 1000);
      duration.observe(label, durationMs / 1000);
    },
    usage(model: string, input: number, output: number, usd: number, userId?: string): void {
      const m = models.label(model);
      const user = options.userLabels && userId !== undefined ? { user: users.label(userId) } : {};
      if (input > 0) tokens.inc({ model: m, kind: 'input', ...user }, input);
      if (output > 0) tokens.inc({ model: m, kind: 'output', ...user }, output);
      if (usd > 0) cost.inc({ model: m }, usd);
    },
    quotaRejected(code: string): void {
      quotaRejections.inc({ code });
    },
    retried(reason: string): void {
      retries.inc({ reason });
    },
    storeFailed(operation: string): void {
      storeErrors.inc({ operation });
    },
    observabilityDropped(sink: string, count: number): void {
      dropped.inc({ sink }, count);
    },
    inFlight,
    openStreams,
    poolKeyStates(states: Iterable<{ upstream: string; key: string; state: string }>): void {
      poolKeys.reset();
      for (const s of states) {
        for (const state of ['active', 'cooling', 'disabled']) {
          poolKeys.set({ upstream: s.upstream, key: s.key, state }, s.state === state ? 1 : 0);
        }
      }
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
