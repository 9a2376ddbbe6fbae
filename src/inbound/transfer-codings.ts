// A request whose Transfer-Encoding does not end in `chunked` has a body of no knowable length
// (RFC 9112 6.3: the server must answer 400 and close). Node hands such a request over as usual
// and only then finds its parser in error, where the gateway can do no more than close the
// connection: the client got nothing at all, not even the answer already written for it. It is
// answered here first, as it arrives, and the parser's error then only closes the connection
// once that answer is written (slow-clients.ts, clientError).
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.js';

/** The 400 of a request with a transfer coding other than chunked last, or undefined. */
export function transferCodingError(req: IncomingMessage): GatewayError | undefined {
  const codings = req.headers['transfer-encoding'];
  if (codings === undefined) return undefined;
  const last = codings.split(',').pop()?.trim().toLowerCase();
  if (last === 'chunked') return undefined;
  // The value is not quoted back: a client may put anything there, a key included.
  return new GatewayError('invalid_request', { message: 'The request body has a Transfer-Encoding other than chunked, so its length cannot be known.' });
}
