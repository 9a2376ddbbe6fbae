// A request with an `Expect` other than `100-continue`. Node answers it 417 with an empty body of
// its own, which no SDK can read as an error; this answers the same status OpenAI-shaped, as every
// error of the gateway is (README, "Errors"). The request is not read: the client holds its body
// back until told to send it, so the connection closes after the answer.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, errorBody } from '../errors.js';

export function refuseExpectation(_req: IncomingMessage, res: ServerResponse): void {
  const id = randomUUID();
  // The header's value is not quoted back: a client may put anything there, a key included.
  const error = new GatewayError('invalid_header', { status: 417, message: 'The Expect header is not supported, except for Expect: 100-continue.' });
  const body = errorBody(error);
  res.shouldKeepAlive = false;
  res.writeHead(error.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': id,
    'x-keyrelay-request-id': id,
  });
  res.end(body);
}
