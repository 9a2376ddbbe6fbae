// One client request across the pool's keys (README, "The key pool"; docs/reliability.md, cases 11-16). A key
// is chosen and the request sent. An answer that says the key failed (429, 401, 403, 5xx) is held
// back and read (bounded) while nothing has reached the client, and the request goes on to another
// key for as long as the retry policy allows; otherwise the held answer is what the client gets,
// masked. Only the answer that reaches the client is seen by the response tap (usage, objects),
// and once its first byte is out the request is never sent again.
//
// Replay: a buffered body (JSON, held in memory anyway) is sent again as it is. A streamed body
// (multipart uploads, raw audio) is read once, so it goes to another key only when the attempt
// failed before undici began writing it (a refused connection, a proxy that failed); once it has
// been read, the failing key's answer is passed on.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Dispatcher, errors } from 'undici';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import { type AttemptResult, parseUpstreamError } from '../pool/outcome.js';
import type { Attempt, Pool, PoolChoice, SelectRequest } from '../pool/pool.js';
import type { RetryPolicy } from '../pool/retry.js';
import type { RequestBody } from './body.js';
import { type AbortLike, ClientGone } from './client-gone.js';
import { ClientAbortError, type UpstreamAnswer, exchange } from './exchange.js';
import { Failover, type TriedKey, backoff, noKeyError, transportResult } from './failover.js';
import { type RelayResult, type ResponseTap, answerHeaders, deliverStream } from './forward.js';
import { guardAnswer } from './answer-guard.js';
import { type Held, readBounded, writeHeld } from './held.js';
import { upstreamRequestHeaders } from './headers.js';
import type { Masker } from './mask.js';
import type { OpenStreams } from './open-streams.js';
import type { Outbound } from './outbound.js';
import { writeError } from './respond.js';
import { errorCode, mapUpstreamError } from './upstream-errors.js';
import { type OutgoingBody, bodyForUpstream } from './upstream-body.js';
import { upstreamTarget } from './upstream-target.js';
import type { Operation } from '../operations/match.js';
import { unknownOperation } from '../operations/match.js';

// An error body is read whole to judge it and to mask it; OpenAI's are a few hundred bytes.
const ERROR_BODY_LIMIT = 1024 * 1024;
// A list page is read whole to filter it: 10,000 files (the largest page OpenAI serves) fit.
const LIST_BODY_LIMIT = 8 * 1024 * 1024;

export interface RelayRequest {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  method: string;
  /** The path below `/v1`, such as `/chat/completions`, plus the query string. */
  rest: string;
  body: RequestBody;
  model?: string;
  /** The model the upstream is sent (an alias's target, else `model`): an Azure deployment's key. */
  upstreamModel?: string;
  /** The operation the request matched: where it goes on an upstream of each kind (upstream-target.ts). */
  operation?: Operation;
  /** The route is one for admin keys (the spec's AdminApiKey routes): its 401 and 403 leave the key as it was. */
  privileged: boolean;
  /** The key that holds an object the request names (src/relay/object-access.ts). */
  pinned?: SelectRequest['pinned'];
  /** What groups the request with others sharing its prompt cache (affinity.ts); a pin wins over it. */
  affinity?: SelectRequest['affinity'];
  /** Headers the gateway adds to the answer (the user's own x-ratelimit-*). */
  extraHeaders?: Record<string, string>;
  /** The tap for the answer that reaches the client, made by the key `choice`. */
  tap?(choice: PoolChoice): ResponseTap | undefined;
  /** For a list answer: the bytes the user may see instead, or undefined to send it as it is. */
  filterList?(bytes: Buffer): Promise<Buffer | undefined>;
}

export interface RelayDeps {
  pool: Pool;
  retry: RetryPolicy;
  outbound: Outbound;
  masker: Masker;
  timeouts: Config['timeouts'];
  /** Streams being delivered, for a shutdown to end (src/relay/open-streams.ts). */
  streams?: OpenStreams;
}

export interface RelayOutcome extends RelayResult {
  /** The key whose answer the client got, if any did. */
  choice?: PoolChoice;
  /** Attempts made, the first included. */
  attempts: number;
  /** The attempts that failed, in order (the last may be the one whose answer the client got). */
  tried: TriedKey[];
  /**
   * The upstream had the whole request and had not refused it: it was answering, or may have been
   * working on it when the client went away. What OpenAI bills, whoever reads the answer.
   */
  reachedUpstream?: boolean;
}

type Outcome = Omit<RelayOutcome, 'tried' | 'attempts'>;

const ABORTED: Outcome = { outcome: 'client_aborted', status: 499, bytesOut: 0 };
const ABORTED_AT_UPSTREAM: Outcome = { ...ABORTED, reachedUpstream: true };

export async function relay(r: RelayRequest, deps: RelayDeps): Promise<RelayOutcome> {
  const started = performance.now();
  const gone = new ClientGone();
  const onClose = () => {
    if (!r.res.writableFinished) gone.abort();
  };
  r.res.once('close', onClose);
  const failover = new Failover(deps.pool, deps.retry, {
    model: r.model,
    pinned: r.pinned,
    affinity: r.affinity,
    method: r.method,
    privileged: r.privileged,
    replayable: (written) => r.body.kind !== 'stream' || !written,
  });
  try {
    const outcome = await attempts(r, deps, failover, gone, started);
    return { ...outcome, attempts: failover.attempts, tried: failover.tried };
  } finally {
    r.res.off('close', onClose);
  }
}

async function attempts(r: RelayRequest, deps: RelayDeps, failover: Failover, signal: AbortLike, started: number): Promise<Outcome> {
  // What the client gets if no other key does better: the last failure, held back.
  let fallback: (() => Outcome) | undefined;
  // The body as each upstream gets it, made once: a stream body is wrapped once and read once.
  const bodies = new Map<string, OutgoingBody>();
  for (;;) {
    const selection = failover.choose();
    if (!selection.ok) return fallback ? fallback() : sendError(r, noKeyError(selection, r.model, r.extraHeaders));
    const upstream = selection.choice.upstream;
    const target = upstreamTarget(upstream, r.operation ?? unknownOperation(r.method), r.rest, r.upstreamModel ?? r.model);
    // Checked before admission too (route.ts); here for an upstream that changed since.
    if (!target.ok) return fallback ? fallback() : sendError(r, target.error);
    let body = bodies.get(upstream.id);
    if (body === undefined) bodies.set(upstream.id, (body = bodyForUpstream(upstream, r.body, r.req.headers['content-type'])));
    const attempt = failover.start(selection);
    const sent = await exchange(deps.outbound.dispatcherFor(attempt.choice), upstreamRequest(r, attempt.choice, target.path, body, deps.timeouts), signal);

    if (!sent.ok) {
      if (sent.aborted) return aborted(attempt, sent.sent);
      const error = mapUpstreamError(sent.error);
      // A header undici refuses to send is the request's own fault, as a 400 would be.
      const result: AttemptResult = error.code === 'invalid_header' ? { status: 400 } : transportResult(sent.error);
      const decision = failover.fail(attempt, result, sent.written);
      fallback = () => sendError(r, error);
      if (decision.retry && (await backoff(decision.delayMs, signal))) continue;
      return signal.aborted ? ABORTED : fallback();
    }

    // Before anything of the answer is judged or held: decoded to identity, headers free of keys.
    const guarded = guardAnswer(sent.answer, r.method, deps.masker);
    if (!guarded.ok) {
      sent.answer.body.destroy();
      attempt.finish({ status: sent.answer.status, headers: sent.answer.headers });
      return { ...sendError(r, guarded.error), upstreamStatus: sent.answer.status, choice: attempt.choice };
    }
    const { answer } = guarded;
    if (answer.status < 400) return deliver(answer, attempt, r, signal, started, deps);
    const held = await hold(answer, ERROR_BODY_LIMIT, signal, deps.timeouts.bodyIdleMs);
    if (signal.aborted) return aborted(attempt);
    const result: AttemptResult = { status: answer.status, headers: answer.headers, error: parseUpstreamError(held.bytes) };
    if (held.error) result.transportCode = errorCode(held.error);
    const decision = failover.fail(attempt, result, true);
    const choice = attempt.choice;
    fallback = () => sendHeldError(r, deps.masker, answer, held, choice, started);
    if (decision.retry) {
      answer.body.destroy();
      if (await backoff(decision.delayMs, signal)) continue;
      return ABORTED;
    }
    return fallback();
  }
}

function upstreamRequest(r: RelayRequest, choice: PoolChoice, path: string, body: OutgoingBody, timeouts: Config['timeouts']): Dispatcher.DispatchOptions {
  return {
    origin: choice.upstream.origin,
    path,
    method: r.method as Dispatcher.HttpMethod,
    headers: upstreamRequestHeaders(r.req.headers, choice, body.length),
    body: body.body,
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
  };
}

/**
 * Reads an answer whole (bounded); a client that goes away meanwhile aborts the upstream. The
 * client sees nothing while an answer is held, so all of it must come within `deadlineMs` (the
 * longest silence of an upstream, timeouts.bodyIdleMs): a body that trickles a byte at a time
 * never meets the idle timeout, and would hold the client forever.
 */
async function hold(answer: UpstreamAnswer, limit: number, signal: AbortLike, deadlineMs: number): Promise<Held> {
  const stop = () => answer.body.destroy(new ClientAbortError());
  signal.addEventListener('abort', stop, { once: true });
  const timer = setTimeout(() => answer.body.destroy(new errors.BodyTimeoutError('The held answer did not come whole in time.')), deadlineMs);
  try {
    return await readBounded(answer.body, limit);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
  }
}

/** `reached`: the upstream had all of the request and no answer yet (RelayOutcome.reachedUpstream). */
function aborted(attempt: Attempt, reached = false): Outcome {
  attempt.finish({ clientAborted: true });
  return reached ? ABORTED_AT_UPSTREAM : ABORTED;
}

function sendError(r: RelayRequest, error: GatewayError): Outcome {
  writeError(r.res, error, r.requestId);
  return { outcome: 'upstream_error', status: error.status, bytesOut: 0, error };
}

/** The upstream's own error answer, masked (README, "The key pool"). */
function sendHeldError(r: RelayRequest, masker: Masker, answer: UpstreamAnswer, held: Held, choice: PoolChoice, started: number): Outcome {
  if (held.error) return { ...sendError(r, mapUpstreamError(held.error)), choice };
  if (!held.complete) answer.body.destroy();
  // A body cut at the bound may end inside a secret: the bytes that could begin one are not sent.
  const cut = held.complete ? held.bytes : (masker.stream()?.chunk(held.bytes) ?? held.bytes);
  const bytes = masker.bytes(cut);
  writeHeld(r.res, answer.status, answerHeaders(answer, r), bytes, {
    complete: held.complete,
    head: r.method === 'HEAD',
  });
  return { outcome: 'ok', status: answer.status, upstreamStatus: answer.status, bytesOut: bytes.length, ttfbMs: performance.now() - started, choice };
}

/** The answer the client gets: streamed, or (a list to filter) held and written whole. */
async function deliver(answer: UpstreamAnswer, attempt: Attempt, r: RelayRequest, signal: AbortLike, started: number, deps: RelayDeps): Promise<Outcome> {
  const { masker, streams } = deps;
  const choice = attempt.choice;
  const tap = r.tap?.(choice);
  const json = String(answer.headers['content-type'] ?? '').toLowerCase().includes('json');
  if (r.filterList && answer.status < 300 && json) return deliverList(answer, attempt, r, tap, signal, started, masker, deps.timeouts.bodyIdleMs);
  const mask = masker.stream(answer.headers['content-length'] !== undefined);
  const result = await deliverStream(answer, { res: r.res, requestId: r.requestId, extraHeaders: r.extraHeaders, tap, mask, started, streams });
  if (result.outcome === 'client_aborted') attempt.finish({ clientAborted: true });
  else attempt.finish({ status: answer.status, headers: answer.headers, transportCode: result.error ? errorCode(result.error.cause) : undefined });
  return { ...result, choice, reachedUpstream: true };
}

async function deliverList(
  answer: UpstreamAnswer,
  attempt: Attempt,
  r: RelayRequest,
  tap: ResponseTap | undefined,
  signal: AbortLike,
  started: number,
  masker: Masker,
  deadlineMs: number,
): Promise<Outcome> {
  const held = await hold(answer, LIST_BODY_LIMIT, signal, deadlineMs);
  if (signal.aborted) return aborted(attempt, true);
  attempt.finish({ status: answer.status, headers: answer.headers, transportCode: held.error ? errorCode(held.error) : undefined });
  if (held.error) return sendError(r, mapUpstreamError(held.error));
  if (!held.complete) {
    answer.body.destroy();
    return sendError(r, new GatewayError('invalid_request', { message: 'This list page is too large for the gateway to filter per user: ask for fewer items with `limit`.', param: 'limit' }));
  }
  let bytes: Buffer;
  try {
    bytes = (await r.filterList?.(held.bytes)) ?? held.bytes;
  } catch (err) {
    return sendError(r, mapUpstreamError(err));
  }
  tap?.start(answer.status, answer.headers);
  tap?.chunk(bytes);
  tap?.end(true);
  bytes = masker.secrets(bytes);
  writeHeld(r.res, answer.status, answerHeaders(answer, r), bytes, { complete: true, head: false });
  return { outcome: 'ok', status: answer.status, upstreamStatus: answer.status, bytesOut: bytes.length, ttfbMs: performance.now() - started, choice: attempt.choice };
}
