// The relay of every method and path under /v1: the key's caller, the body read as it arrives
// (RELIABILITY.md 30: sizes are enforced as bytes arrive), the model check, the objects it names,
// admission against the user's limits, the relay across the pool, and the settle and the record.
// Requests reach it through the lane (lane.ts), or through Fastify (src/plugins/relay.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Caller, authenticate, bearerToken } from '../auth.js';
import { GatewayError } from '../errors.js';
import { modelAllowed } from '../models.js';
import type { Observation } from '../observability/observation.js';
import type { TokenCounts } from '../observability/record.js';
import { listedObjectKind } from '../pool/objects.js';
import { type Estimate, estimateRequest } from '../quota/estimate.js';
import { type Charge, QuotaGate } from '../quota/gate.js';
import { askForUsage } from '../quota/include-usage.js';
import { PriceTable } from '../quota/prices.js';
import type { Services } from '../services.js';
import { type RelayOutcome, relay } from './attempts.js';
import { readRequestBody } from './body.js';
import { chargeFor } from './charge.js';
import { joinTaps } from './forward.js';
import { type ObjectAccess, filterList, pinnedKey } from './object-access.js';
import { objectTapFor } from './object-tap.js';
import type { Target } from './path.js';
import { UsageTap } from './usage-tap.js';

export const RELAY_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const UNMETERED: Estimate = { promptTokens: 0, maxOutputTokens: 0, metered: false };

/** Written out rather than spread: a spread of a small object costs more than its fields here. */
const tokenCounts = (charge: Charge): TokenCounts => ({
  input: charge.usage.input,
  cachedInput: charge.usage.cachedInput,
  output: charge.usage.output,
  estimated: charge.estimated,
});

/** One /v1 request as the relay sees it, whichever way it arrived (Fastify, or the lane). */
export interface RelayCall {
  id: string;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  target: Target;
  caller: Caller;
  observation: Observation;
  /** Called once the relay writes the answer itself (Fastify's reply.hijack()). */
  takeOver(): void;
}

export interface RelayRoute {
  /** The caller of the request's gateway key, or the 401 (503 when the store is down). */
  authenticate(req: IncomingMessage): Promise<Caller>;
  /** Throws a GatewayError for an answer of the gateway's own, before taking the answer over. */
  handle(call: RelayCall): Promise<void>;
}

export function createRelayRoute(services: Services): RelayRoute {
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

  async function handle(call: RelayCall): Promise<void> {
    const { caller, observation, method } = call;
    const body = await readRequestBody(call.req, config.limits);
    observation.sawBody(body);
    const json = body.kind === 'buffered' ? body.json : undefined;
    const facts = body.kind === 'buffered' ? body.facts : {};
    if (facts.model !== undefined && !modelAllowed(caller.user, facts.model)) {
      throw new GatewayError('model_not_allowed', { param: 'model' });
    }
    const userId = caller.user.id;
    const path = call.target.path;
    const route = path.slice(3);
    // Before admission: a request for another user's object costs nothing.
    const pinned = await pinnedKey(objects, userId, path, json);
    const estimate = method === 'POST' ? estimateRequest(route, json, facts, config.quota.defaultMaxOutputTokens) : UNMETERED;
    const ticket = await quota.admit(caller.user, call.id, estimate);

    const asked = askForUsage(route, body);
    const usageTap = new UsageTap({ stripUsage: asked !== undefined, watch: estimate.metered });
    const objectTap = objectTapFor({ owners: store.objectOwners, log: services.log, method, route, request: json });
    call.takeOver();
    observation.relaying();
    let result: RelayOutcome;
    try {
      result = await relay(
        {
          req: call.req,
          res: call.res,
          requestId: call.id,
          method,
          rest: route + call.target.search,
          body: asked ?? body,
          model: facts.model,
          pinned,
          extraHeaders: ticket.headers,
          tap: (choice) => observation.tap(joinTaps(usageTap, objectTap?.({ userId, upstreamId: choice.upstream.id, keyId: choice.key.id }))),
          filterList: listedObjectKind(method, path) ? (bytes) => filterList(objects, userId, bytes) : undefined,
        },
        deps,
      );
    } catch (err) {
      await quota.settle(ticket, undefined);
      observation.finish({ userId, keyId: caller.key.id, status: 500, outcome: 'error', bytesOut: 0, errorMessage: (err as Error).message });
      throw err;
    }
    // Upstream errors release the reservation in full; a client that went away is charged (charge.ts).
    const charge = await quota.settle(ticket, chargeFor(result, usageTap, estimate, facts.stream === true));
    observation.finish({
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
      tokens: charge && estimate.metered ? tokenCounts(charge) : undefined,
      costMicros: charge && estimate.metered ? charge.micros : undefined,
      errorCode: result.error?.code,
      errorMessage: result.error ? String((result.error.cause as Error | undefined)?.message ?? '') || undefined : undefined,
    });
  }

  return {
    authenticate: (req) =>
      authenticate(store, bearerToken(req)).catch((err: unknown) => {
        if (err instanceof GatewayError && err.code === 'quota_backend_unavailable') services.metrics.storeFailed('auth');
        throw err;
      }),
    handle,
  };
}
