// Wires observability in: an Observation per request (one record each: see observation.ts) and
// `GET /metrics`, registered before every other plugin so that its hook sees every request; and
// the admin routes over the request log and the usage counters (README, "Admin API and
// command line" and "Logs, usage reports and metrics"), registered beside the admin API.
import { Readable } from 'node:stream';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Observability } from '../observability/index.js';
import { Observation } from '../observability/observation.js';
import { before, pageSize, requestFilter, usageSpan } from '../observability/queries.js';
import { LiveTail } from '../observability/live-tail.js';
import type { RequestFilter } from '../observability/request-log.js';
import { buildReport } from '../observability/usage-report.js';
import { buildSeries, seriesSpan } from '../observability/usage-series.js';
import type { Pool } from '../pool/pool.js';
import { adminGuard, tokenGuard } from './admin.js';

declare module 'fastify' {
  interface FastifyRequest {
    observation: Observation;
  }
  interface FastifyInstance {
    /** Starts observing a request Fastify answers without running hooks (frameworkErrors). */
    observe(request: FastifyRequest, reply: FastifyReply): void;
  }
}

export interface ObservabilityPluginOptions {
  pool: Pool;
  observability: Observability;
  /** When set, /metrics needs it as a bearer token. */
  metricsToken?: string;
}

// Probes and scrapes every few seconds would drown the access log.
const UNRECORDED = new Set(['/healthz', '/readyz', '/metrics']);

// Query strings are strings: each parameter is taken as text and read by queries.ts, which
// answers a 400 naming it; an unknown parameter is a 400 too, not ignored.
const FilterQuery = {
  user: Type.Optional(Type.String({ maxLength: 200 })),
  status: Type.Optional(Type.String({ maxLength: 3 })),
  outcome: Type.Optional(Type.String({ maxLength: 40 })),
  model: Type.Optional(Type.String({ maxLength: 256 })),
};
const TimeQuery = {
  from: Type.Optional(Type.String({ maxLength: 40 })),
  to: Type.Optional(Type.String({ maxLength: 40 })),
};
export const RequestsQuerySchema = Type.Object(
  { ...FilterQuery, ...TimeQuery, limit: Type.Optional(Type.String({ maxLength: 10 })), before: Type.Optional(Type.String({ maxLength: 64 })) },
  { additionalProperties: false },
);
export const StreamQuerySchema = Type.Object(FilterQuery, { additionalProperties: false });
export const RequestParams = Type.Object({ requestId: Type.String({ minLength: 1, maxLength: 200 }) });
const ExportQuerySchema = Type.Object({ ...FilterQuery, ...TimeQuery }, { additionalProperties: false });
export const UsageQuerySchema = Type.Object(
  {
    user: Type.Optional(Type.String({ maxLength: 200 })),
    from: Type.Optional(Type.String({ maxLength: 40 })),
    to: Type.Optional(Type.String({ maxLength: 40 })),
    groupBy: Type.Optional(Type.String({ maxLength: 40 })),
  },
  { additionalProperties: false },
);

// The live tail: a comment this often keeps proxies from closing a quiet stream; a client that
// lets this much wait unread is dropped.
const KEEP_ALIVE_MS = 15_000;
const TAIL_BUFFER_BYTES = 1024 * 1024;

export const SeriesQuerySchema = Type.Object(
  {
    range: Type.Optional(Type.String({ maxLength: 10 })),
    by: Type.Optional(Type.String({ maxLength: 10 })),
    user: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

/** The store (Redis) did not answer: the same 503 the quota path gives. */
function unavailable(err: unknown): GatewayError {
  return new GatewayError('quota_backend_unavailable', {
    message: 'The store is unreachable. Try again later.',
    headers: { 'retry-after': '1' },
    cause: err,
  });
}

/** Runs a store call, a failure of the store becoming the 503 above. */
export async function fromStore<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw err instanceof GatewayError ? err : unavailable(err);
  }
}

async function plugin(app: FastifyInstance, options: ObservabilityPluginOptions): Promise<void> {
  const { pool, observability } = options;
  const { metrics } = observability;

  app.decorateRequest('observation', null as unknown as Observation);

  function observe(request: FastifyRequest, reply: FastifyReply): void {
    if (request.observation) return;
    const observation = new Observation(observability, request.id, request.method, request.raw.url ?? '', request.headers);
    request.observation = observation;
    if (UNRECORDED.has(observation.route)) return;
    reply.raw.once('close', () =>
      observation.closed(() => ({
        status: reply.statusCode,
        userId: request.caller?.user.id,
        keyId: request.caller?.key.id,
        bytesOut: Number(reply.getHeader('content-length') ?? 0) || 0,
        aborted: !reply.raw.writableFinished,
      })),
    );
  }
  app.decorate('observe', observe);

  app.addHook('onRequest', (request, reply, done) => {
    observe(request, reply);
    done();
  });

  const metricsToken = options.metricsToken;
  const guard = metricsToken ? tokenGuard(metricsToken, 'GET /metrics needs the metrics token (metrics.token).') : undefined;
  app.get('/metrics', { onRequest: guard ? [guard] : [] }, async (_request, reply) => {
    metrics.poolKeyStates(pool.describe().flatMap((u) => u.keys.map((k) => ({ upstream: u.id, key: k.id, state: k.state }))));
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

}

/** A page of the request log, as GET /admin/requests answers (and /console/api/me/requests). */
export function requestsPage(observability: Observability, query: Static<typeof RequestsQuerySchema>) {
  const { requests } = observability;
  const page = { ...requestFilter(query), limit: pageSize(query), before: before(query) };
  return fromStore(async () => {
    await requests.flush();
    const answer = await requests.page(page);
    // `next` as before; `nextBefore` and `hasMore` are the names the console reads.
    return { ...answer, nextBefore: answer.next, hasMore: answer.next !== null };
  });
}

/** One kept request, as GET /admin/requests/{requestId} answers (and /console/api/me/requests/{id},
 * `owner` set: another user's request is as unknown as a missing one). */
export async function requestRecord(observability: Observability, requestId: string, owner?: string) {
  const { requests } = observability;
  const record = await fromStore(async () => {
    await requests.flush();
    return requests.find(requestId);
  });
  if (!record || (owner !== undefined && record.userId !== owner)) {
    throw new GatewayError('request_not_found', { param: 'requestId', message: `No kept request has the id ${JSON.stringify(requestId)}.` });
  }
  return record;
}

/** The live tail's streams for one plugin (GET /admin/requests/stream, /console/api/me/requests/stream):
 * each call answers one client with the records its filter matches, as Server-Sent Events. */
export function liveTail(app: FastifyInstance, observability: Observability) {
  const { metrics } = observability;
  // The gauge counts the clients of both routes' tails: each adds its own change.
  let clients = 0;
  const tail = new LiveTail(observability.requests, {
    keepAliveMs: KEEP_ALIVE_MS,
    maxBufferedBytes: TAIL_BUFFER_BYTES,
    onClients: (count) => {
      metrics.liveTailClients.inc(count - clients);
      clients = count;
    },
    onDropped: () => metrics.liveTailDropped.inc(),
  });
  // Before the server closes: an open stream would otherwise hold the close until it ended.
  app.addHook('preClose', async () => tail.closeAll());
  /** `holds`: for a client signed in by a console session, whether that session still holds;
   * the stream ends within seconds of it ending (signed out, key revoked). */
  return (filter: RequestFilter, reply: FastifyReply, holds?: () => Promise<boolean>) => {
    reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-accel-buffering', 'no')
      // The stream is the connection's last answer: ending it at shutdown closes the socket too.
      .header('connection', 'close');
    return tail.open(filter, holds);
  };
}

/** The usage report, as GET /admin/usage answers (and /console/api/me/usage). */
export async function usageAnswer(observability: Observability, query: Static<typeof UsageQuerySchema>) {
  const { usage } = observability;
  const span = usageSpan(query);
  const rows = await fromStore(async () => {
    await usage.flush();
    return usage.read(span.days, span.user);
  });
  return buildReport(rows, span);
}

/** Usage over time, as GET /admin/usage/series answers (and /console/api/me/usage/series). */
export async function usageSeries(observability: Observability, query: Static<typeof SeriesQuerySchema>) {
  const { usage } = observability;
  const span = seriesSpan(query);
  const rows = await fromStore(async () => {
    await usage.flush();
    return usage.series(span.step, span.buckets, span.user);
  });
  return buildSeries(rows, span);
}

/** GET /admin/requests, /admin/requests/export and /admin/usage; registered with the admin API,
 * under its prefix and only when it exists (README, "Settings": without an admin token /admin answers 404). */
export async function observabilityAdminPlugin(app: FastifyInstance, options: { config: Config; observability: Observability }): Promise<void> {
  const { requests } = options.observability;
  app.addHook('onRequest', adminGuard(options.config.adminToken ?? ''));

  app.get<{ Querystring: Static<typeof RequestsQuerySchema> }>('/requests', { schema: { querystring: RequestsQuerySchema } }, async (request) =>
    requestsPage(options.observability, request.query),
  );

  const tail = liveTail(app, options.observability);
  app.get<{ Querystring: Static<typeof StreamQuerySchema> }>('/requests/stream', { schema: { querystring: StreamQuerySchema } }, async (request, reply) =>
    tail(requestFilter(request.query), reply, request.consoleSession?.holds),
  );

  app.get<{ Params: Static<typeof RequestParams> }>('/requests/:requestId', { schema: { params: RequestParams } }, async (request) =>
    requestRecord(options.observability, request.params.requestId),
  );

  app.get<{ Querystring: Static<typeof ExportQuerySchema> }>(
    '/requests/export',
    { schema: { querystring: ExportQuerySchema } },
    async (request, reply) => {
      const filter = requestFilter(request.query);
      await fromStore(() => requests.flush());
      async function* lines(): AsyncGenerator<string> {
        for await (const record of requests.scan(filter)) yield `${JSON.stringify(record)}\n`;
      }
      reply.header('content-type', 'application/x-ndjson').header('content-disposition', 'attachment; filename="keyrelay-requests.ndjson"');
      return Readable.from(lines());
    },
  );

  app.get<{ Querystring: Static<typeof UsageQuerySchema> }>('/usage', { schema: { querystring: UsageQuerySchema } }, async (request) =>
    usageAnswer(options.observability, request.query),
  );

  app.get<{ Querystring: Static<typeof SeriesQuerySchema> }>('/usage/series', { schema: { querystring: SeriesQuerySchema } }, async (request) =>
    usageSeries(options.observability, request.query),
  );
}

export const observabilityPlugin = fp(plugin, { name: 'keyrelay-observability' });
