// Failures of the outbound proxy itself, raised while a tunnel is being opened: before any byte of
// the request has left, so the pool key is not to blame and another proxy may be tried. Each has a
// stable code; messages name the proxy in its masked form only.
import type { ProxyEndpoint } from './url.js';

export const PROXY_ERROR_CODES = {
  /** The proxy could not be reached (refused, unknown host, TLS to the proxy failed). */
  unreachable: 'ERR_PROXY_UNREACHABLE',
  /** The proxy did not finish the handshake or the CONNECT in time. */
  timeout: 'ERR_PROXY_TIMEOUT',
  /** The proxy refused our credentials (HTTP 407, SOCKS5 authentication). */
  auth: 'ERR_PROXY_AUTH',
  /** The proxy refused to open the tunnel (a CONNECT answer other than 2xx, a SOCKS5 reply other than 0). */
  refused: 'ERR_PROXY_REFUSED',
  /** The proxy broke the protocol or closed the connection during the handshake. */
  protocol: 'ERR_PROXY_PROTOCOL',
} as const;

export type ProxyErrorKind = keyof typeof PROXY_ERROR_CODES;
export type ProxyErrorCode = (typeof PROXY_ERROR_CODES)[ProxyErrorKind];

export class ProxyError extends Error {
  override name = 'ProxyError';
  readonly code: ProxyErrorCode;

  constructor(
    readonly kind: ProxyErrorKind,
    proxy: ProxyEndpoint,
    detail: string,
    options: { cause?: unknown } = {},
  ) {
    super(`proxy ${proxy.masked}: ${detail}`, options);
    this.code = PROXY_ERROR_CODES[kind];
  }
}
