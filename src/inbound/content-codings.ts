// A request body sent with a Content-Encoding (gzip, deflate, br, ...). The gateway reads request
// bodies as sent and decodes none: what it checks before relaying (a JSON body's model and token
// cap, a form's model and the object ids it names) would be read in compressed bytes, that is
// blind, while the upstream might inflate the body and read what the gateway never saw. Decoding
// instead would cost the gateway the inflated size in CPU for each body, up to a thousand times
// its bytes (a gzip bomb), for clients that have no need of it: OpenAI's SDKs send bodies
// uncompressed. So such a body is refused here, as it arrives, before its key is looked up or a
// byte of it read (RFC 9110 12.5.3: `accept-encoding` in the answer says what would be taken).
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.js';

function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

/** The 400 of a request whose body has a content coding other than identity, or undefined. */
export function contentCodingError(req: IncomingMessage): GatewayError | undefined {
  const codings = req.headers['content-encoding'];
  if (codings === undefined || !hasBody(req)) return undefined;
  const named = codings.split(',').map((c) => c.trim().toLowerCase()).filter(Boolean);
  if (named.every((c) => c === 'identity')) return undefined;
  // The value is not quoted back: a client may put anything there, a key included.
  return new GatewayError('unsupported_content_encoding', { headers: { 'accept-encoding': 'identity' } });
}
