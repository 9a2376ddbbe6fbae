// Which proxies carry each upstream's and each pool key's traffic. The most specific setting wins:
// the key's own `proxy`, then its upstream's, then the top-level `proxy` (KEYRELAY_PROXY sets the
// default upstream's), then the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY) unless NO_PROXY
// names the upstream's host. NO_PROXY never overrides a proxy written in the settings: only the
// word `direct` does, so traffic never goes around a named proxy by accident.
import type { Config, PoolKeyConfig, UpstreamConfig } from '../config.js';
import { environmentProxyFor } from './env.js';
import { DIRECT, type ProxyEndpoint, parseProxyUrl } from './url.js';

export type ProxySource = 'key' | 'upstream' | 'settings' | 'environment' | 'none';

export interface ProxyRoute {
  source: ProxySource;
  /** Tried in this order; empty means a direct connection. */
  proxies: readonly ProxyEndpoint[];
  /** `direct` or the masked proxy URLs joined by `, `: for start-up lines. */
  describe: string;
}

type ProxySetting = string | readonly string[] | undefined;

export function proxyList(setting: ProxySetting): string[] | undefined {
  if (setting === undefined) return undefined;
  return (typeof setting === 'string' ? [setting] : [...setting]).map((s) => s.trim()).filter(Boolean);
}

function route(source: ProxySource, urls: readonly string[]): ProxyRoute {
  const proxies = urls.includes(DIRECT) ? [] : urls.map(parseProxyUrl);
  return { source, proxies, describe: proxies.length === 0 ? DIRECT : proxies.map((p) => p.masked).join(', ') };
}

export function proxyRouteFor(
  config: Pick<Config, 'proxy' | 'proxyEnv'>,
  upstream: Pick<UpstreamConfig, 'baseUrl'> & { proxy?: ProxySetting },
  key?: { proxy?: ProxySetting },
): ProxyRoute {
  const candidates: Array<[ProxySource, ProxySetting]> = [
    ['key', key?.proxy],
    ['upstream', upstream.proxy],
    ['settings', config.proxy],
  ];
  for (const [source, setting] of candidates) {
    const urls = proxyList(setting);
    if (urls !== undefined && urls.length > 0) return route(source, urls);
  }
  const fromEnv = environmentProxyFor(new URL(upstream.baseUrl), config.proxyEnv);
  return fromEnv === undefined ? route('none', []) : route('environment', [fromEnv]);
}

export interface ProxyPlanLine {
  upstream: string;
  /** Set on lines of keys whose proxies differ from their upstream's. */
  poolKeyId?: string;
  route: ProxyRoute;
}

/** One line per upstream, plus one per pool key that has its own egress. */
export function proxyPlan(config: Config): ProxyPlanLine[] {
  const lines: ProxyPlanLine[] = [];
  for (const upstream of config.upstreams) {
    const base = proxyRouteFor(config, upstream);
    lines.push({ upstream: upstream.id, route: base });
    for (const key of upstream.keys) {
      const own = proxyRouteFor(config, upstream, key);
      if (own.source === 'key') lines.push({ upstream: upstream.id, poolKeyId: key.id, route: own });
    }
  }
  return lines;
}
