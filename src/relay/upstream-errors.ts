// Maps a failure of the upstream call to the gateway's error catalogue, on error classes and on
// undici's and Node's error codes, never on message text.
import { errors } from 'undici';
import { GatewayError } from '../errors.js';
import { isMalformedAnswer } from '../pool/outcome.js';
import { ProxyError } from '../proxy/errors.js';

const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

export function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    // undici's parser error may come without its llhttp code: it is one still.
    if (current instanceof errors.HTTPParserError) return 'HPE_INVALID';
    current = current.cause;
  }
  return undefined;
}

/** The proxy failure behind an error, if any (undici may wrap what a connector raised). */
export function proxyErrorOf(err: unknown): ProxyError | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    if (current instanceof ProxyError) return current;
    current = current.cause;
  }
  return undefined;
}

/**
 * A proxy failure happens before any byte of the request left (src/proxy/connector.ts): it is the
 * proxy's fault, never the pool key's. README, "Errors": 502 `upstream_proxy_error`, 504 on a timeout.
 */
function mapProxyError(err: ProxyError): GatewayError {
  if (err.kind === 'timeout') {
    return new GatewayError('upstream_proxy_error', { status: 504, message: 'The outbound proxy did not answer in time.', cause: err });
  }
  return new GatewayError('upstream_proxy_error', { cause: err });
}

export function mapUpstreamError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const proxyError = proxyErrorOf(err);
  if (proxyError) return mapProxyError(proxyError);
  const code = errorCode(err);
  if (code !== undefined && TIMEOUTS.has(code)) {
    return new GatewayError('upstream_timeout', { cause: err });
  }
  if (isMalformedAnswer(code)) {
    return new GatewayError('upstream_invalid_response', { message: 'The upstream sent an answer that is not valid HTTP, or a body that does not decode.', cause: err });
  }
  if (code === 'UND_ERR_INVALID_ARG') {
    return new GatewayError('invalid_header', { cause: err });
  }
  return new GatewayError('upstream_unreachable', { cause: err });
}
