// Which proxy of a list to try first. A proxy that failed is passed over for a cool-down while the
// list has another; when every one is cooling, the one that recovers first is tried (a list of one
// is therefore always tried: the cool-down only reorders, it never leaves a request without a proxy).
import type { ProxyEndpoint } from './url.js';

export interface ProxyFailure {
  proxy: ProxyEndpoint;
  code: string;
  untilMs: number;
}

export class ProxyHealth {
  private readonly coolingUntil = new Map<string, number>();

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
    private readonly onFailure?: (failure: ProxyFailure) => void,
  ) {}

  /** The proxies to try for one connection, in order. */
  candidates(proxies: readonly ProxyEndpoint[]): ProxyEndpoint[] {
    const now = this.now();
    const healthy = proxies.filter((p) => (this.coolingUntil.get(p.id) ?? 0) <= now);
    if (healthy.length > 0) return healthy;
    const soonest = [...proxies].sort((a, b) => (this.coolingUntil.get(a.id) ?? 0) - (this.coolingUntil.get(b.id) ?? 0));
    return soonest.slice(0, 1);
  }

  /** Sets the proxy aside; reports it when it was not already set aside (one line per outage, not per request). */
  failed(proxy: ProxyEndpoint, code: string): void {
    const now = this.now();
    const wasHealthy = (this.coolingUntil.get(proxy.id) ?? 0) <= now;
    const untilMs = now + this.cooldownMs;
    this.coolingUntil.set(proxy.id, untilMs);
    if (wasHealthy) this.onFailure?.({ proxy, code, untilMs });
  }

  succeeded(proxy: ProxyEndpoint): void {
    this.coolingUntil.delete(proxy.id);
  }

  /** A proxy no setting names any more (its id, ProxyEndpoint.id). */
  forget(proxyId: string): void {
    this.coolingUntil.delete(proxyId);
  }
}
