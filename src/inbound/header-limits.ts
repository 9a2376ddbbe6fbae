// How much a request's head may hold (docs/connections.md): its bytes (Node's maxHeaderSize, whose
// overflow reaches the clientError answer of slow-clients.ts) and its number of header fields.
//
// Node's own field limit (maxHeadersCount) does not refuse a request: it drops the fields past it
// without a word, so a request would be judged on headers other than those it sent. Node is told
// to keep one field more than the limit instead, and a request that has that many is refused here
// with the same 431 as an oversized head.
import type { IncomingMessage, Server } from 'node:http';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

type Settings = Config['inbound'];

/** The Node server option these limits set. */
export function headerSizeOption(settings: Settings) {
  return { maxHeaderSize: settings.maxHeaderBytes };
}

/** To be called on the server before it listens. */
export function keepOneFieldMore(server: Server, settings: Settings): void {
  server.maxHeadersCount = settings.maxHeadersCount + 1;
}

/** The 431 of a request with more header fields than the limit, or undefined. */
export function headerCountError(req: IncomingMessage, settings: Settings): GatewayError | undefined {
  if (req.rawHeaders.length / 2 <= settings.maxHeadersCount) return undefined;
  return new GatewayError('invalid_header', {
    status: 431,
    message: `The request has more than ${settings.maxHeadersCount} header fields.`,
  });
}
