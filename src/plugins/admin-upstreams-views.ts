// Upstreams and pool keys as the admin API shows them: never a secret (pool keys by their last 4
// characters, proxy URLs with the password starred), and each key's health as selection sees it.
import type { KeyHealth } from '../pool/health.js';
import type { PoolKey, Upstream } from '../pool/pool.js';
import { proxyList } from '../proxy/plan.js';
import { DIRECT, parseProxyUrl } from '../proxy/url.js';

function proxyView(setting: string | readonly string[] | undefined): string[] | null {
  const urls = proxyList(setting);
  if (urls === undefined || urls.length === 0) return null;
  return urls.map((url) => (url === DIRECT ? DIRECT : parseProxyUrl(url).masked));
}

/** A base URL from the settings may hold a password; it is starred like a proxy's. */
function baseUrlView(baseUrl: string): string {
  try {
    const url = new URL(baseUrl);
    if (!url.username && !url.password) return baseUrl;
    url.password = url.password ? '***' : '';
    return url.toString();
  } catch {
    return baseUrl;
  }
}

/**
 * `until` (ISO 8601) is when a cooling key is usable again or a disabled key is next probed; null
 * when it is active, or disabled by hand. Counts are this process's, since it started.
 */
export function keyView(key: PoolKey, health: KeyHealth) {
  const view = health.view(key.ref);
  return {
    id: key.id,
    source: key.source,
    last4: key.last4,
    weight: key.weight,
    models: key.models ?? null,
    organization: key.organization ?? null,
    project: key.project ?? null,
    proxy: proxyView(key.proxy),
    state: view.state,
    until: view.until === undefined ? null : new Date(view.until).toISOString(),
    reason: view.reason ?? null,
    inFlight: view.inFlight,
    requests: view.requests,
    failures: view.failures,
    consecutiveFailures: view.consecutiveFailures,
  };
}

export function upstreamView(upstream: Upstream, health: KeyHealth) {
  return {
    id: upstream.id,
    source: upstream.source,
    kind: upstream.kind,
    baseUrl: baseUrlView(upstream.baseUrl),
    ...(upstream.azure
      ? { form: upstream.azure.form, deployments: Object.fromEntries(upstream.azure.deployments), apiVersion: upstream.azure.apiVersion ?? null }
      : {}),
    models: upstream.models ?? null,
    strategy: upstream.strategy,
    // Its own, as set: the settings' top-level aliases apply besides (docs/models.md).
    aliases: upstream.ownAliases ?? {},
    proxy: proxyView(upstream.proxy),
    keys: upstream.keys.map((k) => keyView(k, health)),
  };
}
