// The undici `connect` function of one proxy list: it opens a tunnel through the first proxy that
// works, inside one deadline per proxy, then speaks TLS to the upstream through it when the
// upstream is https://. A proxy that fails is set aside and the next one tried: nothing of the
// request has been sent yet, so this is safe for every body, streamed uploads and WebSocket
// upgrades included. Errors that are not the proxy's (the gateway's own DNS for socks5://, TLS
// with the upstream) end the attempt at once.
import type { Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { ProxyError } from './errors.js';
import type { ProxyHealth } from './health.js';
import type { Tunnel, TunnelTarget } from './tunnel.js';
import type { ProxyEndpoint } from './url.js';

export interface ChainOptions {
  proxies: readonly ProxyEndpoint[];
  tunnelFor: (proxy: ProxyEndpoint) => Tunnel;
  health: ProxyHealth;
  /** Deadline for each proxy's tunnel. */
  connectMs: number;
  /** TLS with the upstream inside the tunnel (`httpSocket`), with its own deadline. */
  upstreamTls: buildConnector.connector;
}

async function openWithin(tunnel: Tunnel, proxy: ProxyEndpoint, target: TunnelTarget, ms: number): Promise<Socket> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new ProxyError('timeout', proxy, `no tunnel to ${target.host}:${target.port} within ${ms} ms`)), ms);
  try {
    return await tunnel.open(target, controller.signal);
  } catch (err) {
    if (controller.signal.aborted && controller.signal.reason instanceof ProxyError) throw controller.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export function chainConnector(options: ChainOptions): buildConnector.connector {
  const { upstreamTls } = options;

  async function tunnel(target: TunnelTarget): Promise<Socket> {
    let lastError: ProxyError | undefined;
    for (const proxy of options.health.candidates(options.proxies)) {
      try {
        const socket = await openWithin(options.tunnelFor(proxy), proxy, target, options.connectMs);
        // An upstream speaks only once asked: bytes already in the tunnel are the proxy's own. Handed
        // to undici, they fail the connection before the request is written, and undici then opens
        // another tunnel for the same request, and another, without end.
        if (socket.readableLength > 0) {
          socket.destroy();
          throw new ProxyError('protocol', proxy, `sent bytes of its own into the tunnel to ${target.host}:${target.port}`);
        }
        options.health.succeeded(proxy);
        return socket;
      } catch (err) {
        if (!(err instanceof ProxyError)) throw err;
        options.health.failed(proxy, err.code);
        lastError = err;
      }
    }
    // candidates() never returns an empty list for a non-empty chain.
    throw lastError ?? new Error('no proxy to try');
  }

  return (connectOptions, callback) => {
    const https = connectOptions.protocol === 'https:';
    const target = {
      host: connectOptions.hostname.replace(/^\[|\]$/g, ''),
      port: Number(connectOptions.port) || (https ? 443 : 80),
    };
    tunnel(target).then(
      (socket) => {
        if (!https) return callback(null, socket);
        upstreamTls({ ...connectOptions, httpSocket: socket }, callback);
      },
      (err: Error) => callback(err, null),
    );
  };
}
