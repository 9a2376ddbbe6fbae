// The relay of every method and path under /v1: the key's caller, the body read as it arrives
// (docs/reliability.md, case 30: sizes are enforced as bytes arrive), the model check, the objects it names,
// admission against the user's limits, the relay across the pool, and the settle and the record.
// Requests reach it through the lane (lane.ts), or through Fastify (src/plugins/relay.ts), matched
// to their operation (src/operations/match.ts): every decision here reads that match.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Caller, authenticateRequest } from '../auth.js';
import { ALLOWED_ROUTE_USD } from '../config.js';
import { GatewayError } from '../errors.js';
import { userRefusal } from '../inbound/cors.js';
import { modelAllowed, modelRefused } from '../models.js';
import type { Observation } from '../observability/observation.js';
import type { TokenCounts } from '../observability/record.js';
import type { Permission } from '../operations/costs.js';
import type { Operation } from '../operations/match.js';
import { FORM_ID_FIELDS, createsObjects, deletedByOperation, listedObjectKind, revealsOwnObjects } from '../pool/object-operations.js';
import { idsInOperation } from '../pool/objects.js';
import { decideModel } from '../pool/aliases.js';
import { checkCostBound, effectiveModel } from '../quota/bounds.js';
import { estimateRequest } from '../quota/estimate.js';
import type { Charge } from '../quota/gate.js';
import { LaterLedger } from '../quota/later.js';
import { askForUsage } from '../quota/include-usage.js';
import type { Services } from '../services.js';
import { type RelayOutcome, relay } from './attempts.js';
import { affinityOf } from './affinity.js';
import { AnswerUnits } from './answer-units.js';
import { hasBody, mediaType, readRequestBody } from './body.js';
import { chargeFor } from './charge.js';
import { joinTaps } from './forward.js';
import { type ObjectAccess, filterList, pinnedKey } from './object-access.js';
import { type ObjectSlots, holdObjectSlot } from './object-slots.js';
import { objectTapFor } from './object-tap.js';
import type { Target } from './path.js';
import { type LaterContext, type LaterPlan, afterLater, chargedLater, laterTapFor, ownEstimate, planLater } from './later-route.js';
import type { Reservation } from '../store/types.js';
import { servedAliases, withAliases } from './model-list.js';
import { withModel } from './model-sent.js';
import { UsageTap } from './usage-tap.js';
import { checkUpstreamRoute } from './upstream-target.js';

export const RELAY_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

/** Written out rather than spread: a spread of a small object costs more than its fields here. */
const tokenCounts = (charge: Charge): TokenCounts => ({
  input: charge.usage.input,
  cachedInput: charge.usage.cachedInput,
  output: charge.usage.output,
  estimated: charge.estimated,
});

/** A list of owned objects is filtered per user; so is a list answer of an operation the table does
 * not know, which shows only the caller's own objects (or shared ones). */
const filtersList = (operation: Operation, method: string): boolean =>
  listedObjectKind(operation) !== undefined || (operation.template === undefined && method === 'GET');

/** A body the operation does not take (JSON sent as text/plain, or with no type at all) would be
 * read one way here and maybe another upstream: refused on operations that cost. */
function checkBodyType(operation: Operation, req: IncomingMessage): void {
  const type = mediaType(req.headers['content-type']);
  if (operation.requestTypes.length === 0 || operation.requestTypes.includes(type) || (type === '' && !hasBody(req))) return;
  throw new GatewayError('invalid_request', {
    message: `${operation.id} takes ${operation.requestTypes.join(' or ')}, not ${type || 'a body without a Content-Type'}.`,
  });
}

/** GET /models shows a user with a model list only the models they may use. */
const modelsShown = (operation: Operation, user: Caller['user']): ((id: string) => boolean) | undefined =>
  operation.id === 'listModels' && (user.models?.length ?? 0) > 0 ? (id) => modelAllowed(user, id) : undefined;

/** The model a request names for an alias to apply to: its body's, or the path's of GET /models/{model}
 * (docs/models.md: a DELETE of a model is never aliased; it removes the name it names). */
const namedModel = (operation: Operation, named: string | undefined): string | undefined =>
  named ?? (operation.id === 'retrieveModel' ? operation.params.model : undefined);

/** One /v1 request as the relay sees it, whichever way it arrived (Fastify, or the lane). */
export interface RelayCall {
  id: string;
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  target: Target;
  /** The operation the request matched at the door. */
  operation: Operation;
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
  const slots: ObjectSlots = { owners: store.objectOwners, max: config.pool.maxObjectsPerUser, leaseMs: config.quota.leaseMs, log: services.log };
  const allowedMicros = (permission: Permission): number =>
    Math.round((config.quota.allowedRouteUsd?.[permission] ?? ALLOWED_ROUTE_USD[permission]) * 1_000_000);
  const { prices, quota } = services;

  const laterCtx: LaterContext = { later: new LaterLedger({ store, prices, log: services.log }), objects, pool, outbound, config, prices, log: services.log };

  /** A list answer as the user may see it; GET /models with the user's aliases (model-list.ts). */
  async function listFor(operation: Operation, caller: Caller, bytes: Buffer): Promise<Buffer | undefined> {
    const shown = await filterList(objects, caller.user.id, listedObjectKind(operation), bytes, modelsShown(operation, caller.user));
    if (operation.id !== 'listModels' || config.models.list !== 'merged') return shown;
    return withAliases(shown ?? bytes, bytes, servedAliases(pool), (id) => modelAllowed(caller.user, id)) ?? shown;
  }

  async function handle(call: RelayCall): Promise<void> {
    const { caller, observation, method, operation } = call;
    // First of all: a key used from a page its user does not allow costs nothing and goes nowhere.
    const refusal = userRefusal(caller.user, call.req.headers.origin);
    if (refusal) throw refusal;
    if (operation.admin && !config.relay.allowOrganizationRoutes) {
      throw new GatewayError('route_not_allowed', {
        message: `${operation.id} needs an organization admin key; this gateway does not relay it to its users (relay.allowOrganizationRoutes).`,
      });
    }
    const costs = operation.cost.kind !== 'free';
    if (costs) checkBodyType(operation, call.req);
    const body = await readRequestBody(call.req, config.limits, costs, FORM_ID_FIELDS[operation.id]);
    observation.sawBody(body);
    const json = body.kind === 'buffered' ? body.json : undefined;
    // A body too large to parse was read in one pass: its ids and prompt sizes come from there.
    const digest = body.kind === 'buffered' ? body.digest : undefined;
    const facts = body.kind === 'none' ? {} : body.facts;
    const model = effectiveModel(operation, facts.model, facts.modelHidden);
    // First whether the user may call the operation at all (an operation refused unless allowed).
    checkCostBound(caller.user, operation, model, { json, whole: json !== undefined && digest === undefined });
    // GET /models/{model} too: the list hides a model the user may not use, and an alias's target.
    const checked = namedModel(operation, model);
    if (checked !== undefined && !modelAllowed(caller.user, checked)) throw modelRefused(caller.user, checked);
    // Which key holds this request's prompt cache, from the body as parsed above (docs/key-pool.md).
    const affinity = pool.cacheAffinity ? affinityOf(operation, json, digest === undefined, caller.user.id) : undefined;
    const userId = caller.user.id;
    const path = call.target.path;
    const route = path.slice(3);
    // Before admission: a request for another user's object costs nothing.
    const pinned = await pinnedKey(objects, userId, operation, idsInOperation(operation, path), json, digest?.ids ?? facts.form?.ids);
    // Before admission too: a user who may create no more objects is refused at no cost. The slot
    // is held until the answer is done, whichever way it ends (the objects it made are recorded by
    // then), or the request fails before it is sent.
    if (createsObjects(operation, json)) {
      const release = await holdObjectSlot(slots, userId, call.id);
      if (call.res.closed) release();
      else call.res.once('close', release);
    }
    // Once: the public model (routing, allowed models, the log's `model`) and the upstream's (the
    // bytes sent, prices, the log's `upstreamModel`); what follows reads this (src/pool/aliases.ts).
    const models = decideModel(pool, namedModel(operation, facts.model), pinned?.upstreamId);
    observation.modelSent(models);
    // A route the upstream's kind has not (Azure's classic API) is refused before admission, at no cost.
    checkUpstreamRoute(pool, operation, route + call.target.search, models.upstream ?? facts.model, pinned);
    const priced = models.aliased ? models.upstream : model;
    const estimate = estimateRequest(operation.cost, priced, json, facts, config.quota.defaultMaxOutputTokens, digest?.sizes, quota.priceOf(priced), allowedMicros);
    // A batch or a background response: the request itself takes its rpm and concurrency; its
    // worst case is reserved apart, until the work is seen ended (src/quota/later.ts).
    const deferred = chargedLater(operation, json);
    const ticket = await quota.admit(caller.user, call.id, ownEstimate(estimate, deferred));
    let plan: LaterPlan | undefined;
    let reservation: Reservation | undefined;
    if (deferred) {
      try {
        plan = await planLater(laterCtx, operation, caller.user, json, estimate, pinned);
        if (plan) reservation = await laterCtx.later.reserve(caller.user, call.id, plan.kind, plan.model, plan.worst);
      } catch (err) {
        // Refused before anything reached the upstream: a request all the same (its rpm is kept).
        await quota.settle(ticket, { usage: { input: 0, cachedInput: 0, output: 0 }, estimated: false });
        throw err;
      }
    }
    const laterTap = laterTapFor(operation, plan);

    const sent = models.aliased && facts.model !== undefined ? withModel(body, models.upstream as string) : body;
    const asked = askForUsage(operation.id, sent);
    const usageTap = new UsageTap({ stripUsage: asked !== undefined, watch: estimate.metered });
    // Images and seconds the answer shows outside its usage (a dall-e-* answer, a verbose transcript).
    const answerUnits = estimate.units ? new AnswerUnits({ images: estimate.units.images !== undefined, duration: estimate.units.seconds !== undefined }) : undefined;
    // Pinned: every object the request names is the caller's (for a job's GET, the job).
    const revealsObjects = pinned !== undefined && revealsOwnObjects(operation);
    const objectTap = objectTapFor({
      owners: store.objectOwners,
      log: services.log,
      method,
      operation: operation.id,
      request: json,
      revealsObjects,
      deletes: deletedByOperation(operation, method),
    });
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
          rest: (models.aliased && facts.model === undefined ? `/models/${encodeURIComponent(models.upstream as string)}` : route) + call.target.search,
          body: asked ?? sent,
          model: models.aliased ? models.public : facts.model,
          upstreamModel: models.upstream ?? facts.model,
          operation,
          privileged: operation.admin,
          pinned,
          affinity,
          extraHeaders: ticket.headers,
          tap: (choice) =>
            observation.tap(
              joinTaps(joinTaps(laterTap ? joinTaps(usageTap, laterTap) : usageTap, answerUnits), objectTap?.({ userId, upstreamId: choice.upstream.id, keyId: choice.key.id })),
            ),
          filterList: filtersList(operation, method) ? (bytes) => listFor(operation, caller, bytes) : undefined,
        },
        deps,
      );
    } catch (err) {
      await quota.settle(ticket, undefined);
      if (plan && reservation) await laterCtx.later.settle(plan.kind, reservation, plan.model, undefined);
      observation.finish({ userId, keyId: caller.key.id, status: 500, outcome: 'error', bytesOut: 0, errorMessage: (err as Error).message });
      throw err;
    }
    // Upstream errors release the reservation in full; a client that went away is charged (charge.ts).
    const charge = await quota.settle(ticket, chargeFor(result, usageTap, ownEstimate(estimate, deferred), facts.stream === true, answerUnits));
    if (laterTap) {
      await afterLater({ ctx: laterCtx, operation, user: caller.user, requestId: call.id, observation, plan, reservation, tap: laterTap, result }).catch((err: unknown) =>
        services.log.error({ err, requestId: call.id }, 'charge made later failed'),
      );
    }
    observation.finish({
      userId,
      keyId: caller.key.id,
      poolKeyId: result.choice?.key.id,
      upstream: result.choice?.upstream.id,
      affinity: result.choice?.affinity,
      status: result.status,
      outcome: result.outcome,
      retries: Math.max(0, result.attempts - 1),
      tried: result.tried.length > 0 ? result.tried : undefined,
      ttfbMs: result.ttfbMs,
      bytesOut: result.bytesOut,
      // Work charged later has a record of its own for its charge (src/quota/later.ts).
      tokens: charge && estimate.metered && !deferred ? tokenCounts(charge) : undefined,
      costMicros: charge && estimate.metered && !deferred ? charge.micros : undefined,
      errorCode: result.error?.code,
      errorMessage: result.error ? String((result.error.cause as Error | undefined)?.message ?? '') || undefined : undefined,
    });
  }

  return {
    authenticate: (req) =>
      authenticateRequest(store, req).catch((err: unknown) => {
        if (err instanceof GatewayError && err.code === 'quota_backend_unavailable') services.metrics.storeFailed('auth');
        throw err;
      }),
    handle,
  };
}
