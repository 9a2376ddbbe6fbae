// Builds the Fastify app from its plugins in an explicit order. Listening is server.ts's job.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { Caller } from './auth.js';
import type { Config } from './config.js';
import { GatewayError, errorBody } from './errors.js';
import { createLogger } from './logger.js';
import { adminPlugin } from './plugins/admin.js';
import { healthPlugin } from './plugins/health.js';
import { relayPlugin } from './plugins/relay.js';
import { Pool } from './pool/pool.js';
import { createOutbound } from './relay/outbound.js';
import { type Target, checkTarget } from './relay/path.js';
import { createUpgradeHandler } from './relay/websocket.js';
import type { Services } from './services.js';
import { createStore } from './store/index.js';
import type { Store } from './store/types.js';

declare module 'fastify' {
  interface FastifyRequest {
    target: Target;
    caller: Caller | null;
  }
}

export interface AppOptions {
  log?: Logger;
  store?: Store;
}

function toGatewayError(err: FastifyError | GatewayError | Error): GatewayError {
  if (err instanceof GatewayError) return err;
  const fe = err as FastifyError;
  if (fe.validation) {
    const first = fe.validation[0];
    const param = first?.instancePath ? first.instancePath.slice(1).replace(/\//g, '.') : null;
    return new GatewayError('invalid_request', { message: `Invalid request: ${fe.message}`, param });
  }
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

function sendError(reply: FastifyReply, error: GatewayError, requestId: string): void {
  // A Buffer, so that Fastify sends the content type exactly as the relay path does.
  reply
    .code(error.status)
    .headers({ ...error.headers, 'content-type': 'application/json', 'x-request-id': requestId, 'x-keyrelay-request-id': requestId })
    .send(Buffer.from(errorBody(error)));
}

export async function buildApp(config: Config, options: AppOptions = {}): Promise<FastifyInstance> {
  const log = options.log ?? createLogger(config.logLevel);
  const store = options.store ?? (await createStore(config, log));
  const services: Services = { config, log, store, pool: new Pool(config), outbound: createOutbound(config) };
  let closing = false;

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // The relay writes its own line per request (one line, one request).
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Room for an oversized Authorization header to reach the 401 of RELIABILITY.md case 1.
    http: { maxHeaderSize: 64 * 1024 },
    routerOptions: { maxParamLength: 2048 },
    return503OnClosing: false,
    // Errors Fastify raises before routing (a malformed URL, a bad header) get the same shape.
    frameworkErrors: (err, request, reply) => {
      const error = err.code === 'FST_ERR_BAD_URL' ? new GatewayError('invalid_path', { cause: err }) : toGatewayError(err);
      reply.header('connection', 'close');
      sendError(reply, error, request.id);
    },
    // KEYRELAY_TLS_CERT/KEY: serve HTTPS and WSS directly. Fastify's types tie `https` to a
    // different server type; the request path is the same either way.
    ...(config.tls ? { https: { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) } } : {}),
  }) as unknown as FastifyInstance;

  app.decorateRequest('target', null as unknown as Target);
  app.decorateRequest('caller', null);

  // One check of the raw target for every route, before routing decisions matter.
  app.addHook('onRequest', async (request) => {
    request.target = checkTarget(request.raw.url ?? '');
  });

  app.setErrorHandler((err: FastifyError | GatewayError, request, reply) => {
    const error = toGatewayError(err);
    if (error.status >= 500) request.log.error({ err: error.cause ?? error, requestId: request.id }, 'request failed');
    // An unread body would be drained by Node after the answer; close instead of reading it.
    if (!request.raw.complete) reply.header('connection', 'close');
    sendError(reply, error, request.id);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.target?.path ?? '';
    sendError(reply, new GatewayError('unknown_url', { message: `Unknown request URL: ${request.method} ${path}.` }), request.id);
  });

  await app.register(healthPlugin, { ...services, isClosing: () => closing });
  if (config.adminToken) await app.register(adminPlugin, { ...services, prefix: '/admin' });
  await app.register(relayPlugin, services);

  const onUpgrade = createUpgradeHandler({ ...services, newRequestId: () => randomUUID() });
  app.server.on('upgrade', onUpgrade);

  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onClose', async () => {
    app.server.off('upgrade', onUpgrade);
    await services.outbound.close();
    await store.close();
  });
  return app;
}
