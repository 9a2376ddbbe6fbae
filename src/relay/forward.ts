// Delivery of an upstream answer that streams: status and headers as soon as they are in, then
// the body chunk by chunk with backpressure both ways; the upstream is aborted the moment the
// client goes away. Once this starts, bytes reach the client and the request is never retried.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type ErrorCode, GatewayError } from '../errors.js';
import { keepVary } from '../inbound/cors.js';
import type { UpstreamAnswer } from './exchange.js';
import { clientResponseHeaders, isEventStream } from './headers.js';
import type { StreamMask } from './key-scan.js';
import type { OpenStreams } from './open-streams.js';

export type Outcome = 'ok' | 'client_aborted' | 'upstream_error' | 'stream_interrupted' | 'shutdown_interrupted';

export interface RelayResult {
  outcome: Outcome;
  status: number;
  upstreamStatus?: number;
  /** ms from the start of the relay to the first byte written to the client. */
  ttfbMs?: number;
  bytesOut: number;
  error?: GatewayError;
}

export interface Delivery {
  res: ServerResponse;
  requestId: string;
  /** Headers the gateway adds to the answer (such as the user's own x-ratelimit-*). */
  extraHeaders?: OutgoingHttpHeaders;
  /** Sees the answer as it passes (usage accounting); may rewrite a chunk before it is sent. */
  tap?: ResponseTap;
  /** Masks the pool keys in what is sent, after the tap (it may hold back a key's first bytes). */
  mask?: StreamMask;
  /** `performance.now()` when the client's request began, for the time to first byte. */
  started: number;
  /** Where the stream registers itself so a shutdown can end it (src/relay/open-streams.ts). */
  streams?: OpenStreams;
}

export interface ResponseTap {
  /** Called once with the upstream's status and headers, before any body byte. */
  start(status: number, headers: Record<string, string | string[] | undefined>): void;
  /** Returns the bytes to send for this upstream chunk (the chunk itself when unchanged). */
  chunk(chunk: Buffer): Buffer;
  /** The answer ended: cleanly, or not (`complete` false: cut, aborted or failed). */
  end(complete: boolean): void;
}

/** SSE error event for a stream that ends early (README, "The relay"): cut upstream, or a shutdown. */
function interruptionEvent(atEventBoundary: boolean, code: ErrorCode = 'upstream_stream_interrupted'): string {
  const error = new GatewayError(code);
  return `${atEventBoundary ? '' : '\n\n'}data: ${JSON.stringify(error.body())}\n\n`;
}

function endsEvent(chunk: Buffer): boolean {
  const n = chunk.length;
  return n >= 2 && chunk[n - 1] === 0x0a && (chunk[n - 2] === 0x0a || (n >= 3 && chunk[n - 2] === 0x0d && chunk[n - 3] === 0x0a));
}

/** The client's answer headers for an upstream answer. */
export function answerHeaders(answer: UpstreamAnswer, d: Pick<Delivery, 'res' | 'requestId' | 'extraHeaders'>): OutgoingHttpHeaders {
  const headers = clientResponseHeaders(answer.headers, d.requestId);
  if (d.extraHeaders) Object.assign(headers, d.extraHeaders);
  keepVary(d.res, headers);
  return headers;
}

export function deliverStream(answer: UpstreamAnswer, d: Delivery): Promise<RelayResult> {
  d.tap?.start(answer.status, answer.headers);
  const sse = isEventStream(answer.headers['content-type']);
  d.res.writeHead(answer.status, answerHeaders(answer, d));
  return pump(answer, d, sse);
}

/** Copies the upstream body to the client, chunk by chunk, honouring backpressure both ways. */
function pump(answer: UpstreamAnswer, r: Delivery, sse: boolean): Promise<RelayResult> {
  const { res, started } = r;
  const body = answer.body;
  const result: RelayResult = { outcome: 'ok', status: answer.status, upstreamStatus: answer.status, bytesOut: 0 };
  let atBoundary = true;

  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      unregister?.();
      res.off('drain', onDrain);
      body.off('data', onData);
      r.tap?.end(result.outcome === 'ok');
      resolve(result);
    };
    const onData = (upstreamChunk: Buffer) => {
      const tapped = r.tap ? r.tap.chunk(upstreamChunk) : upstreamChunk;
      const chunk = r.mask ? r.mask.chunk(tapped) : tapped;
      if (chunk.length === 0) return;
      if (result.bytesOut === 0) result.ttfbMs = performance.now() - started;
      result.bytesOut += chunk.length;
      if (sse) atBoundary = endsEvent(chunk);
      if (!res.write(chunk)) body.pause();
    };
    const onDrain = () => body.resume();
    // A shutdown's grace period is over: SSE gets a last error event, anything else is cut, and the
    // upstream is aborted; the tap is told the answer is incomplete, so what was streamed is charged.
    const unregister = r.streams?.add(() => {
      if (done) return;
      result.outcome = 'shutdown_interrupted';
      result.error = new GatewayError('shutting_down');
      res.shouldKeepAlive = false;
      if (sse && !res.writableEnded) res.end(interruptionEvent(atBoundary, 'shutting_down'));
      else res.destroy();
      body.destroy();
      finish();
    });
    body.on('data', onData);
    res.on('drain', onDrain);
    // An SSE client (an SDK) waits for the headers, so they must not wait for a first event that
    // is slow to come. But that event usually came in with them: written in this turn of the event
    // loop, it carries the headers in the same write, one syscall instead of two.
    if (sse) {
      setImmediate(() => {
        if (!done && result.bytesOut === 0 && !res.destroyed) res.flushHeaders();
      });
    }
    body.once('end', () => {
      const rest = r.mask?.end();
      if (rest && rest.length > 0) {
        if (result.bytesOut === 0) result.ttfbMs = performance.now() - started;
        result.bytesOut += rest.length;
      }
      res.end(rest);
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

/** Two taps as one: the first may rewrite what is sent; the second sees the upstream's own bytes. */
export function joinTaps(first: ResponseTap, second: ResponseTap | undefined): ResponseTap {
  if (!second) return first;
  return {
    start(status, headers) {
      first.start(status, headers);
      second.start(status, headers);
    },
    chunk(chunk) {
      second.chunk(chunk);
      return first.chunk(chunk);
    },
    end(complete) {
      first.end(complete);
      second.end(complete);
    },
  };
}
