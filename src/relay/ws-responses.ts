// The Responses socket's dialect (`GET /v1/responses`, docs/websockets.md). Each `response.create`
// is checked as `POST /v1/responses` is: its model against the user's list, the objects it names
// (`previous_response_id`, `conversation`) against their owners (src/relay/object-access.ts), and
// its worst case against the limits. The ids it creates become the user's, on the session's pool
// key; one made on another key cannot be continued here (the upstream would not find it).
// `response.completed`, `response.failed` and `response.incomplete` settle it with their usage.
// A model that is an alias (src/pool/aliases.ts) is checked by its name and sent, and priced, as the
// session's upstream knows it: the create's bytes go on with only that value replaced.
import { GatewayError } from '../errors.js';
import { modelAllowed, modelRefused } from '../models.js';
import { matchOperation } from '../operations/match.js';
import { createsObjects } from '../pool/object-operations.js';
import type { ObjectOwner } from '../pool/object-owners.js';
import { estimateRequest } from '../quota/estimate.js';
import type { User } from '../store/types.js';
import { checkModel, factsOf } from './body.js';
import { type ObjectAccess, pinnedKey } from './object-access.js';
import { type ObjectSlots, holdObjectSlot } from './object-slots.js';
import { eventWithModel } from './model-sent.js';
import { type Pending, type SessionMeter, responsesError } from './ws-meter.js';
import type { ResponseFacts } from './ws-record.js';
import { countedTools, inlineInput } from './ws-seen.js';
import { tooManyInFlight } from './ws-realtime.js';
import type { Dialect, Json, Verdict } from './ws-session.js';
import { isObject } from '../json-object.js';

const CREATE = matchOperation('POST', '/v1/responses');
const SETTLES = new Set(['response.completed', 'response.failed', 'response.incomplete']);
// What the session remembers of its own responses' sizes, to count a continuation's prompt.
const REMEMBERED = 1000;
// Bytes of output per token, for what streamed before a cut (a token is about four bytes of text).
const BYTES_PER_TOKEN = 4;


export interface ResponsesOptions {
  user: User;
  meter: SessionMeter;
  objects: ObjectAccess;
  slots: ObjectSlots;
  /** The pool key the session's upstream connection was opened with. */
  owner: ObjectOwner;
  defaultMaxOutput: number;
  /** The model the session's upstream runs for a name the client gave (an alias's target, else the name). */
  modelFor: (model: string) => string;
  /** Told of each create the gateway refused (the kept request log). */
  refused?: (error: GatewayError, response: ResponseFacts) => void;
}

export class ResponsesDialect implements Dialect {
  readonly clientTypes = new Set(['response.create']);
  readonly upstreamTypes = new Set(['response.created', ...SETTLES, 'error', 'response.output_text.delta', 'response.refusal.delta', 'response.reasoning_text.delta', 'response.function_call_arguments.delta']);
  readonly audioBytesPerToken = BYTES_PER_TOKEN;
  /** Tokens of the conversation each response of this session ends (its input plus output). */
  private readonly sizes = new Map<string, number>();
  /** Object slots held by creates in flight, by the gateway's request id. */
  private readonly slotReleases = new Map<string, () => void>();
  private slotCount = 0;
  private refusedCount = 0;

  constructor(private readonly o: ResponsesOptions) {}

  refusal(error: GatewayError, event: Json | undefined): Buffer {
    return responsesError(error, event?.stream_id);
  }

  async client(type: string | undefined, event: Json | undefined, _size: number, message: Buffer): Promise<Verdict> {
    if (type !== 'response.create' || !event) return { forward: true };
    const at = Date.now();
    try {
      const pending = await this.create(event);
      const payload = pending.named === undefined ? undefined : eventWithModel(message, ['model'], pending.model as string);
      return { forward: true, payload, relayed: () => void (pending.relayed = true) };
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err;
      const model = typeof event.model === 'string' ? event.model : undefined;
      this.o.refused?.(err, { requestId: `${this.o.meter.sessionId}.refused${++this.refusedCount}`, at, model });
      return { forward: false, reply: this.refusal(err, event) };
    }
  }

  private async create(event: Json): Promise<Pending> {
    const { user, meter } = this.o;
    if (meter.full) throw tooManyInFlight();
    const facts = factsOf(event);
    const named = facts.model === undefined ? undefined : checkModel(facts.model);
    if (named !== undefined && !modelAllowed(user, named)) throw modelRefused(user, named);
    const restricted = (user.models?.length ?? 0) > 0 || user.limits?.usdPerDay !== undefined || user.limits?.usdPerMonth !== undefined;
    if (named === undefined && restricted) throw new GatewayError('model_not_allowed', { param: 'model', message: 'Name the model of each `response.create`: this key has a model list or a dollar limit.' });
    const pinned = await pinnedKey(this.o.objects, user.id, CREATE, [], event);
    if (pinned && (pinned.keyId !== this.o.owner.keyId || pinned.upstreamId !== this.o.owner.upstreamId)) {
      throw new GatewayError('invalid_request', {
        param: 'previous_response_id',
        message: 'The objects this response continues were created with another upstream key than this WebSocket session\'s: continue them over HTTP (POST /v1/responses), or in a new session.',
      });
    }
    // Priced as the upstream model: an alias has no price of its own (docs/models.md).
    const model = named === undefined ? undefined : this.o.modelFor(named);
    const estimate = estimateRequest(CREATE.cost, model, event, facts, this.o.defaultMaxOutput);
    const previous = typeof event.previous_response_id === 'string' ? event.previous_response_id : undefined;
    const known = previous === undefined ? 0 : this.sizes.get(previous);
    // Only a prompt seen whole caps the charge at the worst case (ws-meter.ts finish): no stored
    // conversation, prompt or file, no item by id, no tool that fetches.
    const capped = known !== undefined && event.conversation === undefined && event.prompt == null && inlineInput(event.input) && countedTools(event.tools);
    const lane = typeof event.stream_id === 'string' ? event.stream_id : '';
    const release = createsObjects(CREATE, event) ? await holdObjectSlot(this.o.slots, user.id, `${meter.sessionId}.slot${++this.slotCount}`) : () => {};
    try {
      const pending = await meter.admit({ model, named, prompt: estimate.promptTokens + (known ?? 0), maxOutput: estimate.maxOutputTokens, lane, capped });
      this.slotReleases.set(pending.id, release);
      return pending;
    } catch (err) {
      release();
      throw err;
    }
  }

  async upstream(type: string | undefined, event: Json | undefined): Promise<void> {
    if (!event) return;
    const { meter } = this.o;
    const lane = typeof event.stream_id === 'string' ? event.stream_id : '';
    const response = isObject(event.response) ? event.response : undefined;
    const responseId = typeof response?.id === 'string' ? response.id : undefined;
    if (type === 'response.created' && responseId !== undefined) {
      if (!meter.started(responseId, lane)) await this.unmatched(responseId, response ?? {});
    } else if (SETTLES.has(type ?? '') && responseId !== undefined) {
      const pending = meter.byResponse(responseId) ?? meter.started(responseId, lane);
      if (!pending) return;
      this.releaseSlot(pending.id);
      const usage = await meter.finish(pending, response?.usage, type === 'response.failed' ? 'failed' : type === 'response.incomplete' ? 'incomplete' : 'completed');
      if (usage) this.remember(responseId, usage.input + usage.output);
    } else if (type === 'error') {
      // An error on a lane with no response running refused that lane's next create.
      if (!meter.runningOn(lane)) {
        const refused = meter.refusedBeforeStart((p) => p.lane === lane);
        if (refused) this.releaseSlot(refused);
      }
    } else if (typeof event.delta === 'string') {
      const pending = meter.streaming(typeof event.response_id === 'string' ? event.response_id : undefined);
      if (pending) pending.streamedTokens += Math.ceil(Buffer.byteLength(event.delta) / BYTES_PER_TOKEN);
    }
  }

  /** A response no open create accounts for (its create's reservation was given back on an error
   * that, it turns out, was another event's): charged what it reports, with no limit to refuse it,
   * since it runs already. */
  private async unmatched(responseId: string, response: Json): Promise<void> {
    const model = typeof response.model === 'string' ? response.model : undefined;
    const pending = await this.o.meter.admit({ model, prompt: 0, maxOutput: 0, capped: false }, true);
    pending.responseId = responseId;
  }

  /** The response ids the upstream announces become the user's, on the session's key, before the
   * client sees them; the session waits for the record before it judges the client's next event. */
  observe(type: string, event: Json): Promise<void> | undefined {
    if (type !== 'response.created' && !SETTLES.has(type)) return undefined;
    const id = isObject(event.response) ? event.response.id : undefined;
    return typeof id === 'string' ? this.o.objects.owners.record(id, this.o.owner) : undefined;
  }

  private releaseSlot(id: string): void {
    this.slotReleases.get(id)?.();
    this.slotReleases.delete(id);
  }

  private remember(id: string, tokens: number): void {
    if (this.sizes.size >= REMEMBERED) this.sizes.delete(this.sizes.keys().next().value as string);
    this.sizes.set(id, tokens);
  }

  close(): void {
    for (const id of [...this.slotReleases.keys()]) this.releaseSlot(id);
  }
}
