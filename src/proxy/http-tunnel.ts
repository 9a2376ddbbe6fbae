// HTTP CONNECT tunnels (RFC 9110 section 9.3.6) through an http:// or https:// proxy, sent by an
// undici Pool to the proxy built once at start. A CONNECT that gets no answer is bounded by the
// pool's headers timeout as well as by the caller's deadline.
import { Socket } from 'node:net';
import { type Dispatcher, Pool, buildConnector } from 'undici';
import { errorCode } from '../relay/upstream-errors.js';
import { ProxyError, type ProxyErrorKind } from './errors.js';
import type { Tunnel, TunnelTarget } from './tunnel.js';
import { type ProxyEndpoint, hostForUrl } from './url.js';

const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'ETIMEDOUT']);
// The proxy accepted the connection, then closed it or answered with something that is not HTTP.
const BROKEN = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

function failureKind(err: unknown): ProxyErrorKind {
  const code = errorCode(err) ?? '';
  if (TIMEOUTS.has(code)) return 'timeout';
  if (BROKEN.has(code) || code.startsWith('HPE_')) return 'protocol';
  return 'unreachable';
}

export interface HttpTunnelOptions {
  connectMs: number;
  /** Trusted CAs for an https:// proxy; undefined keeps Node's own. */
  ca?: string[];
}

export class HttpConnectTunnel implements Tunnel {
  private readonly pool: Pool;
  private readonly authorization?: string;

  constructor(
    private readonly proxy: ProxyEndpoint,
    options: HttpTunnelOptions,
  ) {
    const tls = proxy.kind === 'https';
    this.pool = new Pool(`${proxy.kind}://${hostForUrl(proxy.hostname)}:${proxy.port}`, {
      connect: buildConnector({ timeout: options.connectMs, ...(tls && options.ca ? { ca: options.ca } : {}) }),
      headersTimeout: options.connectMs,
    });
    if (proxy.username !== undefined) {
      this.authorization = `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}`;
    }
  }

  async open(target: TunnelTarget, signal: AbortSignal): Promise<Socket> {
    const authority = `${hostForUrl(target.host)}:${target.port}`;
    let answer: Dispatcher.ConnectData;
    try {
      answer = await this.pool.connect({
        path: authority,
        headers: { host: authority, ...(this.authorization ? { 'proxy-authorization': this.authorization } : {}) },
        signal,
      });
    } catch (err) {
      const kind = failureKind(err);
      throw new ProxyError(kind, this.proxy, kind === 'timeout' ? `no answer to CONNECT ${authority} in time` : `CONNECT ${authority} failed`, { cause: err });
    }
    const { statusCode, socket } = answer;
    if (statusCode >= 200 && statusCode < 300 && socket instanceof Socket) return socket;
    socket.on('error', () => {}).destroy();
    throw new ProxyError(statusCode === 407 ? 'auth' : 'refused', this.proxy, `answered CONNECT ${authority} with ${statusCode}`);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
