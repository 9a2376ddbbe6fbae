// One upstream exchange: send the request with the pool key, stream the answer back chunk by
// chunk with backpressure, abort the upstream the moment the client goes away.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import type { PoolChoice } from '../pool/pool.js';
import type { RequestBody } from './body.js';
import { clientResponseHeaders, isEventStream, upstreamRequestHeaders } from './headers.js';
import { mapUpstreamError } from './upstream-errors.js';
import { writeError } from './respond.js';

export type Outcome = 'ok' | 'client_aborted' | 'upstream_error' | 'stream_interrupted';

export interface RelayResult {
  outcome: Outcome;
  status: number;
  upstreamStatus?: number;
  /** ms from the start of the relay to the first byte written to the client. */
  ttfbMs?: number;
  bytesOut: number;
  error?: GatewayError;
}

export interface RelayRequest {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  method: string;
  /** The path below `/v1`, such as `/chat/completions`, plus the query string. */
  rest: string;
  body: RequestBody;
  choice: PoolChoice;
  dispatcher: Dispatcher;
  timeouts: Config['timeouts'];
  /** Headers the gateway adds to the answer (such as the user's own x-ratelimit-*). */
  extraHeaders?: OutgoingHttpHeaders;
  /** Sees the answer as it passes (usage accounting); may rewrite a chunk before it is sent. */
  tap?: ResponseTap;
}

export interface ResponseTap {
  /** Called once with the upstream's status and headers, before any body byte. */
  start(status: number, headers: Record<string, string | string[] | undefined>): void;
  /** Returns the bytes to send for this upstream chunk (the chunk itself when unchanged). */
  chunk(chunk: Buffer): Buffer;
  /** The answer ended: cleanly, or not (`complete` false: cut, aborted or failed). */
  end(complete: boolean): void;
}

function bodyFor(body: RequestBody): { payload: Dispatcher.DispatchOptions['body']; length?: number } {
  switch (body.kind) {
    case 'none':
      return { payload: undefined };
    case 'buffered':
      return { payload: body.bytes, length: body.bytes.length };
    case 'stream':
      return { payload: body.stream, length: body.contentLength };
  }
}

/** SSE error event for a stream the upstream broke off (CONTRACT.md, Errors). */
function interruptionEvent(atEventBoundary: boolean): string {
  const error = new GatewayError('upstream_stream_interrupted');
  return `${atEventBoundary ? '' : '\n\n'}data: ${JSON.stringify(error.body())}\n\n`;
}

function endsEvent(chunk: Buffer): boolean {
  const n = chunk.length;
  return n >= 2 && chunk[n - 1] === 0x0a && (chunk[n - 2] === 0x0a || (n >= 3 && chunk[n - 2] === 0x0d && chunk[n - 3] === 0x0a));
}

export async function relay(r: RelayRequest): Promise<RelayResult> {
  const { res, choice } = r;
  const started = performance.now();
  const controller = new AbortController();
  const onClientClose = () => {
    if (!res.writableFinished) controller.abort();
  };
  res.once('close', onClientClose);

  const { payload, length } = bodyFor(r.body);
  let answer: Dispatcher.ResponseData;
  try {
    answer = await r.dispatcher.request({
      origin: choice.upstream.origin,
      path: choice.upstream.basePath + r.rest,
      method: r.method as Dispatcher.HttpMethod,
      headers: upstreamRequestHeaders(r.req.headers, choice.key, length),
      body: payload,
      signal: controller.signal,
      headersTimeout: r.timeouts.headersMs,
      bodyTimeout: r.timeouts.bodyIdleMs,
    });
  } catch (err) {
    if (controller.signal.aborted || res.destroyed) return { outcome: 'client_aborted', status: 499, bytesOut: 0 };
    const error = mapUpstreamError(err);
    writeError(res, error, r.requestId);
    return { outcome: 'upstream_error', status: error.status, bytesOut: 0, error };
  }

  const headers = clientResponseHeaders(answer.headers, r.requestId);
  if (r.extraHeaders) Object.assign(headers, r.extraHeaders);
  r.tap?.start(answer.statusCode, answer.headers);
  const sse = isEventStream(answer.headers['content-type']);
  res.writeHead(answer.statusCode, headers);
  if (sse) res.flushHeaders();
  return pump(answer, r, sse, started);
}

/** Copies the upstream body to the client, chunk by chunk, honouring backpressure both ways. */
function pump(answer: Dispatcher.ResponseData, r: RelayRequest, sse: boolean, started: number): Promise<RelayResult> {
  const { res } = r;
  const body = answer.body;
  const result: RelayResult = { outcome: 'ok', status: answer.statusCode, upstreamStatus: answer.statusCode, bytesOut: 0 };
  let atBoundary = true;

  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      res.off('drain', onDrain);
      body.off('data', onData);
      r.tap?.end(result.outcome === 'ok');
      resolve(result);
    };
    const onData = (upstreamChunk: Buffer) => {
      const chunk = r.tap ? r.tap.chunk(upstreamChunk) : upstreamChunk;
      if (chunk.length === 0) return;
      if (result.bytesOut === 0) result.ttfbMs = performance.now() - started;
      result.bytesOut += chunk.length;
      if (sse) atBoundary = endsEvent(chunk);
      if (!res.write(chunk)) body.pause();
    };
    const onDrain = () => body.resume();
    body.on('data', onData);
    res.on('drain', onDrain);
    body.once('end', () => {
      res.end();
      finish();
    });
    body.once('error', (err) => {
      if (res.destroyed || res.writableEnded) {
        result.outcome = 'client_aborted';
        finish();
        return;
      }
      result.outcome = 'stream_interrupted';
      result.error = new GatewayError('upstream_stream_interrupted', { cause: err });
      if (sse) {
        res.end(interruptionEvent(atBoundary));
      } else {
        // A truncated JSON or binary body must not look complete: cut the connection.
        res.destroy(err);
      }
      finish();
    });
    res.once('close', () => {
      if (!res.writableFinished) {
        result.outcome = 'client_aborted';
        body.destroy();
        finish();
      }
    });
  });
}
