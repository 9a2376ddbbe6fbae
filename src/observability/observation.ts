// One request from arrival to its record. The relay tells it what it learns (the body's model and
// `stream`, that it takes the answer over, how it ended); an answer the gateway made itself is
// recorded when its connection closes. Either way a request gives exactly one record.
import type { IncomingHttpHeaders } from 'node:http';
import { KeyRejected } from '../auth.js';
import type { GatewayError } from '../errors.js';
import type { Operation } from '../operations/match.js';
import type { ModelDecision } from '../pool/aliases.js';
import type { RequestBody } from '../relay/body.js';
import type { ResponseTap } from '../relay/forward.js';
import { isoAt } from './clock.js';
import type { Observability } from './index.js';
import { type Outcome, type RequestRecord, type TokenCounts, outcomeOf } from './record.js';

/** What the relay knows when the answer has ended. */
export interface RelayEnd {
  userId?: string;
  keyId?: string;
  poolKeyId?: string;
  upstream?: string;
  /** The pool key was chosen by the request's prompt cache affinity (src/relay/affinity.ts). */
  affinity?: RequestRecord['affinity'];
  status: number;
  outcome: Outcome;
  retries?: number;
  tried?: RequestRecord['tried'];
  /** ms from the start of the relay (forward.ts) to the first byte sent. */
  ttfbMs?: number;
  bytesOut: number;
  tokens?: TokenCounts;
  costMicros?: number;
  errorCode?: string;
  errorMessage?: string;
}

/** What is known of an answer the gateway made itself. */
export interface LocalEnd {
  status: number;
  userId?: string;
  keyId?: string;
  bytesOut: number;
  /** The client went away before the answer was complete. */
  aborted: boolean;
}

const headerText = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value.join(', ') : value);

export class Observation {
  readonly time = isoAt(Date.now());
  private readonly started = performance.now();
  private relayStarted: number | undefined;
  private model: string | undefined;
  private upstreamModel: string | undefined;
  private stream = false;
  private endUser: string | undefined;
  private bytesIn: number | undefined;
  private requestBody: string | undefined;
  private responseBody: (() => string | undefined) | undefined;
  private upstreamRequestId: string | undefined;
  private relayed = false;
  private open = true;
  private recorded = false;
  private errorCode: string | undefined;
  private errorMessage: string | undefined;
  private rejectedUserId: string | undefined;
  private rejectedKeyId: string | undefined;
  private path: string | undefined;
  private operation: string | undefined;

  constructor(
    private readonly observability: Observability,
    private readonly requestId: string,
    private readonly method: string,
    private readonly url: string,
    private readonly headers: IncomingHttpHeaders,
  ) {
    const length = Number(headers['content-length']);
    if (Number.isSafeInteger(length) && length >= 0) this.bytesIn = length;
  }

  /** The path without the query string: as sent until the target check, canonical after it. */
  get route(): string {
    if (this.path === undefined) {
      const q = this.url.indexOf('?');
      this.path = q === -1 ? this.url : this.url.slice(0, q);
    }
    return this.path;
  }

  /** The target check's canonical path, and for /v1 the operation it matched (src/operations). */
  matched(path: string, operation: Operation | undefined): void {
    this.path = path;
    this.operation = operation?.id;
  }

  /** The relay read the body (its model and `stream`, and the body itself when bodies are kept). */
  sawBody(body: RequestBody): void {
    if (body.kind === 'buffered') {
      this.model = body.facts.model;
      this.stream = body.facts.stream ?? false;
      const user = body.json?.user;
      this.endUser = typeof user === 'string' ? user : undefined;
      this.bytesIn = body.bytes.length;
    }
    this.requestBody = this.observability.bodies.request(body);
  }

  /** The request's model decision: an alias is recorded as `model`, what was sent as `upstreamModel`. */
  modelSent(models: ModelDecision): void {
    if (!models.aliased) return;
    this.model = models.public;
    this.upstreamModel = models.upstream;
  }

  /** The gateway answered with an error of its own: its code, and for a 5xx what caused it. */
  failed(error: GatewayError): void {
    this.errorCode = error.code;
    this.errorMessage = error.status >= 500 && error.cause instanceof Error ? error.cause.message : undefined;
    // A refused key: why, and whose, for the admin (the client only ever sees the one 401).
    if (error.cause instanceof KeyRejected) {
      this.errorMessage = error.cause.reason;
      this.rejectedUserId = error.cause.userId;
      this.rejectedKeyId = error.cause.keyId;
    }
  }

  /** The relay takes the answer over (reply.hijack()); it will call `finish`. */
  relaying(): void {
    this.relayed = true;
    this.relayStarted = performance.now();
    if (this.open) {
      this.observability.metrics.inFlight.inc();
      if (this.stream) this.observability.metrics.openStreams.inc();
    }
  }

  /** The tap to relay an attempt's answer through. The last attempt's is the answer the client got:
   * its x-request-id is the upstream's, and its body the one kept when bodies are. */
  tap(inner: ResponseTap): ResponseTap {
    const captured = this.observability.bodies.response(inner);
    this.responseBody = captured.text;
    this.upstreamRequestId = undefined;
    const through = captured.tap;
    return {
      start: (status, headers) => {
        const id = headers['x-request-id'];
        this.upstreamRequestId = typeof id === 'string' ? id : undefined;
        through.start(status, headers);
      },
      chunk: through.chunk.bind(through),
      end: through.end.bind(through),
    };
  }

  /** The record of a charge made later (src/quota/later.ts), which this request brought about. */
  recordCharge(record: RequestRecord): void {
    this.observability.record(record);
  }

  /** The relayed answer has ended and been charged. */
  finish(end: RelayEnd): void {
    if (this.recorded) return;
    this.recorded = true;
    const offset = (this.relayStarted ?? this.started) - this.started;
    // Spelled out rather than spread (this runs for every request); `end` and `base()` share no field.
    this.observability.record({
      requestId: this.requestId,
      time: this.time,
      method: this.method,
      route: this.route,
      operation: this.operation,
      model: this.model,
      upstreamModel: this.upstreamModel,
      endUser: this.endUser,
      userAgent: headerText(this.headers['user-agent']),
      stream: this.stream,
      bytesIn: this.bytesIn,
      userId: end.userId,
      keyId: end.keyId,
      poolKeyId: end.poolKeyId,
      upstream: end.upstream,
      affinity: end.affinity,
      status: end.status,
      tried: end.tried,
      bytesOut: end.bytesOut,
      tokens: end.tokens,
      costMicros: end.costMicros,
      errorCode: end.errorCode,
      errorMessage: end.errorMessage,
      upstreamRequestId: this.upstreamRequestId,
      // The relay's own answers (no usable key, proxy down ...) say which in their code.
      outcome: end.outcome === 'upstream_error' && end.errorCode ? outcomeOf(end.status, end.errorCode) : end.outcome,
      retries: end.retries ?? 0,
      ttfbMs: end.ttfbMs === undefined ? undefined : end.ttfbMs + offset,
      durationMs: performance.now() - this.started,
      requestBody: this.requestBody,
      responseBody: this.responseBody?.(),
    });
  }

  /** The client connection closed: the end of an answer the gateway made itself, if it was one. */
  closed(local: () => LocalEnd): void {
    if (!this.open) return;
    this.open = false;
    if (this.relayed) {
      this.observability.metrics.inFlight.dec();
      if (this.stream) this.observability.metrics.openStreams.dec();
      return;
    }
    if (this.recorded) return;
    this.recorded = true;
    const end = local();
    this.observability.record({
      ...this.base(),
      userId: end.userId ?? this.rejectedUserId,
      keyId: end.keyId ?? this.rejectedKeyId,
      status: end.aborted ? 499 : end.status,
      outcome: end.aborted ? 'client_aborted' : outcomeOf(end.status, this.errorCode),
      errorCode: this.errorCode,
      errorMessage: this.errorMessage,
      retries: 0,
      durationMs: performance.now() - this.started,
      bytesOut: end.bytesOut,
      requestBody: this.requestBody,
    });
  }

  private base(): Omit<RequestRecord, 'status' | 'outcome' | 'retries' | 'durationMs' | 'bytesOut'> {
    return {
      requestId: this.requestId,
      time: this.time,
      method: this.method,
      route: this.route,
      operation: this.operation,
      model: this.model,
      upstreamModel: this.upstreamModel,
      endUser: this.endUser,
      userAgent: headerText(this.headers['user-agent']),
      stream: this.stream,
      bytesIn: this.bytesIn,
    };
  }
}
