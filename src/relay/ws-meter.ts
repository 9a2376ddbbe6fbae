// The responses of one WebSocket session and what each holds against its user's limits
// (docs/websockets.md). Each `response.create` the gateway lets through reserves its worst case
// (its prompt plus its output cap) as an HTTP request does; the upstream's event that ends the
// response settles it with the usage it reports. Responses are matched to their creates in order
// (per lane on the Responses socket): the upstream starts them in the order it got them.
// A session that ends first charges each started response its prompt and what streamed, marked
// estimated, and releases those that never started: no reservation outlives its session.
import type { Logger } from 'pino';
import type { GatewayError } from '../errors.js';
import type { Charge, QuotaGate, Ticket } from '../quota/gate.js';
import { type TokenUsage, normalizeUsage, totalTokens } from '../quota/usage.js';
import type { User } from '../store/types.js';
import type { ResponseEnd } from './ws-record.js';

/** A response the gateway admitted, until it settles. */
export interface Pending {
  /** The gateway's request id of its reservation. */
  id: string;
  ticket: Ticket;
  /** The model priced (an alias's upstream model). */
  model?: string;
  /** The model the client named, when it differs from `model` (an alias). */
  named?: string;
  /** When it was admitted (ms). */
  at: number;
  prompt: number;
  maxOutput: number;
  /** The client's `event_id` of the create (realtime), matched by the upstream's errors. */
  eventId?: string;
  /** The Responses socket's `stream_id`: creates of one lane start in order. */
  lane: string;
  /** Set once the upstream announced it (`response.created`). */
  responseId?: string;
  /** Its create was written upstream: from then on the upstream may be running it. */
  relayed: boolean;
  /** Text output seen streaming, in tokens, and audio output, in bytes. */
  streamedTokens: number;
  streamedAudioBytes: number;
  /** The whole prompt was seen (ws-seen.ts): a report above the worst case is not believed (charged the worst case). */
  capped: boolean;
}

export interface MeterOptions {
  gate: QuotaGate;
  user: User;
  sessionId: string;
  log: Logger;
  /** Responses one session may have admitted and not yet settled. */
  maxInFlight: number;
  /** Output audio bytes per token, for a response cut before its usage came. */
  audioBytesPerToken: () => number;
  /** Told of each response settled, with how it ended and its charge (the kept request log). */
  onSettled?: (pending: Pending, end: ResponseEnd, charge: Charge | undefined) => void;
}

export interface Settled {
  pending: Pending;
  usage?: TokenUsage;
}

export class SessionMeter {
  private readonly open: Pending[] = [];
  private count = 0;
  private closed = false;
  /** Settles not yet written to the store: a shutdown waits for them. */
  private readonly settling = new Set<Promise<unknown>>();
  /** The user less the concurrency limit: the session's own slot covers its responses. */
  private readonly responseUser: User;

  constructor(private readonly options: MeterOptions) {
    const { maxConcurrent: _, ...limits } = options.user.limits ?? {};
    this.responseUser = { ...options.user, limits };
  }

  get sessionId(): string {
    return this.options.sessionId;
  }

  /** True while a response the upstream started on this lane has not ended. */
  runningOn(lane: string): boolean {
    return this.open.some((p) => p.lane === lane && p.responseId !== undefined);
  }

  get inFlight(): number {
    return this.open.length;
  }

  /** Reserves a response's worst case, or throws the refusal (a GatewayError) it gets instead. */
  async admit(input: { model?: string; named?: string; prompt: number; maxOutput: number; eventId?: string; lane?: string; capped: boolean }, force = false): Promise<Pending> {
    if (this.closed) throw new Error('session closed');
    const id = `${this.options.sessionId}.r${++this.count}`;
    const estimate = { model: input.model, promptTokens: input.prompt, maxOutputTokens: input.maxOutput, metered: true };
    // A response the upstream started by itself (server VAD) is charged even when refused: the
    // reservation is taken with no limits, so that its usage is counted when it settles.
    const user = force ? { ...this.responseUser, limits: {} } : this.responseUser;
    const ticket = await this.options.gate.admit(user, id, estimate);
    const pending: Pending = {
      id,
      ticket,
      model: input.model,
      named: input.named !== input.model ? input.named : undefined,
      at: Date.now(),
      prompt: input.prompt,
      maxOutput: input.maxOutput,
      eventId: input.eventId,
      lane: input.lane ?? '',
      relayed: force,
      streamedTokens: 0,
      streamedAudioBytes: 0,
      capped: input.capped,
    };
    if (this.closed) {
      this.track(this.options.gate.settle(ticket, undefined));
      throw new Error('session closed');
    }
    this.open.push(pending);
    return pending;
  }

  /** Refuses a create past the session's bound of responses in flight, before any store call. */
  get full(): boolean {
    return this.open.length >= this.options.maxInFlight;
  }

  /** The upstream announced a response: the oldest create of its lane not yet announced. */
  started(responseId: string, lane = ''): Pending | undefined {
    const known = this.byResponse(responseId);
    if (known) return known;
    const pending = this.open.find((p) => p.responseId === undefined && p.lane === lane);
    if (pending) pending.responseId = responseId;
    return pending;
  }

  byResponse(responseId: string | undefined): Pending | undefined {
    return responseId === undefined ? undefined : this.open.find((p) => p.responseId === responseId);
  }

  /** The response output streams into when the event does not name one: the oldest started. */
  streaming(responseId?: string): Pending | undefined {
    return this.byResponse(responseId) ?? this.open.find((p) => p.responseId !== undefined);
  }

  /** The upstream refused a create before starting it: its reservation goes back whole. */
  refusedBeforeStart(match: (p: Pending) => boolean): string | undefined {
    const at = this.open.findIndex((p) => p.responseId === undefined && match(p));
    if (at === -1) return undefined;
    const [pending] = this.open.splice(at, 1);
    if (!pending) return undefined;
    this.track(this.options.gate.settle(pending.ticket, undefined));
    return pending.id;
  }

  /**
   * Settles a response with the usage its last event reports (`raw`, passed whole to
   * normalizeUsage). No usage at all: its prompt and what streamed, estimated. A usage that cannot
   * be read (negative, not whole numbers), or above the worst case of a response whose whole prompt
   * was seen: the worst case, estimated, so the ledger is never charged less than nothing nor past
   * what the response was let spend.
   */
  async finish(pending: Pending, raw: unknown, end: ResponseEnd = 'completed'): Promise<TokenUsage | undefined> {
    const at = this.open.indexOf(pending);
    if (at === -1) return undefined;
    this.open.splice(at, 1);
    const worst = { usage: { input: pending.prompt, cachedInput: 0, output: pending.maxOutput }, estimated: true, atWorst: true };
    let used: { usage: TokenUsage; estimated: boolean; atWorst?: boolean };
    if (raw === undefined || raw === null) used = this.streamed(pending);
    else {
      const usage = normalizeUsage(raw);
      if (!usage) used = worst;
      else if (pending.capped && totalTokens(usage) > pending.prompt + pending.maxOutput) used = worst;
      else used = { usage, estimated: false };
    }
    await this.settle(pending, used, end);
    return used.usage;
  }

  private streamed(pending: Pending): { usage: TokenUsage; estimated: boolean } {
    const audio = Math.ceil(pending.streamedAudioBytes / this.options.audioBytesPerToken());
    const output = Math.min(pending.maxOutput, pending.streamedTokens + audio);
    const usage: TokenUsage = { input: pending.prompt, cachedInput: 0, output };
    // The streamed audio is priced as audio output (dearer than text); the prompt, not seen as
    // audio or text, at the dearest input rate would overcharge a text session: it is counted as text.
    if (audio > 0) usage.audioOutput = Math.min(audio, output);
    return { usage, estimated: true };
  }

  private async settle(pending: Pending, used: { usage: TokenUsage; estimated: boolean; atWorst?: boolean }, end: ResponseEnd): Promise<void> {
    const settled = this.options.gate.settle(pending.ticket, used);
    this.track(settled);
    const charge = await settled;
    this.options.onSettled?.(pending, end, charge);
    this.options.log.info(
      {
        requestId: this.options.sessionId,
        responseRequestId: pending.id,
        responseId: pending.responseId,
        userId: this.options.user.id,
        model: pending.model,
        ...chargeFields(charge),
      },
      'websocket response settled',
    );
  }

  private track(p: Promise<unknown>): void {
    this.settling.add(p);
    void p.finally(() => this.settling.delete(p));
  }

  /** The session ended: responses the upstream had (announced, or their create written to it) are
   * charged their prompt and what streamed, even when the gateway had not yet read their
   * `response.created` (a client that stops reading holds those back); the rest are released. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const pending of this.open.splice(0)) {
      if (pending.responseId === undefined && !pending.relayed) this.track(this.options.gate.settle(pending.ticket, undefined));
      else this.track(this.settle(pending, this.streamed(pending), 'cut'));
    }
    await Promise.allSettled([...this.settling]);
  }
}

/** The realtime API's own error event for a refusal of the gateway. */
export function realtimeError(error: GatewayError, clientEventId: unknown, eventId: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      type: 'error',
      event_id: eventId,
      error: {
        type: error.type,
        code: error.code,
        message: error.message,
        param: error.param,
        event_id: typeof clientEventId === 'string' ? clientEventId : null,
      },
    }),
  );
}

/** The Responses socket's error event (ResponseErrorEvent), on the create's lane. */
export function responsesError(error: GatewayError, lane: unknown): Buffer {
  const event: Record<string, unknown> = { type: 'error', code: error.code, message: error.message, param: error.param, sequence_number: 0 };
  if (typeof lane === 'string') event.stream_id = lane;
  return Buffer.from(JSON.stringify(event));
}

/** The tokens and cost of a settled charge, as the log lines of WebSocket responses and
 * transcriptions write them (undefined when nothing was charged). */
export function chargeFields(charge: Charge | undefined): { tokens?: Record<string, unknown>; costMicros?: number } {
  return {
    tokens: charge && { input: charge.usage.input, cachedInput: charge.usage.cachedInput, output: charge.usage.output, estimated: charge.estimated },
    costMicros: charge?.micros,
  };
}
