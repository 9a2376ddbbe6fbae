// The relay of every method and path under /v1. Bodies are not parsed by Fastify: the route takes
// the raw request over (RELIABILITY.md 30: sizes are enforced as bytes arrive).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import { type Estimate, estimateRequest } from '../quota/estimate.js';
import { QuotaGate } from '../quota/gate.js';
import { askForUsage } from '../quota/include-usage.js';
import { PriceTable } from '../quota/prices.js';
import { readRequestBody } from '../relay/body.js';
import { type RelayResult, relay } from '../relay/forward.js';
import { UsageTap } from '../relay/usage-tap.js';
import type { Services } from '../services.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const UNMETERED: Estimate = { promptTokens: 0, maxOutputTokens: 0, metered: false };
const NOTHING = { input: 0, cachedInput: 0, output: 0 };

export async function relayPlugin(app: FastifyInstance, services: Services): Promise<void> {
  const { config, store, pool, outbound } = services;
  const quota = new QuotaGate({ store, prices: new PriceTable(config.prices), leaseMs: config.quota.leaseMs, log: services.log });

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
    const route = request.target.path.slice(3);
    const estimate =
      request.method === 'POST' ? estimateRequest(route, body.kind === 'buffered' ? body.json : undefined, facts, config.quota.defaultMaxOutputTokens) : UNMETERED;
    const ticket = await quota.admit(caller.user, request.id, estimate);
    const choice = pool.select(facts.model);
    if (!choice) {
      await quota.settle(ticket, undefined);
      throw new GatewayError('no_upstream_key_available', { headers: { 'retry-after': '60' } });
    }

    const asked = askForUsage(route, body);
    const tap = new UsageTap({ stripUsage: asked !== undefined, watch: estimate.metered });
    reply.hijack();
    const started = performance.now();
    let result: RelayResult;
    try {
      result = await relay({
        req: request.raw,
        res: reply.raw,
        requestId: request.id,
        method: request.method,
        rest: route + request.target.search,
        body: asked ?? body,
        choice,
        dispatcher: outbound.dispatcherFor(choice),
        timeouts: config.timeouts,
        extraHeaders: ticket.headers,
        tap,
      });
    } catch (err) {
      await quota.settle(ticket, undefined);
      throw err;
    }
    // Upstream errors and answers that never came release the reservation in full.
    const measured = tap.measure(() => estimate.promptTokens);
    const charge = await quota.settle(ticket, measured && !estimate.metered ? { usage: NOTHING, estimated: false } : measured);
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
        tokens: charge?.tokens,
        usage: charge && estimate.metered ? charge.usage : undefined,
        costMicros: charge?.micros,
        usageEstimated: charge?.estimated || undefined,
        err: result.error ? { code: result.error.code, cause: String((result.error.cause as Error | undefined)?.message ?? '') } : undefined,
      },
      'request',
    );
  }

  app.route({ method: METHODS, url: '/v1/*', handler });
}
