// The kept request log's record of each response made over a WebSocket session (docs/observability.md,
// "WebSocket responses"): one record per response the gateway admitted, written when it settles,
// and one per `response.create` the gateway refused. The session's own upgrade is no record (its
// lines are `websocket opened` / `closed`). Records go through the same path as an HTTP request's
// (src/observability/index.ts): escaped, masked, counted in the usage report and the metrics.
import type { GatewayError } from '../errors.js';
import { type Outcome, type RequestRecord, outcomeOf } from '../observability/record.js';
import type { Charge } from '../quota/gate.js';

/** How a response ended: its upstream's last event, or the session's end before it came. */
export type ResponseEnd = 'completed' | 'incomplete' | 'failed' | 'cut';

/** What every record of one session shares. */
export interface SessionFacts {
  sessionId: string;
  /** `/v1/responses` or `/v1/realtime`. */
  route: string;
  userId: string;
  keyId: string;
  poolKeyId: string;
  upstream: string;
  userAgent?: string;
}

/** One response, as the record tells it. */
export interface ResponseFacts {
  /** The gateway's id of the response (`<session id>.r<n>`). */
  requestId: string;
  /** When its create was admitted (ms). */
  at: number;
  /** The model the client named (an alias as such), and the one priced and sent in its place. */
  model?: string;
  upstreamModel?: string;
}

const ENDS: Record<ResponseEnd, { status: number; outcome: Outcome; errorMessage?: string }> = {
  completed: { status: 200, outcome: 'ok' },
  incomplete: { status: 200, outcome: 'ok' },
  failed: { status: 200, outcome: 'ok', errorMessage: 'the upstream answered response.failed' },
  cut: { status: 499, outcome: 'stream_interrupted', errorMessage: 'the session ended before the response did' },
};

function base(session: SessionFacts, response: ResponseFacts, now: number): RequestRecord {
  return {
    requestId: response.requestId,
    time: new Date(response.at).toISOString(),
    userId: session.userId,
    keyId: session.keyId,
    method: 'GET',
    route: session.route,
    model: response.model,
    upstreamModel: response.upstreamModel !== undefined && response.upstreamModel !== response.model ? response.upstreamModel : undefined,
    userAgent: session.userAgent,
    stream: true,
    status: 0,
    outcome: 'ok',
    retries: 0,
    durationMs: Math.max(0, now - response.at),
    bytesOut: 0,
  };
}

/** The record of a response that settled (or was cut with its session), with what it was charged. */
export function settledRecord(session: SessionFacts, response: ResponseFacts, end: ResponseEnd, charge: Charge | undefined, now = Date.now()): RequestRecord {
  const record = base(session, response, now);
  record.poolKeyId = session.poolKeyId;
  record.upstream = session.upstream;
  Object.assign(record, ENDS[end]);
  if (charge) {
    const { input, cachedInput, output } = charge.usage;
    record.tokens = { input, cachedInput, output, estimated: charge.estimated };
    record.costMicros = charge.micros;
  }
  return record;
}

/** The record of a create the gateway refused (never relayed): its status and code, no charge. */
export function refusedRecord(session: SessionFacts, response: ResponseFacts, error: GatewayError, now = Date.now()): RequestRecord {
  const record = base(session, response, now);
  record.status = error.status;
  record.outcome = outcomeOf(error.status, error.code);
  record.errorCode = error.code;
  record.errorMessage = error.message;
  return record;
}
