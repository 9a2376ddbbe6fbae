// Builds the Fastify app from its plugins in an explicit order. Listening is server.ts's job.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import type { Logger } from 'pino';
import type { Alerts } from './alerts/alerts.js';
import type { Caller } from './auth.js';
import { type Config, ConfigError } from './config.js';
import { GatewayError, errorBody } from './errors.js';
import { capConnections } from './inbound/connection-cap.js';
import { type Cors, createCors } from './inbound/cors.js';
import { headerCountError, headerSizeOption, keepOneFieldMore } from './inbound/header-limits.js';
import { refuseOnSocket } from './inbound/raw-answer.js';
import { closeWithConnection } from './inbound/pipelined.js';
import { transferCodingError } from './inbound/transfer-codings.js';
import { contentCodingError } from './inbound/content-codings.js';
import { HEALTH_PATHS, type RequestCap, createRequestCap } from './inbound/request-cap.js';
import { type Reading, createSaturation } from './inbound/saturation.js';
import { refuseExpectation } from './inbound/expectations.js';
import { createSlowClientGuard, serverTimeouts } from './inbound/slow-clients.js';
import { webSocketUpgradesOnly } from './inbound/upgrade-offers.js';
import { trustProxyOption } from './inbound/trusted-proxies.js';
import { createLogger, loggerOptions } from './logger.js';
import { type Metrics, createMetrics } from './metrics.js';
import { createObservability } from './observability/index.js';
import { type Operation, matchOperation } from './operations/match.js';
import { createAlerts } from './alerts/alerts.js';
import { poolWatch } from './alerts/pool-watch.js';
import { QuotaWatch } from './alerts/quota-watch.js';
import { auditAdminRoutes } from './audit/hook.js';
import { installConsole } from './console-server/plugin.js';
import { addConsoleHeaders } from './console-server/headers.js';
import { consoleEnabled } from './console-server/settings.js';
import { adminPlugin } from './plugins/admin.js';
import { auditPlugin, auditRetention } from './plugins/audit.js';
import { webhooksPlugin } from './plugins/webhooks.js';
import { healthPlugin } from './plugins/health.js';
import { homePlugin } from './plugins/home.js';
import { observabilityAdminPlugin, observabilityPlugin } from './plugins/observability.js';
import { relayPlugin } from './plugins/relay.js';
import type { HealthRecord } from './pool/health-sync.js';
import { Pool, type PoolChoice } from './pool/pool.js';
import { RetryPolicy } from './pool/retry.js';
import { createLane } from './relay/lane.js';
import { createGrowingMasker } from './relay/mask.js';
import { startCatalogSync } from './pool/runtime.js';
import { SecretError, secretBoxFrom } from './secrets/box.js';
import { OpenStreams } from './relay/open-streams.js';
import { createRelayRoute } from './relay/route.js';
import { type Outbound, createOutbound } from './relay/outbound.js';
import { type Target, checkTarget } from './relay/path.js';
import { createUpgradeHandler } from './relay/websocket.js';
import { writeError } from './relay/respond.js';
import { validationError } from './validation-error.js';
import type { Services } from './services.js';
import { createStore } from './store/index.js';
import type { Store } from './store/types.js';
import { QuotaGate } from './quota/gate.js';
import { PriceTable } from './quota/prices.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Ends every open stream and WebSocket now; resolves how many there were. */
    interruptStreams(): number;
    /** Puts the upstreams and pool keys of reloaded settings in place (SIGHUP); requests running on a key that left finish on it. */
    applyPoolSettings(next: Config): void;
  }
  interface FastifyRequest {
    target: Target;
    /** The operation a /v1 request matched (src/operations/match.ts). */
    operation: Operation | undefined;
    caller: Caller | null;
  }
}


export interface AppOptions {
  log?: Logger;
  store?: Store;
  /** Where the console's built files are (tests); by default dist/console/. */
  consoleRoot?: string;
}

function toGatewayError(err: FastifyError | GatewayError | Error): GatewayError {
  if (err instanceof GatewayError) return err;
  const fe = err as FastifyError;
  if (fe.validation) return validationError(fe.validation, fe.validationContext);
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('invalid_json', { cause: err });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('request_too_large', { cause: err });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('invalid_request', { message: 'Unsupported Content-Type.', cause: err });
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new GatewayError('invalid_request', { message: fe.message, cause: err });
  }
  return new GatewayError('internal_error', { cause: err });
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type SlowClientGuard = ReturnType<typeof createSlowClientGuard>;

interface Inbound {
  guard: SlowClientGuard;
  cap: RequestCap;
  metrics: Metrics;
  /** Takes the connection cap's reading once the server is made (readiness reads it). */
  connectionsRead(read: () => Reading): void;
}

/**
 * The server Fastify would make (HTTP, or HTTPS with KEYRELAY_TLS_CERT/KEY), with the lane in
 * front of Fastify's handler: `lane` takes the API requests it can (src/relay/lane.ts). Its
 * timeouts, header limits and caps are the `inbound` settings (src/inbound/), not Fastify's options.
 */
function serverWithLane(config: Config, inbound: Inbound, log: Logger, cors: Cors, lane: () => ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined) {
  const { guard, cap, metrics, connectionsRead } = inbound;
  return (handler: Handler) => {
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      closeWithConnection(req.socket, res);
      guard.watch(req, res);
      // Here, so that every answer to a /v1 request carries them, whoever writes it (lane, Fastify).
      cors.decorate(req, res);
      const refused = headerCountError(req, config.inbound) ?? transferCodingError(req) ?? contentCodingError(req);
      if (refused) {
        writeError(res, refused, randomUUID());
        return;
      }
      // Before the key and the body: a refusal costs the parse of the request's head, no more.
      if (!cap.admit(req, res)) return;
      if (!lane()?.(req, res)) handler(req, res);
    };
    // maxHeaderBytes (64 KB by default) leaves room for an oversized Authorization header to reach
    // the 401 of docs/reliability.md, case 1.
    const http = { ...headerSizeOption(config.inbound), ...serverTimeouts(config.inbound) };
    const server = config.tls
      ? createTlsServer(
          // A TLS handshake that does not finish within `idleMs` ends the connection (Node waits 120 s):
          // the connection holds a place under the cap from its first byte.
          { ...http, handshakeTimeout: config.inbound.idleMs, cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) },
          onRequest,
        )
      : createServer(http, onRequest);
    keepOneFieldMore(server, config.inbound);
    connectionsRead(capConnections(server, config.tls !== undefined, config.inbound.maxConnections, log, () => metrics.overloaded('connections')));
    // Node would answer an unknown expectation itself, with an empty 417 (src/inbound/expectations.ts).
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
      cors.decorate(req, res);
      refuseExpectation(req, res);
    });
    server.setTimeout(config.inbound.idleMs);
    server.on('timeout', guard.onSilence);
    return server;
  };
}

function sendError(reply: FastifyReply, error: GatewayError, requestId: string): void {
  reply.request.observation?.failed(error);
  // A Buffer, so that Fastify sends the content type exactly as the relay path does.
  reply
    .code(error.status)
    .headers({ ...error.headers, 'content-type': 'application/json', 'x-request-id': requestId, 'x-keyrelay-request-id': requestId })
    .send(Buffer.from(errorBody(error)));
}

/** One line per change of a pool key's state, whichever process made it (never per request). */
function logKeyState(log: Logger) {
  return (keyRef: string, record: HealthRecord, previous: HealthRecord) => {
    if (record.state === previous.state && record.reason === previous.reason && record.until === previous.until) return;
    const slash = keyRef.indexOf('/');
    const line = {
      upstream: keyRef.slice(0, slash),
      poolKeyId: keyRef.slice(slash + 1),
      state: record.state,
      reason: record.reason,
      until: record.until === undefined ? undefined : new Date(record.until).toISOString(),
      was: previous.state,
    };
    if (record.state === 'active') log.info(line, 'pool key active');
    else log.warn(line, `pool key ${record.state}`);
  };
}

/** A pool key that is still configured and not disabled (by the admin or by its upstream's answers). */
function keyLive(pool: Pool, ref: string): boolean {
  if (pool.health.record(ref).state === 'disabled') return false;
  return pool.upstreams.some((u) => u.keys.some((k) => k.ref === ref));
}

/** Every upstream and pool key configured now. */
function* configuredKeys(pool: Pool): Generator<PoolChoice> {
  for (const upstream of pool.upstreams) for (const key of upstream.keys) yield { upstream, key };
}

/** The key pool, its health shared through the store, caught up with what other processes saw. */
async function buildPool(config: Config, store: Store, log: Logger, alerts: Alerts, onKeyChange: () => void): Promise<Pool> {
  const logChange = logKeyState(log);
  const alertOnChange = poolWatch({ alerts, describe: () => pool.describe() });
  const pool: Pool = new Pool(config, {
    settings: config.pool.health,
    sync: store.keyHealth,
    onChange: (ref, record, previous) => {
      logChange(ref, record, previous);
      alertOnChange(ref, record, previous);
      onKeyChange();
    },
    onSyncError: (err) => log.warn({ reason: (err as Error).message }, 'pool key health: could not share a change with the other processes'),
  });
  await pool.health.refresh().catch((err: unknown) => log.warn({ reason: (err as Error).message }, 'pool key health: could not read the shared records at start'));
  return pool;
}

export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const log = options.log ?? createLogger(config.logLevel, undefined, loggerOptions(config));
  const store = options.store ?? (await createStore(config, log));
  const secretBox = secretBoxFrom(config.secret, config.secretPrevious);
  const alerts = createAlerts({ config, store: store.alerts, box: secretBox, log });
  // The warm connections of a key that is removed or disabled are closed (src/relay/warm.ts).
  let outbound: Outbound | undefined;
  const pool = await buildPool(config, store, log, alerts, () => outbound?.refresh());
  outbound = createOutbound(config, { log, keyLive: (ref) => keyLive(pool, ref), configured: () => configuredKeys(pool) });
  pool.onChange(() => outbound?.refresh());
  // What the store holds must open before a single request is served (src/pool/runtime.ts).
  const catalog = await startCatalogSync(pool, store.poolCatalog, secretBox, log).catch(async (err: unknown) => {
    if (!(err instanceof SecretError)) throw err;
    await store.close();
    throw new ConfigError(err.message);
  });
  // The webhooks' signing secrets too (src/alerts/sealed.ts). A store that is down at start is no
  // reason to refuse: its webhooks are read when a delivery is due.
  await alerts.checkSecrets().catch(async (err: unknown) => {
    if (!(err instanceof SecretError)) {
      log.warn({ reason: (err as Error).message }, 'alerts: cannot read the webhooks at start');
      return;
    }
    catalog.close();
    await store.close();
    throw new ConfigError(err.message);
  });
  const masker = createGrowingMasker(pool.secrets());
  pool.onChange(() => masker.learn(pool.secrets()));
  const metrics = createMetrics({ userLabels: config.logging.userLabelsInMetrics });
  const quotaWatch = new QuotaWatch({ store, alerts, log });
  const prices = new PriceTable(config.prices);
  // One gate for every path that admits and settles (HTTP, WebSockets, charges made later).
  const quota = new QuotaGate({
    store,
    prices,
    leaseMs: config.quota.leaseMs,
    log,
    onStoreError: (operation) => metrics.storeFailed(operation),
    onSettled: (userId, limits) => quotaWatch.settled(userId, limits),
  });
  const services: Services = {
    config,
    log,
    store,
    pool,
    retry: new RetryPolicy(config.pool.retry),
    masker,
    catalog,
    secretBox,
    outbound,
    streams: new OpenStreams(),
    metrics,
    alerts,
    quotaWatch,
    prices,
    quota,
    cors: createCors(config.cors),
  };
  const observability = createObservability(config, log, services.metrics);
  const route = createRelayRoute(services);
  let closing = false;
  const slowClients = createSlowClientGuard(config.inbound, log);
  const requestCap = createRequestCap(config.inbound, log, (why) => metrics.overloaded(why));
  metrics.countInboundWith(() => requestCap.inFlight, () => requestCap.limit);
  metrics.countDispatchersWith(() => services.outbound.size());
  let readConnections: () => Reading[] = () => [];
  const saturation = createSaturation(() => [...readConnections(), ...requestCap.readings()]);
  const lane = createLane({ route, observability, log, cors: services.cors, isClosing: () => closing });

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Observability writes one line per request (plugins/observability.ts).
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // request.ip, .protocol and .host: the connection's, or what a listed proxy says.
    trustProxy: trustProxyOption(config.inbound.trustedProxies),
    serverFactory: serverWithLane(
      config,
      { guard: slowClients, cap: requestCap, metrics, connectionsRead: (read) => (readConnections = () => [read()]) },
      log,
      services.cors,
      () => lane,
    ),
    clientErrorHandler: slowClients.clientError,
    routerOptions: { maxParamLength: 2048 },
    return503OnClosing: false,
    // Route schemas (the admin API's) are checked as written: Fastify's defaults would turn "12"
    // into 12, null into 0 or "", a string into a list, and drop unknown fields unseen.
    // validation-error.ts words the 400 from what `verbose` adds to each error.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, verbose: true } },
    // Errors Fastify raises before routing (a malformed URL, a bad header) get the same shape.
    frameworkErrors: (err, request, reply) => {
      const error = err.code === 'FST_ERR_BAD_URL' ? new GatewayError('invalid_path', { cause: err }) : toGatewayError(err);
      // Sent before any hook: the console's own onSend (src/console-server/plugin.ts) never sees it.
      if (consoleEnabled(config)) addConsoleHeaders(request.raw.url, reply);
      app.observe(request, reply);
      reply.header('connection', 'close');
      sendError(reply, error, request.id);
    },
  }) as unknown as FastifyInstance;

  app.decorateRequest('target', null as unknown as Target);
  app.decorateRequest('caller', null);
  app.decorateRequest('operation', undefined);
  // Before any route is registered, so that every route's errors take the same shape (/metrics too).
  app.setErrorHandler((err: FastifyError | GatewayError, request, reply) => {
    const error = toGatewayError(err);
    // Other errors are in the request's own line; a bug needs its stack on a line of its own.
    if (error.code === 'internal_error') request.log.error({ err: error.cause ?? error, requestId: request.id }, 'request failed');
    // An unread body would be drained by Node after the answer; close instead of reading it.
    if (!request.raw.complete) reply.header('connection', 'close');
    sendError(reply, error, request.id);
  });

  // First, so that its hooks see every request, even one refused by the next hook.
  await app.register(observabilityPlugin, { pool, observability, metricsToken: config.metrics.token });

  // One check of the raw target for every route, before routing decisions matter: its canonical
  // path, and for /v1 the operation it is.
  app.addHook('onRequest', async (request, reply) => {
    request.target = checkTarget(request.raw.url ?? '');
    const { path } = request.target;
    if (path.startsWith('/v1/')) request.operation = matchOperation(request.method, path);
    request.observation.matched(path, request.operation);
    if (closing) {
      // A request on a connection kept alive from before the shutdown: answered, then closed.
      reply.header('connection', 'close');
      if (!HEALTH_PATHS.has(request.target.path)) throw new GatewayError('shutting_down', { headers: { 'retry-after': '1' } });
    }
    // A /v1 request the lane left: its preflight is answered here, as the lane would (src/inbound/cors.ts).
    const preflight = request.operation ? services.cors.preflight(request.raw) : undefined;
    if (preflight) return reply.code(204).headers({ ...preflight, 'x-request-id': request.id, 'x-keyrelay-request-id': request.id }).send();
  });


  app.setNotFoundHandler((request, reply) => {
    const path = request.target?.path ?? '';
    sendError(reply, new GatewayError('unknown_url', { message: `Unknown request URL: ${request.method} ${path}.` }), request.id);
  });

  await app.register(healthPlugin, { ...services, isClosing: () => closing, saturation });
  await app.register(homePlugin, { metricsToken: config.metrics.token });
  // Before the admin routes: it refuses one that changes something without an audit action.
  auditAdminRoutes(app, { log: store.audit, retention: auditRetention(config), logger: log });
  // Before the admin routes: their guard takes an admin's console session (docs/console.md).
  if (consoleEnabled(config)) await installConsole(app, { services, observability, root: options.consoleRoot });
  if (config.adminToken) await app.register(adminPlugin, { ...services, prefix: '/admin' });
  if (config.adminToken) await app.register(auditPlugin, { config, log: store.audit, prefix: '/admin' });
  if (config.adminToken) await app.register(webhooksPlugin, { alerts, store: store.alerts, adminToken: config.adminToken, prefix: '/admin' });
  if (config.adminToken) await app.register(observabilityAdminPlugin, { config, observability, prefix: '/admin' });
  await app.register(relayPlugin, { route });

  // An upgrade offer other than WebSocket (an h2c offer) is served as an ordinary request.
  const upgrade = webSocketUpgradesOnly(app.server, createUpgradeHandler({ ...services, newRequestId: () => randomUUID(), record: (r) => observability.record(r) }));
  // An upgrade never reaches the request listener: its header fields are counted here.
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const tooManyFields = headerCountError(req, config.inbound);
    if (tooManyFields) refuseOnSocket(socket as Socket, tooManyFields);
    else upgrade(req, socket, head);
  };
  app.server.on('upgrade', onUpgrade);

  alerts.start();
  app.addHook('preClose', async () => {
    closing = true;
  });
  // For the shutdown's end of grace (src/server.ts): streams get their last event, WebSockets close.
  app.decorate('interruptStreams', () => services.streams.interruptAll());
  app.decorate('applyPoolSettings', (next: Config) => pool.applySettings(next));
  app.addHook('onClose', async () => {
    app.server.off('upgrade', onUpgrade);
    requestCap.close();
    catalog.close();
    pool.close();
    services.quotaWatch.close();
    await alerts.close();
    await observability.close();
    await services.outbound.close();
    await store.close();
  });
  return app;
}
