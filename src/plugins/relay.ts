// The relay of every method and path under /v1. Bodies are not parsed by Fastify: the route takes
// the raw request over (RELIABILITY.md 30: sizes are enforced as bytes arrive).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import { readRequestBody } from '../relay/body.js';
import { relay } from '../relay/forward.js';
import type { Services } from '../services.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

export async function relayPlugin(app: FastifyInstance, services: Services): Promise<void> {
  const { config, store, pool, outbound } = services;

  // Leave the body stream untouched for the handler.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.addHook('onRequest', async (request) => {
    request.caller = await authenticate(store, bearerToken(request.raw));
  });

  async function handler(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const caller = request.caller;
    if (!caller) throw new GatewayError('invalid_api_key');
    const body = await readRequestBody(request.raw, config.limits);
    const facts = body.kind === 'buffered' ? body.facts : {};
    if (facts.model !== undefined && !modelAllowed(caller.user, facts.model)) {
      throw new GatewayError('model_not_allowed', { param: 'model' });
    }
    const choice = pool.select(facts.model);
    if (!choice) throw new GatewayError('no_upstream_key_available', { headers: { 'retry-after': '60' } });

    reply.hijack();
    const started = performance.now();
    const result = await relay({
      req: request.raw,
      res: reply.raw,
      requestId: request.id,
      method: request.method,
      rest: request.target.path.slice(3) + request.target.search,
      body,
      choice,
      dispatcher: outbound.dispatcherFor(choice),
      timeouts: config.timeouts,
    });
    request.log.info(
      {
        requestId: request.id,
        userId: caller.user.id,
        keyId: caller.key.id,
        poolKeyId: choice.key.id,
        upstream: choice.upstream.id,
        method: request.method,
        route: request.target.path,
        model: facts.model,
        stream: facts.stream ?? false,
        status: result.status,
        outcome: result.outcome,
        ttfbMs: result.ttfbMs === undefined ? undefined : Math.round(result.ttfbMs * 10) / 10,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        bytesOut: result.bytesOut,
        err: result.error ? { code: result.error.code, cause: String((result.error.cause as Error | undefined)?.message ?? '') } : undefined,
      },
      'request',
    );
  }

  app.route({ method: METHODS, url: '/v1/*', handler });
}
