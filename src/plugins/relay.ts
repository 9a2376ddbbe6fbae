// The relay of every method and path under /v1. Bodies are not parsed by Fastify: the route takes
// the raw request over (RELIABILITY.md 30: sizes are enforced as bytes arrive).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authenticate, bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import { listedObjectKind } from '../pool/objects.js';
import { type Estimate, estimateRequest } from '../quota/estimate.js';
import { QuotaGate } from '../quota/gate.js';
import { askForUsage } from '../quota/include-usage.js';
import { PriceTable } from '../quota/prices.js';
import { type RelayOutcome, relay } from '../relay/attempts.js';
import { readRequestBody } from '../relay/body.js';
import { joinTaps } from '../relay/forward.js';
import { type ObjectAccess, filterList, pinnedKey } from '../relay/object-access.js';
import { objectTapFor } from '../relay/object-tap.js';
import { UsageTap } from '../relay/usage-tap.js';
import type { Services } from '../services.js';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const UNMETERED: Estimate = { promptTokens: 0, maxOutputTokens: 0, metered: false };
const NOTHING = { input: 0, cachedInput: 0, output: 0 };

export async function relayPlugin(app: FastifyInstance, services: Services): Promise<void> {
  const { config, store, pool, retry, outbound, masker } = services;
  const deps = { pool, retry, outbound, masker, timeouts: config.timeouts, streams: services.streams };
  const objects: ObjectAccess = { owners: store.objectOwners, shareUnknown: config.pool.shareUnknownObjects };
  const quota = new QuotaGate({
    store,
    prices: new PriceTable(config.prices),
    leaseMs: config.quota.leaseMs,
    log: services.log,
    onStoreError: (operation) => services.metrics.storeFailed(operation),
  });

  // Leave the body stream untouched for the handler.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.addHook('onRequest', async (request) => {
    request.caller = await authenticate(store, bearerToken(request.raw)).catch((err: unknown) => {
      if (err instanceof GatewayError && err.code === 'quota_backend_unavailable') services.metrics.storeFailed('auth');
      throw err;
    });
  });

  async function handler(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const caller = request.caller;
    if (!caller) throw new GatewayError('invalid_api_key');
    const body = await readRequestBody(request.raw, config.limits);
    request.observation.sawBody(body);
    const json = body.kind === 'buffered' ? body.json : undefined;
    const facts = body.kind === 'buffered' ? body.facts : {};
    if (facts.model !== undefined && !modelAllowed(caller.user, facts.model)) {
      throw new GatewayError('model_not_allowed', { param: 'model' });
    }
    const userId = caller.user.id;
    const path = request.target.path;
    const route = path.slice(3);
    // Before admission: a request for another user's object costs nothing.
    const pinned = await pinnedKey(objects, userId, path, json);
    const estimate = request.method === 'POST' ? estimateRequest(route, json, facts, config.quota.defaultMaxOutputTokens) : UNMETERED;
    const ticket = await quota.admit(caller.user, request.id, estimate);

    const asked = askForUsage(route, body);
    const usageTap = new UsageTap({ stripUsage: asked !== undefined, watch: estimate.metered });
    const objectTap = objectTapFor({ owners: store.objectOwners, log: services.log, method: request.method, route, request: json });
    reply.hijack();
    request.observation.relaying();
    let result: RelayOutcome;
    try {
      result = await relay(
        {
          req: request.raw,
          res: reply.raw,
          requestId: request.id,
          method: request.method,
          rest: route + request.target.search,
          body: asked ?? body,
          model: facts.model,
          pinned,
          extraHeaders: ticket.headers,
          tap: (choice) => request.observation.tap(joinTaps(usageTap, objectTap?.({ userId, upstreamId: choice.upstream.id, keyId: choice.key.id }))),
          filterList: listedObjectKind(request.method, path) ? (bytes) => filterList(objects, userId, bytes) : undefined,
        },
        deps,
      );
    } catch (err) {
      await quota.settle(ticket, undefined);
      request.observation.finish({ userId, keyId: caller.key.id, status: 500, outcome: 'error', bytesOut: 0, errorMessage: (err as Error).message });
      throw err;
    }
    // Upstream errors and answers that never came release the reservation in full.
    const measured = usageTap.measure(() => estimate.promptTokens);
    const charge = await quota.settle(ticket, measured && !estimate.metered ? { usage: NOTHING, estimated: false } : measured);
    request.observation.finish({
      userId,
      keyId: caller.key.id,
      poolKeyId: result.choice?.key.id,
      upstream: result.choice?.upstream.id,
      status: result.status,
      outcome: result.outcome,
      retries: Math.max(0, result.attempts - 1),
      tried: result.tried.length > 0 ? result.tried : undefined,
      ttfbMs: result.ttfbMs,
      bytesOut: result.bytesOut,
      tokens: charge && estimate.metered ? { ...charge.usage, estimated: charge.estimated } : undefined,
      costMicros: charge && estimate.metered ? charge.micros : undefined,
      errorCode: result.error?.code,
      errorMessage: result.error ? String((result.error.cause as Error | undefined)?.message ?? '') || undefined : undefined,
    });
  }

  app.route({ method: METHODS, url: '/v1/*', handler });
}
