// Maps a failure of the upstream call to the gateway's error catalogue, on undici's and Node's
// error codes, never on message text.
import { GatewayError } from '../errors.js';

const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

export function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
    current = current.cause;
  }
  return undefined;
}

export function mapUpstreamError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = errorCode(err);
  if (code !== undefined && TIMEOUTS.has(code)) {
    return new GatewayError('upstream_timeout', { cause: err });
  }
  if (code === 'UND_ERR_INVALID_ARG') {
    return new GatewayError('invalid_header', { cause: err });
  }
  return new GatewayError('upstream_unreachable', { cause: err });
}
