// The undici dispatchers that carry upstream traffic, chosen per request: one Agent for direct
// connections and one per distinct proxy list, each used by every upstream and pool key whose most
// specific proxy setting names that list (src/proxy/plan.ts). Each pool key's route is worked out
// the first time it is used and kept with the key object, so a key added or changed at run time
// (a new object, src/pool/pool.ts) gets its own without a restart.
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import { Agent, type Dispatcher } from 'undici';
import type { Config } from '../config.js';
import type { PoolChoice, PoolKey } from '../pool/pool.js';
import { chainConnector } from '../proxy/connector.js';
import { ProxyHealth } from '../proxy/health.js';
import { HttpConnectTunnel } from '../proxy/http-tunnel.js';
import { proxyRouteFor } from '../proxy/plan.js';
import { Socks5Tunnel } from '../proxy/socks5-tunnel.js';
import type { Tunnel } from '../proxy/tunnel.js';
import type { ProxyEndpoint } from '../proxy/url.js';

export interface Outbound {
  dispatcherFor(choice: PoolChoice): Dispatcher;
  close(): Promise<void>;
}

export function createOutbound(config: Config, log?: Logger): Outbound {
  const { timeouts } = config;
  const agentOptions = {
    headersTimeout: timeouts.headersMs,
    bodyTimeout: timeouts.bodyIdleMs,
    keepAliveTimeout: 30_000,
  };
  const direct = new Agent({ connect: { timeout: timeouts.connectMs }, ...agentOptions });

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

  const chains = new Map<string, Agent>();
  const dispatcherOf = (proxies: readonly ProxyEndpoint[]): Dispatcher => {
    if (proxies.length === 0) return direct;
    const chainId = JSON.stringify(proxies.map((p) => p.id));
    let agent = chains.get(chainId);
    if (!agent) {
      for (const proxy of proxies) tunnelFor(proxy);
      agent = new Agent({ ...agentOptions, connect: chainConnector({ proxies, tunnelFor, health, connectMs: timeouts.connectMs }) });
      chains.set(chainId, agent);
    }
    return agent;
  };

  const routes = new WeakMap<PoolKey, Dispatcher>();

  return {
    dispatcherFor(choice) {
      let dispatcher = routes.get(choice.key);
      if (!dispatcher) {
        // Never a direct connection by default: proxyRouteFor throws on a proxy it cannot parse.
        dispatcher = dispatcherOf(proxyRouteFor(config, choice.upstream, choice.key).proxies);
        routes.set(choice.key, dispatcher);
      }
      return dispatcher;
    },
    async close() {
      await Promise.all([direct.close(), ...[...chains.values()].map((a) => a.close()), ...[...tunnels.values()].map((t) => t.close())]);
    },
  };
}
