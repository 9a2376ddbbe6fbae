// One HTTP exchange with the upstream, on undici's dispatch API rather than `request()`, because
// failover needs to know one thing `request()` hides: whether undici had begun writing the request
// on a connected socket (`onRequestStart`). A failure before that (a refused or reset connection,
// a failed TLS handshake, a proxy that would not tunnel) carried nothing to the upstream and may go
// to another key whatever the method; after it the upstream may have the request (retry.ts).
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { type Dispatcher, errors } from 'undici';
import type { AbortLike } from './client-gone.js';

export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The answer's body; destroyed with the transport error when the answer breaks off. */
  body: Readable;
}

export type ExchangeResult =
  | { ok: true; answer: UpstreamAnswer }
  /**
   * `written`: the request had begun to go out; `sent`: all of it had, so the upstream may be
   * working on it (and billing it); `aborted`: the caller's signal ended it.
   */
  | { ok: false; error: Error; written: boolean; sent: boolean; aborted: boolean };

// undici's own default, for a dispatch that sets none.
const DEFAULT_HEADERS_MS = 300_000;

export class ClientAbortError extends Error {
  override name = 'ClientAbortError';
  constructor() {
    super('the client went away');
  }
}

/** Sends the request; resolves once the status and headers are in, or the exchange failed. */
export function exchange(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, signal: AbortLike): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    let controller: Dispatcher.DispatchController | undefined;
    let written = false;
    // undici writes a buffered body with the request's head, at once; a streamed body (an upload)
    // has all gone out once undici has read it to its end. undici's dispatch API has no event of
    // its own for "request sent".
    const upload = options.body instanceof Readable ? options.body : undefined;
    const sent = () => written && (upload === undefined || upload.readableEnded);
    let body: Readable | undefined;
    let settled = false;
    let ended = false;
    let informational: NodeJS.Timeout | undefined;
    const settle = (result: ExchangeResult) => {
      signal.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      resolve(result);
    };
    // Before undici has a socket for the request there is nothing to abort yet: the caller is
    // answered at once, and the request is aborted the moment undici would start it.
    const onAbort = () => {
      if (controller) controller.abort(new ClientAbortError());
      else settle({ ok: false, error: new ClientAbortError(), written: false, sent: false, aborted: true });
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });

    dispatcher.dispatch(options, {
      onRequestStart(c) {
        controller = c;
        // Aborted here, undici writes nothing.
        if (signal.aborted) return c.abort(new ClientAbortError());
        written = true;
      },
      onResponseStart(c, status, headers) {
        // 1xx informational answers come before the real one. undici restarts its headers timeout
        // on each: an upstream sending 103s without end would hold the request forever. From the
        // first, the real answer must come within the headers timeout.
        if (status < 200) {
          informational ??= setTimeout(() => c.abort(new errors.HeadersTimeoutError()), options.headersTimeout ?? DEFAULT_HEADERS_MS);
          return;
        }
        clearTimeout(informational);
        body = new Readable({
          read: () => c.resume(),
          // Whoever destroys the body (the client went away) ends the upstream request with it.
          destroy: (err, callback) => {
            // After the last byte (the stream destroys itself once read to its end) there is
            // nothing left to abort, and an Error's stack is not free.
            if (err || !ended) c.abort(err ?? new ClientAbortError());
            callback(err);
          },
        });
        settle({ ok: true, answer: { status, headers, body } });
      },
      onResponseData(c, chunk) {
        if (body && !body.push(chunk)) c.pause();
      },
      onResponseEnd() {
        ended = true;
        body?.push(null);
      },
      onResponseError(_c, error) {
        clearTimeout(informational);
        if (body) body.destroy(error);
        else settle({ ok: false, error, written, sent: sent(), aborted: signal.aborted });
      },
    });
  });
}
