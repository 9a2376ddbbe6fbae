// The proxy variables of the environment, read as curl reads them
// (https://curl.se/docs/manpage.html#ENVIRONMENT): the lower-case name first, `https_proxy` for
// https:// upstreams, `http_proxy` for http:// ones, `all_proxy` for both, and `no_proxy` with the
// matching rules of undici's EnvHttpProxyAgent.
//
// One difference from curl: curl ignores upper-case HTTP_PROXY because a CGI program's environment
// may carry a client's `Proxy:` header under that name (httpoxy). keyrelay reads its environment
// once at start, never per request, so HTTP_PROXY is honoured as the README lists it ("Settings").

type Env = Record<string, string | undefined>;

export interface ProxyEnv {
  httpsProxy?: string;
  httpProxy?: string;
  allProxy?: string;
  noProxy?: string;
}

function read(env: Env, name: string): string | undefined {
  const value = env[name.toLowerCase()] || env[name.toUpperCase()];
  return value ? value.trim() || undefined : undefined;
}

export function proxyEnvFrom(env: Env): ProxyEnv {
  const out: ProxyEnv = {};
  const httpsProxy = read(env, 'https_proxy');
  const httpProxy = read(env, 'http_proxy');
  const allProxy = read(env, 'all_proxy');
  const noProxy = read(env, 'no_proxy');
  if (httpsProxy) out.httpsProxy = httpsProxy;
  if (httpProxy) out.httpProxy = httpProxy;
  if (allProxy) out.allProxy = allProxy;
  if (noProxy) out.noProxy = noProxy;
  return out;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

/** True when NO_PROXY names this URL's host (exactly or as a parent domain) and, if given, its port. */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const entries = noProxy.split(/[,\s]/).filter(Boolean);
  if (entries.includes('*')) return true;
  const hostname = url.hostname.toLowerCase();
  const port = Number(url.port) || DEFAULT_PORTS[url.protocol] || 0;
  return entries.some((entry) => {
    const parsed = /^(.+):(\d+)$/.exec(entry);
    const host = (parsed?.[1] ?? entry).replace(/^\*?\./, '').toLowerCase();
    if (parsed?.[2] !== undefined && Number(parsed[2]) !== port) return false;
    return hostname === host || hostname.endsWith(`.${host}`);
  });
}

/** The proxy the environment names for this upstream URL, or undefined (none, or NO_PROXY). */
export function environmentProxyFor(url: URL, env: ProxyEnv): string | undefined {
  const proxy = (url.protocol === 'https:' ? env.httpsProxy : env.httpProxy) ?? env.allProxy;
  if (proxy === undefined || bypassesProxy(url, env.noProxy)) return undefined;
  return proxy;
}
