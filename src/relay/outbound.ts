// The undici dispatchers that carry upstream traffic, chosen per request: one Agent for direct
// connections and one per distinct proxy list, each used by every upstream and pool key whose most
// specific proxy setting names that list (src/proxy/plan.ts). Each pool key's route is worked out
// the first time it is used and kept with the key object, so a key added or changed at run time
// (a new object, src/pool/pool.ts) gets its own without a restart. Each dispatcher keeps idle
// connections `upstreamConnections.keepAliveMs`, one warm connection per upstream (warm.ts) and the
// TLS sessions of its upstreams (upstream-connector.ts).
//
// A proxy list that no configured key names any more (its upstream or key removed, its proxy
// changed) has its dispatchers let go at the next `refresh()`: they take no new request, undici
// lets the requests already on them finish, streams included, then closes their sockets; their
// tunnels and warm connections go with them. A request that still holds a key of before the change
// gets the list's dispatchers made anew, let go again at the next refresh.
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
  /** After a change of the pool: closes the warm connections no usable key needs, and lets go the dispatchers no key names. */
  refresh(): void;
  /** Dispatchers kept now, the direct one included (`keyrelay_outbound_dispatchers`). */
  size(): number;
  close(): Promise<void>;
}

export interface OutboundOptions {
  log?: Logger;
  /** Whether a pool key (its ref) is present and not disabled; without it, every key is. */
  keyLive?: (keyRef: string) => boolean;
  /** Every upstream and key configured now; without it, no dispatcher is ever let go. */
  configured?: () => Iterable<PoolChoice>;
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

  interface Route {
    chain: string;
    proxies: readonly ProxyEndpoint[];
    dispatcher: Dispatcher;
    /** With `http2` on: an HTTP/1.1 dispatcher for WebSocket handshakes, made on first use. */
    upgrades?: Dispatcher;
    /** One per proxy of the list, made on first use. */
    tunnels: Map<string, Tunnel>;
    /** Let go: a request that finds it makes the list's dispatchers anew. */
    retired?: boolean;
  }
  const tunnelsOf = (route: Route) => (proxy: ProxyEndpoint): Tunnel => {
    let tunnel = route.tunnels.get(proxy.id);
    if (!tunnel) {
      tunnel = proxy.kind === 'http' || proxy.kind === 'https'
        ? new HttpConnectTunnel(proxy, { connectMs: timeouts.connectMs, ca })
        : new Socks5Tunnel(proxy);
      route.tunnels.set(proxy.id, tunnel);
    }
    return tunnel;
  };

  const chainOf = (proxies: readonly ProxyEndpoint[]) => (proxies.length === 0 ? DIRECT : JSON.stringify(proxies.map((p) => p.id)));
  const directRoute: Route = { chain: DIRECT, proxies: [], dispatcher: direct, tunnels: new Map() };
  const chains = new Map<string, Route>();
  const routeOf = (proxies: readonly ProxyEndpoint[]): Route => {
    if (proxies.length === 0) return directRoute;
    const chain = chainOf(proxies);
    let route = chains.get(chain);
    if (!route) {
      const made: Route = { chain, proxies, dispatcher: direct, tunnels: new Map() };
      const connector = connectorOf(chain, chainConnector({ proxies, tunnelFor: tunnelsOf(made), health, connectMs: timeouts.connectMs, upstreamTls: upstreamTls() }));
      made.dispatcher = new Agent({ ...agentOptions, connect: connector });
      chains.set(chain, made);
      route = made;
    }
    return route;
  };
  // undici sends a WebSocket handshake over HTTP/2 as an extended CONNECT (RFC 8441), which an
  // upstream that negotiated HTTP/2 but does not take it refuses: handshakes keep to HTTP/1.1.
  const upgradesOf = (route: Route): Dispatcher => {
    if (!connections.http2) return route.dispatcher;
    if (!route.upgrades) {
      const tls = upstreamTls(false);
      const connect = route.proxies.length === 0 ? tls : chainConnector({ proxies: route.proxies, tunnelFor: tunnelsOf(route), health, connectMs: timeouts.connectMs, upstreamTls: tls });
      route.upgrades = new Agent({ ...agentOptions, allowH2: false, connect });
    }
    return route.upgrades;
  };

  const agentsOf = (route: Route) => (route.upgrades ? [route.dispatcher, route.upgrades] : [route.dispatcher]);
  /** Dispatchers being let go: `close()` waits for them. */
  const letGo = new Set<Promise<void>>();
  const retire = (route: Route): void => {
    route.retired = true;
    chains.delete(route.chain);
    warm?.forget(route.chain);
    // undici's close() takes no new request and resolves once those on the dispatcher have ended.
    const done = Promise.all(agentsOf(route).map((a) => a.close()))
      .then(() => Promise.all([...route.tunnels.values()].map((t) => t.close())))
      .then(() => {
        for (const proxy of route.proxies) if (![...chains.values()].some((r) => r.proxies.some((p) => p.id === proxy.id))) health.forget(proxy.id);
      })
      .catch((err: unknown) => log?.warn({ reason: (err as Error).message }, 'outbound: a dispatcher let go did not close cleanly'))
      .finally(() => letGo.delete(done));
    letGo.add(done);
  };

  const routes = new WeakMap<PoolKey, Route>();
  const routeFor = (choice: Pick<PoolChoice, 'upstream' | 'key'>): Route => {
    let route = routes.get(choice.key);
    if (!route || route.retired) {
      // Never a direct connection by default: proxyRouteFor throws on a proxy it cannot parse.
      route = routeOf(proxyRouteFor(config, choice.upstream, choice.key).proxies);
      routes.set(choice.key, route);
    }
    return route;
  };

  /** The proxy lists the keys configured now name. */
  const chainsNamed = (): Set<string> => {
    const named = new Set<string>();
    for (const choice of options.configured?.() ?? []) {
      const known = routes.get(choice.key);
      if (known && !known.retired) {
        named.add(known.chain);
        continue;
      }
      try {
        named.add(chainOf(proxyRouteFor(config, choice.upstream, choice.key).proxies));
      } catch {
        // A proxy that does not parse makes no dispatcher: its requests fail before one is asked for.
      }
    }
    return named;
  };

  return {
    dispatcherFor(choice, use = 'request') {
      const route = routeFor(choice);
      if (use === 'upgrade' && connections.http2) return upgradesOf(route);
      warm?.use(route.chain, choice.upstream.origin, choice.key.ref);
      return route.dispatcher;
    },
    refresh() {
      warm?.refresh();
      if (!options.configured || chains.size === 0) return;
      const named = chainsNamed();
      for (const route of [...chains.values()]) if (!named.has(route.chain)) retire(route);
    },
    size() {
      let n = 0;
      for (const route of [directRoute, ...chains.values()]) n += agentsOf(route).length;
      return n;
    },
    async close() {
      warm?.close();
      const all = [directRoute, ...chains.values()];
      await Promise.all([
        ...all.flatMap(agentsOf).map((a) => a.close()),
        ...all.flatMap((r) => [...r.tunnels.values()]).map((t) => t.close()),
        ...letGo,
      ]);
    },
  };
}
