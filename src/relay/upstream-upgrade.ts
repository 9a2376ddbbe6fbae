// The upstream half of a WebSocket handshake, on undici's dispatch API. undici's `upgrade()` turns
// any answer but 101 into a bare error; failover needs the refusal itself (a 401 or 429 is the
// key's: the handshake goes to another key, or the refusal goes to the client with its status).
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Dispatcher, errors } from 'undici';
import { ClientAbortError } from './exchange.js';

export type UpgradeResult =
  | { kind: 'upgraded'; status: number; headers: IncomingHttpHeaders; socket: Duplex }
  /** Any other answer; `body` holds its first 64 KB. */
  | { kind: 'refused'; status: number; headers: IncomingHttpHeaders; body: Buffer }
  | { kind: 'failed'; error: Error; written: boolean; aborted: boolean };

const REFUSAL_BODY_LIMIT = 64 * 1024;

/**
 * `deadlineMs`: how long a refusal's body may take to come whole (timeouts.bodyIdleMs); one that
 * trickles, or goes on past 64 KB, is judged on what came, and the rest is not waited for.
 */
export function upgradeUpstream(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, signal: AbortSignal, deadlineMs: number): Promise<UpgradeResult> {
  return new Promise((resolve) => {
    let controller: Dispatcher.DispatchController | undefined;
    let written = false;
    let refusal: { status: number; headers: IncomingHttpHeaders; chunks: Buffer[]; size: number } | undefined;
    let settled = false;
    let deadline: NodeJS.Timeout | undefined;
    const settle = (result: UpgradeResult): boolean => {
      clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
      if (settled) return false;
      settled = true;
      resolve(result);
      return true;
    };
    const refused = () => {
      if (refusal) settle({ kind: 'refused', status: refusal.status, headers: refusal.headers, body: Buffer.concat(refusal.chunks, refusal.size) });
    };
    const onAbort = () => {
      if (controller) controller.abort(new ClientAbortError());
      else settle({ kind: 'failed', error: new ClientAbortError(), written: false, aborted: true });
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });

    dispatcher.dispatch(options, {
      onRequestStart(c) {
        controller = c;
        written = true;
        if (signal.aborted) c.abort(new ClientAbortError());
      },
      onRequestUpgrade(_c, status, headers, socket) {
        if (!settle({ kind: 'upgraded', status, headers, socket })) socket.destroy();
      },
      onResponseStart(c, status, headers) {
        // undici restarts its headers timeout on each informational answer: from the first, the
        // real one must come within it, or 103s without end would hold the handshake forever.
        if (status < 200) {
          deadline ??= setTimeout(() => c.abort(new errors.HeadersTimeoutError()), options.headersTimeout ?? deadlineMs);
          return;
        }
        clearTimeout(deadline);
        refusal = { status, headers, chunks: [], size: 0 };
        deadline = setTimeout(() => {
          refused();
          c.abort(new ClientAbortError());
        }, deadlineMs);
      },
      onResponseData(c, chunk) {
        if (!refusal || settled) return;
        const part = chunk.subarray(0, REFUSAL_BODY_LIMIT - refusal.size);
        refusal.chunks.push(part);
        refusal.size += part.length;
        if (refusal.size < REFUSAL_BODY_LIMIT) return;
        // Nothing past the bound is kept: no need to read it.
        refused();
        c.abort(new ClientAbortError());
      },
      onResponseEnd: refused,
      onResponseError(_c, error) {
        // A refusal whose body broke off is still a refusal; without a status it is a failure.
        if (refusal && !signal.aborted) refused();
        else settle({ kind: 'failed', error, written, aborted: signal.aborted });
      },
    });
  });
}
