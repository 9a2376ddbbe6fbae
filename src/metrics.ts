// Prometheus metrics (prom-client). Every label value is bounded: a request's route is the path
// template of the operation it matched (src/operations/match.ts), `other` for every path the
// spec does not have, so no client can add a series; models are capped, user ids appear only when
// an operator enables them.
import { Counter, Gauge, type Metric, Registry, collectDefaultMetrics } from 'prom-client';

const LABEL_CAP = 200;
const OTHER = 'other';

/** Keeps at most `cap` distinct values, each with what is counted under it; the rest share the
 * entry of `other`. A value's entry never changes once given (the set only grows), so callers may
 * keep it. */
class BoundedLabels<T> {
  private readonly seen = new Map<string, T>();
  private overflow: T | undefined;
  constructor(
    private readonly make: (label: string) => T,
    private readonly cap = LABEL_CAP,
  ) {}
  get(value: string): T {
    const known = this.seen.get(value);
    if (known !== undefined) return known;
    // A value spelled `other` that came in under the cap is the same series as the overflow.
    if (this.seen.size >= this.cap) return (this.overflow ??= this.seen.get(OTHER) ?? this.make(OTHER));
    const made = this.make(value);
    this.seen.set(value, made);
    return made;
  }
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

type Labels = Readonly<Record<string, string>>;

interface Series {
  readonly labels: Labels;
  /** The metric's generation it was last listed in (a reset unlists every series). */
  generation: number;
}

interface CounterSeries extends Series {
  value: number;
}

interface HistogramSeries extends Series {
  /** Observations per bucket, not cumulative; the last holds those above every bound. */
  readonly buckets: number[];
  sum: number;
  count: number;
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * The counters and histograms every request moves. prom-client's own hash and check a label
 * object on each call; a series here is found once, kept by the caller, and moved with a number
 * add. The Registry renders them as it renders its own: on each scrape it reads a metric's name,
 * help and type and the values of `get()`, in the shape prom-client's Counter and Histogram give
 * (lib/registry.js), so /metrics reads the same, series in the order they were first moved.
 */
abstract class RequestPathMetric<S extends Series> {
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  protected listed: S[] = [];
  private generation = 0;

  constructor(
    // Not readonly: the Registry renames counters when it writes OpenMetrics.
    public name: string,
    readonly help: string,
    registry: Registry,
  ) {
    // registerMetric is typed for prom-client's own classes; at run time it takes any object with
    // a name and `get()` (lib/registry.js).
    registry.registerMetric(this as unknown as Metric);
  }

  protected abstract values(): MetricValue[];

  /** Lists the series on its first move after creation or a reset, as prom-client adds one. */
  protected touch(series: S): void {
    if (series.generation === this.generation) return;
    series.generation = this.generation;
    this.clear(series);
    this.listed.push(series);
  }

  protected abstract clear(series: S): void;

  async get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }

  reset(): void {
    this.listed = [];
    this.generation += 1;
  }
}

// prom-client refuses a value that is not a finite number with this error.
function finite(value: number): void {
  if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
}

class RequestCounter extends RequestPathMetric<CounterSeries> {
  readonly type = 'counter';

  series(labels: Labels): CounterSeries {
    return { labels, value: 0, generation: -1 };
  }

  inc(series: CounterSeries, value: number): void {
    finite(value);
    this.touch(series);
    series.value += value;
  }

  protected clear(series: CounterSeries): void {
    series.value = 0;
  }

  protected values(): MetricValue[] {
    return this.listed.map((s) => ({ value: s.value, labels: s.labels }));
  }
}

class RequestHistogram extends RequestPathMetric<HistogramSeries> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    registry: Registry,
    private readonly bounds: readonly number[],
  ) {
    super(name, help, registry);
  }

  series(labels: Labels): HistogramSeries {
    return { labels, generation: -1, buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 };
  }

  observe(series: HistogramSeries, value: number): void {
    finite(value);
    this.touch(series);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    series.buckets[i] = (series.buckets[i] as number) + 1;
    series.sum += value;
    series.count += 1;
  }

  protected clear(series: HistogramSeries): void {
    series.buckets.fill(0);
    series.sum = 0;
    series.count = 0;
  }

  /** Cumulative buckets, `+Inf`, sum and count per series, as prom-client's Histogram lists them. */
  protected values(): MetricValue[] {
    const out: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.listed) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.buckets[i] as number;
        out.push({ value: acc, labels: { le, ...s.labels }, metricName: bucket });
      });
      out.push({ value: s.count, labels: { le: '+Inf', ...s.labels }, metricName: bucket });
      out.push({ value: s.sum, labels: { ...s.labels }, metricName: `${this.name}_sum` });
      out.push({ value: s.count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    }
    return out;
  }
}

/** The requests of one route template, by status and then outcome. */
interface RouteSeries {
  readonly route: string;
  readonly byStatus: Map<number, Map<string, CounterSeries>>;
}

interface TokenSeries {
  input?: CounterSeries;
  output?: CounterSeries;
}

interface ModelSeries extends TokenSeries {
  readonly model: string;
  cost?: CounterSeries;
  /** With user labels: the token series of each user. */
  readonly byUser: Map<string, TokenSeries>;
}

export function createMetrics(options: { userLabels?: boolean } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'keyrelay_' });

  const requests = new RequestCounter('keyrelay_requests_total', 'Relayed requests by route template, status and outcome.', registry);
  const ttfb = new RequestHistogram(
    'keyrelay_time_to_first_byte_seconds',
    'From the request reaching the gateway to the first answer byte sent to the client.',
    registry,
    SECONDS,
  );
  const duration = new RequestHistogram('keyrelay_request_duration_seconds', 'Whole request time, to the last answer byte.', registry, SECONDS);
  const tokens = new RequestCounter('keyrelay_tokens_total', 'Tokens charged, by model and kind (input, output).', registry);
  const cost = new RequestCounter('keyrelay_cost_usd_total', 'Cost charged in US dollars, by model.', registry);

  const routes = new BoundedLabels<RouteSeries>((route) => ({ route, byStatus: new Map() }));
  const models = new BoundedLabels<ModelSeries>((model) => ({ model, byUser: new Map() }));
  const users = new BoundedLabels<string>((user) => user, 1000);
  const timings = {
    ttfb: [ttfb.series({ stream: 'false' }), ttfb.series({ stream: 'true' })] as const,
    duration: [duration.series({ stream: 'false' }), duration.series({ stream: 'true' })] as const,
  };

  function tokenSeries(series: TokenSeries, model: string, kind: 'input' | 'output', user: string | undefined): CounterSeries {
    let found = series[kind];
    if (found === undefined) {
      found = tokens.series(user === undefined ? { model, kind } : { model, kind, user });
      series[kind] = found;
    }
    return found;
  }

  const quotaRejections = new Counter({
    name: 'keyrelay_quota_rejections_total',
    help: 'Requests refused by a limit, by code (rate_limit_exceeded, insufficient_quota, ...).',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'keyrelay_requests_in_flight', help: 'Requests being relayed now.', registers: [registry] });
  const openStreams = new Gauge({ name: 'keyrelay_open_streams', help: 'SSE answers being streamed now.', registers: [registry] });
  const overloadRefusals = new Counter({
    name: 'keyrelay_overload_refusals_total',
    help: 'Connections and requests answered 503 server_overloaded, by the limit reached (connections, requests, event_loop).',
    labelNames: ['limit'] as const,
    registers: [registry],
  });
  for (const limit of ['connections', 'requests', 'event_loop']) overloadRefusals.inc({ limit }, 0);
  // Read when scraped: counting it per request would cost every request a gauge update.
  let countInbound = () => 0;
  let inboundLimit = () => 0;
  new Gauge({
    name: 'keyrelay_inbound_requests_in_flight',
    help: 'HTTP requests being handled now, counted against inbound.maxRequestsInFlight.',
    registers: [registry],
    collect() {
      this.set(countInbound());
    },
  });
  new Gauge({
    name: 'keyrelay_inbound_request_limit',
    help: 'The limit on HTTP requests in flight now: inbound.maxRequestsInFlight, lowered while the event loop is busier than inbound.maxEventLoopUtilization.',
    registers: [registry],
    collect() {
      this.set(inboundLimit());
    },
  });
  let countDispatchers = () => 0;
  new Gauge({
    name: 'keyrelay_outbound_dispatchers',
    help: 'undici dispatchers kept for upstream traffic: the direct one and one per proxy list a configured key names.',
    registers: [registry],
    collect() {
      this.set(countDispatchers());
    },
  });
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
  const liveTailClients = new Gauge({ name: 'keyrelay_live_tail_clients', help: 'Clients of the live tail (GET /admin/requests/stream, /console/api/me/requests/stream) now.', registers: [registry] });
  const liveTailDropped = new Counter({
    name: 'keyrelay_live_tail_dropped_total',
    help: 'Live tail clients dropped because they did not read fast enough.',
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
    /** `route`: the matched operation's path template, or `other`. */
    request(route: string, status: number, outcome: string): void {
      const byRoute = routes.get(route);
      let byOutcome = byRoute.byStatus.get(status);
      if (byOutcome === undefined) {
        byOutcome = new Map();
        byRoute.byStatus.set(status, byOutcome);
      }
      let series = byOutcome.get(outcome);
      if (series === undefined) {
        series = requests.series({ route: byRoute.route, status: String(status), outcome });
        byOutcome.set(outcome, series);
      }
      requests.inc(series, 1);
    },
    timing(stream: boolean, ttfbMs: number | undefined, durationMs: number): void {
      const i = stream ? 1 : 0;
      if (ttfbMs !== undefined) ttfb.observe(timings.ttfb[i], ttfbMs / 1000);
      duration.observe(timings.duration[i], durationMs / 1000);
    },
    usage(model: string, input: number, output: number, usd: number, userId?: string): void {
      const byModel = models.get(model);
      let user: string | undefined;
      let series: TokenSeries = byModel;
      if (options.userLabels && userId !== undefined) {
        user = users.get(userId);
        let byUser = byModel.byUser.get(user);
        if (byUser === undefined) {
          byUser = {};
          byModel.byUser.set(user, byUser);
        }
        series = byUser;
      }
      if (input > 0) tokens.inc(tokenSeries(series, byModel.model, 'input', user), input);
      if (output > 0) tokens.inc(tokenSeries(series, byModel.model, 'output', user), output);
      if (usd > 0) cost.inc((byModel.cost ??= cost.series({ model: byModel.model })), usd);
    },
    quotaRejected(code: string): void {
      quotaRejections.inc({ code });
    },
    overloaded(limit: 'connections' | 'requests' | 'event_loop'): void {
      overloadRefusals.inc({ limit });
    },
    /** Where keyrelay_outbound_dispatchers reads its value. */
    countDispatchersWith(count: () => number): void {
      countDispatchers = count;
    },
    /** Where keyrelay_inbound_requests_in_flight and keyrelay_inbound_request_limit read their values. */
    countInboundWith(count: () => number, limit: () => number): void {
      countInbound = count;
      inboundLimit = limit;
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
    liveTailClients,
    liveTailDropped,
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
