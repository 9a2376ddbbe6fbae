// HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY, read as curl reads them, and under every proxy
// written in the settings: KEYRELAY_PROXY wins over them, and NO_PROXY never sends traffic around a
// proxy the settings name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { bypassesProxy, environmentProxyFor, proxyEnvFrom } from '../src/proxy/env.js';
import { startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';
import { type TestSocks5Server, startSocks5Server } from './helpers/socks5-server.js';

const POOL_KEY = 'sk-pool-environment-0123456789abc';
registerSecret(POOL_KEY);

let up: FakeUpstream;
let proxyA: TestHttpProxy;
let proxyB: TestHttpProxy;
let socks: TestSocks5Server;

beforeAll(async () => {
  up = await startFakeUpstream({ keys: [POOL_KEY] });
  [proxyA, proxyB, socks] = await Promise.all([startHttpProxy(), startHttpProxy(), startSocks5Server()]);
});
afterAll(async () => {
  await Promise.all([up.close(), proxyA.close(), proxyB.close(), socks.close()]);
});
/** Sends one request through a gateway started with this environment; says which way it went. */
async function wayTaken(env: Record<string, string>): Promise<string> {
  up.reset();
  proxyA.connects.length = 0;
  proxyB.connects.length = 0;
  socks.connects.length = 0;
  const gw = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: up.baseUrl, ...env }, config: { upstreamConnections: NO_WARM_CONNECTION } });
  try {
    const userKey = await gw.createUserKey('env-user');
    const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${userKey}` } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  } finally {
    await gw.close();
  }
  expect(up.requests).toHaveLength(1);
  const ways = [
    ...(proxyA.connects.length ? ['proxy A'] : []),
    ...(proxyB.connects.length ? ['proxy B'] : []),
    ...(socks.connects.length ? ['socks'] : []),
  ];
  return ways.length === 0 ? 'direct' : ways.join(' + ');
}

describe('a gateway started with proxy variables', () => {
  it('uses HTTP_PROXY for an http:// upstream', async () => {
    expect(await wayTaken({ HTTP_PROXY: proxyA.url })).toBe('proxy A');
  });

  it('prefers the lower-case variable, as curl does', async () => {
    expect(await wayTaken({ http_proxy: proxyA.url, HTTP_PROXY: proxyB.url })).toBe('proxy A');
  });

  it('does not use HTTPS_PROXY for an http:// upstream', async () => {
    expect(await wayTaken({ HTTPS_PROXY: proxyA.url })).toBe('direct');
  });

  it('falls back to ALL_PROXY, which may be a SOCKS5 proxy', async () => {
    expect(await wayTaken({ ALL_PROXY: socks.url })).toBe('socks');
    expect(await wayTaken({ ALL_PROXY: socks.url, HTTP_PROXY: proxyA.url })).toBe('proxy A');
  });

  it('goes direct when NO_PROXY names the upstream host', async () => {
    expect(await wayTaken({ HTTP_PROXY: proxyA.url, NO_PROXY: 'localhost,127.0.0.1' })).toBe('direct');
    expect(await wayTaken({ HTTP_PROXY: proxyA.url, NO_PROXY: `127.0.0.1:${up.port}` })).toBe('direct');
    expect(await wayTaken({ ALL_PROXY: socks.url, no_proxy: '*' })).toBe('direct');
  });

  it('keeps the proxy when NO_PROXY names other hosts or another port', async () => {
    expect(await wayTaken({ HTTP_PROXY: proxyA.url, NO_PROXY: 'internal.example,.corp.example' })).toBe('proxy A');
    expect(await wayTaken({ HTTP_PROXY: proxyA.url, NO_PROXY: `127.0.0.1:${up.port + 1}` })).toBe('proxy A');
  });

  it('lets KEYRELAY_PROXY win over the variables, and NO_PROXY never bypass it', async () => {
    expect(await wayTaken({ HTTP_PROXY: proxyA.url, KEYRELAY_PROXY: proxyB.url })).toBe('proxy B');
    expect(await wayTaken({ KEYRELAY_PROXY: proxyB.url, NO_PROXY: '*' })).toBe('proxy B');
  });
});

describe('the NO_PROXY rules (those of undici EnvHttpProxyAgent)', () => {
  const url = (s: string) => new URL(s);

  it('matches a host, its subdomains, a leading dot or *., and an optional port', () => {
    expect(bypassesProxy(url('https://api.openai.com/v1'), 'openai.com')).toBe(true);
    expect(bypassesProxy(url('https://api.openai.com/v1'), '.openai.com')).toBe(true);
    expect(bypassesProxy(url('https://api.openai.com/v1'), '*.openai.com')).toBe(true);
    expect(bypassesProxy(url('https://api.openai.com/v1'), 'api.openai.com:443')).toBe(true);
    expect(bypassesProxy(url('https://api.openai.com/v1'), 'api.openai.com:8443')).toBe(false);
    expect(bypassesProxy(url('https://notopenai.com/v1'), 'openai.com')).toBe(false);
    expect(bypassesProxy(url('http://10.0.0.5:8000/v1'), 'example.com 10.0.0.5')).toBe(true);
    expect(bypassesProxy(url('https://API.OpenAI.com/v1'), 'api.openai.COM')).toBe(true);
    expect(bypassesProxy(url('https://api.openai.com/v1'), '')).toBe(false);
  });

  it('reads the variables by the upstream scheme, lower case first, empty ones as unset', () => {
    const env = proxyEnvFrom({
      https_proxy: 'http://lower:3128',
      HTTPS_PROXY: 'http://upper:3128',
      HTTP_PROXY: 'http://plain:3128',
      all_proxy: '',
      ALL_PROXY: 'socks5h://all:1080',
      NO_PROXY: 'internal.example',
    });
    expect(env).toEqual({
      httpsProxy: 'http://lower:3128',
      httpProxy: 'http://plain:3128',
      allProxy: 'socks5h://all:1080',
      noProxy: 'internal.example',
    });
    expect(environmentProxyFor(url('https://api.openai.com/v1'), env)).toBe('http://lower:3128');
    expect(environmentProxyFor(url('http://vllm:8000/v1'), env)).toBe('http://plain:3128');
    expect(environmentProxyFor(url('http://vllm:8000/v1'), { allProxy: 'socks5h://all:1080' })).toBe('socks5h://all:1080');
    expect(environmentProxyFor(url('https://llm.internal.example/v1'), env)).toBeUndefined();
  });
});
