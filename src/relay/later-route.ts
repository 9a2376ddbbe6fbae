// The request path's side of charges made later (src/quota/later.ts), called by route.ts:
//   plan()    before admission: a batch's input file is read and checked (batch-input.ts); a
//             background response's worst case is its estimate.
//   reserve() after the request's own admission: the worst case, under a lease of its own.
//   tapFor()  the answers worth reading: the create's, and those that may show the work ended
//             (a batch retrieved, listed or cancelled; a response retrieved, streamed or cancelled).
//   after()   once the answer is out: keeps the record of work that runs on, charges work that
//             has ended (taking its record once, across processes), releases a create that failed.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import type { Observation } from '../observability/observation.js';
import { type Operation, matchOperation } from '../operations/match.js';
import type { Pool, PoolChoice, SelectRequest } from '../pool/pool.js';
import type { Estimate } from '../quota/estimate.js';
import type { LaterKind, LaterLedger, LaterRecord, LaterUsage } from '../quota/later.js';
import type { PriceTable } from '../quota/prices.js';
import type { TokenUsage } from '../quota/usage.js';
import type { Reservation, User } from '../store/types.js';
import type { RelayOutcome } from './attempts.js';
import { checkBatchInput } from './batch-input.js';
import { batchOutputUsage, readableUsage } from './batch-output.js';
import { LaterTap } from './later-tap.js';
import { type ObjectAccess, pinnedKey } from './object-access.js';
import type { Outbound } from './outbound.js';
import { upstreamGet } from './upstream-get.js';
import { isObject } from '../json-object.js';

export interface LaterPlan {
  kind: LaterKind;
  model?: string;
  worst: TokenUsage;
  requests?: number;
}

export interface LaterContext {
  later: LaterLedger;
  /** Who owns what: the objects a batch's lines name are checked as a request's are. */
  objects?: ObjectAccess;
  pool: Pool;
  outbound: Outbound;
  config: Config;
  prices: PriceTable;
  log: Logger;
}

type Json = Record<string, unknown>;

const BATCH_ENDED = new Set(['completed', 'failed', 'expired', 'cancelled']);
const RESPONSE_ENDED = new Set(['completed', 'failed', 'incomplete', 'cancelled']);
const RESPONSE_RUNNING = new Set(['queued', 'in_progress']);
const BATCH_SIGHTINGS = new Set(['retrieveBatch', 'listBatches', 'cancelBatch']);
const RESPONSE_SIGHTINGS = new Set(['getResponse', 'cancelResponse']);
const RESPONSE_CREATES = new Set(['createResponse']);

const dollarLimited = (user: User): boolean => user.limits.usdPerDay !== undefined || user.limits.usdPerMonth !== undefined;

/** The pool key a batch's input file is read with: the file's own, else the default upstream's. */
function fileKey(pool: Pool, pinned: SelectRequest['pinned']): PoolChoice {
  const choice = pinned ? pool.find(pinned.upstreamId, pinned.keyId) : pool.select(undefined);
  if (!choice) throw new GatewayError('no_upstream_key_available');
  return choice;
}

async function planBatch(ctx: LaterContext, user: User, json: Json | undefined, pinned: SelectRequest['pinned']): Promise<LaterPlan> {
  const fileId = json?.input_file_id;
  if (typeof fileId !== 'string' || fileId === '') throw new GatewayError('invalid_request', { param: 'input_file_id', message: 'input_file_id must name an uploaded file.' });
  const choice = fileKey(ctx.pool, pinned);
  let answer;
  try {
    answer = await upstreamGet(ctx.outbound, ctx.config.timeouts, choice, `/files/${encodeURIComponent(fileId)}/content`);
  } catch (err) {
    throw new GatewayError('upstream_unreachable', { message: 'The batch\'s input file could not be read from the upstream.', cause: err });
  }
  if (answer.status !== 200) {
    answer.body.destroy();
    if (answer.status >= 500) throw new GatewayError('upstream_unreachable', { message: `The upstream answered ${answer.status} to reading the batch's input file.` });
    throw new GatewayError('invalid_request', { param: 'input_file_id', message: `The batch's input file could not be read (the upstream answered ${answer.status}).` });
  }
  const endpoint = typeof json?.endpoint === 'string' ? json.endpoint : '';
  const objects = ctx.objects;
  // A line runs on the batch's key, as its user: the objects it names must be theirs, on that key.
  const checkObjects = objects && endpoint.startsWith('/v1/')
    ? async (body: Json, line: number): Promise<void> => {
        const lineKey = await pinnedKey(objects, user.id, matchOperation('POST', endpoint), [], body);
        if (lineKey && (lineKey.upstreamId !== choice.upstream.id || lineKey.keyId !== choice.key.id)) {
          throw new GatewayError('invalid_request', {
            param: 'input_file_id',
            message: `Line ${line} of the input file names objects created with another upstream key than the batch's input file: the batch could not use them.`,
          });
        }
      }
    : undefined;
  const found = await checkBatchInput(answer.body, {
    user,
    endpoint,
    checkObjects,
    prices: ctx.prices,
    defaultMaxOutput: ctx.config.quota.defaultMaxOutputTokens,
    dollarLimited: dollarLimited(user),
    isAlias: (model) => choice.upstream.modelFor(model) !== model,
  });
  return { kind: 'batch', model: found.model, worst: found.worst, requests: found.requests };
}

/** The request's cost is reserved and charged later: a batch, or a background response. */
export function chargedLater(operation: Operation, json: Json | undefined): boolean {
  return operation.cost.kind === 'later' || (RESPONSE_CREATES.has(operation.id) && json?.background === true);
}

/** What the request will be charged later, or undefined for a request charged as it is answered. */
export async function planLater(
  ctx: LaterContext,
  operation: Operation,
  user: User,
  json: Json | undefined,
  estimate: Estimate,
  pinned: SelectRequest['pinned'],
): Promise<LaterPlan | undefined> {
  if (operation.cost.kind === 'later') return planBatch(ctx, user, json, pinned);
  if (RESPONSE_CREATES.has(operation.id) && json?.background === true) {
    return { kind: 'response', model: estimate.model, worst: { input: estimate.promptTokens, cachedInput: 0, output: estimate.maxOutputTokens } };
  }
  return undefined;
}

/** A request's own admission when its cost is reserved later: its rpm and concurrency, no tokens. */
export function ownEstimate(estimate: Estimate, later: boolean): Estimate {
  return later ? { model: estimate.model, promptTokens: 0, maxOutputTokens: 0, metered: false } : estimate;
}

export function laterTapFor(operation: Operation, plan: LaterPlan | undefined): LaterTap | undefined {
  return plan || BATCH_SIGHTINGS.has(operation.id) || RESPONSE_SIGHTINGS.has(operation.id) ? new LaterTap() : undefined;
}

export interface LaterEnd {
  ctx: LaterContext;
  operation: Operation;
  user: User;
  requestId: string;
  observation: Observation;
  plan: LaterPlan | undefined;
  reservation: Reservation | undefined;
  tap: LaterTap | undefined;
  result: RelayOutcome;
}

const scaled = (u: TokenUsage, part: number): TokenUsage => ({
  input: Math.ceil(u.input * part),
  cachedInput: 0,
  output: Math.ceil(u.output * part),
});

/** The usage of an ended batch: its output file's, read with the batch's pool key. If the output
 * cannot be read, the share of the worst case its completed requests stand for, marked estimated. */
async function endedBatchUsage(ctx: LaterContext, record: LaterRecord, batch: Json): Promise<LaterUsage> {
  const counts = isObject(batch.request_counts) ? batch.request_counts : {};
  const completed = typeof counts.completed === 'number' && counts.completed >= 0 ? counts.completed : (record.requests ?? 1);
  const fallback = (): LaterUsage => ({ usage: scaled(record.worst ?? { input: 0, cachedInput: 0, output: 0 }, Math.min(1, completed / Math.max(1, record.requests ?? 1))), estimated: true });
  const outputId = batch.output_file_id;
  if (typeof outputId !== 'string' || outputId === '') return completed === 0 ? { usage: { input: 0, cachedInput: 0, output: 0 }, estimated: false } : fallback();
  const choice = ctx.pool.find(record.upstreamId, record.keyId);
  if (!choice) return fallback();
  try {
    const answer = await upstreamGet(ctx.outbound, ctx.config.timeouts, choice, `/files/${encodeURIComponent(outputId)}/content`);
    if (answer.status !== 200) {
      answer.body.destroy();
      return fallback();
    }
    const lines = Math.max(1, record.requests ?? 1);
    return batchOutputUsage(answer.body, scaled(record.worst ?? { input: 0, cachedInput: 0, output: 0 }, 1 / lines));
  } catch (err) {
    ctx.log.warn({ err, createdBy: record.createdBy }, 'batch output unreadable: charged its completed share of the worst case');
    return fallback();
  }
}

async function chargeEnded(end: LaterEnd, kind: LaterKind, id: string, used: (record: LaterRecord) => Promise<LaterUsage | undefined>): Promise<void> {
  const { ctx, observation, requestId } = end;
  const record = await ctx.later.take(kind, id);
  if (!record) return;
  observation.recordCharge(await ctx.later.charge(record, await used(record), requestId));
}

/** An ended response's usage; none (a response cancelled before it ran) charges nothing, and one
 * that cannot be read (negative, absurd) charges the worst case, marked estimated. */
function responseUsage(response: Json, worst: TokenUsage | undefined): LaterUsage | undefined {
  if (response.usage === undefined || response.usage === null) return undefined;
  const usage = readableUsage(response.usage);
  if (usage) return { usage, estimated: false };
  return worst && { usage: worst, estimated: true };
}

/** After the answer: keep, charge or release what the request's answer says. */
export async function afterLater(end: LaterEnd): Promise<void> {
  const { ctx, operation, tap, plan, reservation } = end;
  if (plan && reservation) return afterCreate(end, plan, reservation);
  const answer = tap?.json();
  if (BATCH_SIGHTINGS.has(operation.id)) {
    const batches = isObject(answer) && Array.isArray(answer.data) ? answer.data : [answer];
    for (const batch of batches) {
      if (!isObject(batch) || typeof batch.id !== 'string' || !BATCH_ENDED.has(String(batch.status))) continue;
      await chargeEnded(end, 'batch', batch.id, (record) => endedBatchUsage(ctx, record, batch));
    }
    return;
  }
  if (RESPONSE_SIGHTINGS.has(operation.id)) {
    const id = operation.params.response_id;
    if (id === undefined) return;
    const streamed = tap?.streamedUsage();
    if (streamed) return chargeEnded(end, 'response', id, async () => ({ usage: streamed, estimated: false }));
    if (isObject(answer) && RESPONSE_ENDED.has(String(answer.status))) return chargeEnded(end, 'response', id, async (record) => responseUsage(answer, record.worst));
  }
}

async function afterCreate(end: LaterEnd, plan: LaterPlan, reservation: Reservation): Promise<void> {
  const { ctx, tap, result, user, requestId, operation, observation } = end;
  const answer = tap?.json();
  const record = (objectId: string): LaterRecord => ({
    kind: plan.kind,
    userId: user.id,
    reservation,
    model: plan.model,
    createdBy: requestId,
    operation: operation.id,
    upstreamId: result.choice?.upstream.id ?? '',
    keyId: result.choice?.key.id ?? '',
    requests: plan.requests,
    worst: plan.worst,
  });
  const settleNow = async (used: LaterUsage | undefined) => {
    const charged = await ctx.later.charge(record(''), used, requestId);
    if (used) observation.recordCharge(charged);
  };
  if (plan.kind === 'batch') {
    if (isObject(answer) && typeof answer.id === 'string') return ctx.later.keep(answer.id, record(answer.id));
    // Accepted, but its id was not read (an answer cut off): the batch may run unseen, so its
    // worst case is charged now. Else no batch was made: nothing runs, nothing is charged.
    if ((result.status >= 200 && result.status < 300) || result.reachedUpstream) return settleNow({ usage: plan.worst, estimated: true });
    return void (await ctx.later.settle('batch', reservation, plan.model, undefined));
  }
  // A background response streamed in the create's own answer ends there, usage and all.
  const streamed = tap?.streamedUsage();
  if (streamed) return settleNow({ usage: streamed, estimated: false });
  if (isObject(answer) && typeof answer.id === 'string') {
    if (RESPONSE_RUNNING.has(String(answer.status))) return ctx.later.keep(answer.id, record(answer.id));
    return settleNow(responseUsage(answer, plan.worst));
  }
  if (result.status >= 200 && result.status < 300 || result.reachedUpstream) {
    // Accepted, but the answer was not read to its end (a stream cut off, a client gone): the
    // response may run on unseen, so its worst case is charged now.
    return settleNow({ usage: plan.worst, estimated: true });
  }
  await ctx.later.settle('response', reservation, plan.model, undefined);
}
