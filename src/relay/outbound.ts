// The undici dispatchers that carry upstream traffic, chosen per request: one Agent for direct
// connections and one per distinct proxy list, each used by every upstream and pool key whose most
// specific proxy setting names that list (src/proxy/plan.ts). Each pool key's route is worked out
// the first time it is used and kept with the key object, so a key added or changed at run time
// (a new object, src/pool/pool.ts) gets its own without a restart. Each dispatcher keeps idle
// connections `upstreamConnections.keepAliveMs`, one warm connection per upstream (warm.ts) and the
// TLS sessions of its upstreams (upstream-connector.ts).
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import { Agent, type Dispatcher, type buildConnector } from 'undici';
import type { Config } from '../config.js';
import type { PoolChoice, PoolKey } from '../pool/pool.js';
import { chainConnector } from '../proxy/connector.js';
import { ProxyHealth } from '../proxy/health.js';
import { HttpConnectTunnel } from '../proxy/http-tunnel.js';
import { proxyRouteFor } from '../proxy/plan.js';
import { Socks5Tunnel } from '../proxy/socks5-tunnel.js';
import type { Tunnel } from '../proxy/tunnel.js';
import type { ProxyEndpoint } from '../proxy/url.js';
import { upstreamConnector } from './upstream-connector.js';
import { WarmConnections } from './warm.js';

export interface Outbound {
  /** `upgrade`: for a WebSocket handshake, which always goes over HTTP/1.1 (see `http2`). */
  dispatcherFor(choice: PoolChoice, use?: 'request' | 'upgrade'): Dispatcher;
  /** After a pool key was removed or disabled: closes the warm connections no usable key needs. */
  refresh(): void;
  close(): Promise<void>;
}

export interface OutboundOptions {
  log?: Logger;
  /** Whether a pool key (its ref) is present and not disabled; without it, every key is. */
  keyLive?: (keyRef: string) => boolean;
}

export function createOutbound(config: Config, options: OutboundOptions = {}): Outbound {
  const { log } = options;
  const { timeouts, upstreamConnections: connections } = config;
  const agentOptions = {
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
    keepAliveTimeout: connections.keepAliveMs,
    keepAliveMaxTimeout: connections.keepAliveMs,
    allowH2: connections.http2,
  };
  const warm = connections.warm
    ? new WarmConnections({ maxIdleMs: connections.keepAliveMs, forMs: connections.warmForMs, live: options.keyLive ?? (() => true) })
    : undefined;
  const connectorOf = (chain: string, connector: buildConnector.connector) => (warm ? warm.wrap(chain, connector) : connector);
  const upstreamTls = (allowH2 = connections.http2) => upstreamConnector({ timeout: timeouts.connectMs, allowH2 });
  const DIRECT = '[]';
  const direct = new Agent({ ...agentOptions, connect: connectorOf(DIRECT, upstreamTls()) });

  const caFile = config.proxyOptions.caFile;
  const ca = caFile === undefined ? undefined : [...rootCertificates, readFileSync(caFile, 'utf8')];
  const health = new ProxyHealth(config.proxyOptions.cooldownMs, Date.now, ({ proxy, code, untilMs }) =>
    log?.warn({ proxy: proxy.masked, code, until: new Date(untilMs).toISOString() }, 'outbound proxy failed: passed over while its list has another'),
  );

  const tunnels = new Map<string, Tunnel>();
  const tunnelFor = (proxy: ProxyEndpoint): Tunnel => {
    let tunnel = tunnels.get(proxy.id);
    if (!tunnel) {
      tunnel = proxy.kind === 'http' || proxy.kind === 'https'
        ? new HttpConnectTunnel(proxy, { connectMs: timeouts.connectMs, ca })
        : new Socks5Tunnel(proxy);
      tunnels.set(proxy.id, tunnel);
    }
    return tunnel;
  };

  interface Route {
    chain: string;
    proxies: readonly ProxyEndpoint[];
    dispatcher: Dispatcher;
    /** With `http2` on: an HTTP/1.1 dispatcher for WebSocket handshakes, made on first use. */
    upgrades?: Dispatcher;
  }
  const directRoute: Route = { chain: DIRECT, proxies: [], dispatcher: direct };
  const chains = new Map<string, Route>();
  const routeOf = (proxies: readonly ProxyEndpoint[]): Route => {
    if (proxies.length === 0) return directRoute;
    const chain = JSON.stringify(proxies.map((p) => p.id));
    let route = chains.get(chain);
    if (!route) {
      for (const proxy of proxies) tunnelFor(proxy);
      const connector = connectorOf(chain, chainConnector({ proxies, tunnelFor, health, connectMs: timeouts.connectMs, upstreamTls: upstreamTls() }));
      route = { chain, proxies, dispatcher: new Agent({ ...agentOptions, connect: connector }) };
      chains.set(chain, route);
    }
    return route;
  };
  // undici sends a WebSocket handshake over HTTP/2 as an extended CONNECT (RFC 8441), which an
  // upstream that negotiated HTTP/2 but does not take it refuses: handshakes keep to HTTP/1.1.
  const upgradesOf = (route: Route): Dispatcher => {
    if (!connections.http2) return route.dispatcher;
    if (!route.upgrades) {
      const tls = upstreamTls(false);
      const connect = route.proxies.length === 0 ? tls : chainConnector({ proxies: route.proxies, tunnelFor, health, connectMs: timeouts.connectMs, upstreamTls: tls });
      route.upgrades = new Agent({ ...agentOptions, allowH2: false, connect });
    }
    return route.upgrades;
  };

  const routes = new WeakMap<PoolKey, Route>();

  return {
    dispatcherFor(choice, use = 'request') {
      let route = routes.get(choice.key);
      if (!route) {
        // Never a direct connection by default: proxyRouteFor throws on a proxy it cannot parse.
        route = routeOf(proxyRouteFor(config, choice.upstream, choice.key).proxies);
        routes.set(choice.key, route);
      }
      if (use === 'upgrade' && connections.http2) return upgradesOf(route);
      warm?.use(route.chain, choice.upstream.origin, choice.key.ref);
      return route.dispatcher;
    },
    refresh() {
      warm?.refresh();
    },
    async close() {
      warm?.close();
      const all = [directRoute, ...chains.values()];
      const agents = [...all.map((r) => r.dispatcher), ...all.flatMap((r) => (r.upgrades ? [r.upgrades] : []))];
      await Promise.all([...agents.map((a) => a.close()), ...[...tunnels.values()].map((t) => t.close())]);
    },
  };
}
