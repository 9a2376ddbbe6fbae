// Gateway-made answers written straight to the Node response (the relay path bypasses Fastify's
// reply once it has taken the request over).
import type { ServerResponse } from 'node:http';
import { type GatewayError, errorBody } from '../errors.js';

/** Writes the error answer; returns its body's size (0 when it could only cut the connection). */
export function writeError(res: ServerResponse, error: GatewayError, requestId: string): number {
  if (res.headersSent) {
    res.destroy();
    return 0;
  }
  const body = errorBody(error);
  // A request whose body was not read to its end cannot share its connection with the next one.
  if (!res.req.complete) res.shouldKeepAlive = false;
  res.writeHead(error.status, {
    ...error.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'x-keyrelay-request-id': requestId,
  });
  res.end(body);
  return Buffer.byteLength(body);
}
