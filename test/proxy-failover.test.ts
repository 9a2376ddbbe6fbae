// Several proxies for one upstream: a proxy that fails is passed over for a while and the next one
// used. The switch happens while the tunnel is being opened, before any byte of the request left,
// so even a streamed upload is carried whole by the next proxy; once something reached the
// upstream, the request is never sent again.
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ProxyHealth } from '../src/proxy/health.js';
import { parseProxyUrl } from '../src/proxy/url.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';
import { type TestSocks5Server, startSocks5Server } from './helpers/socks5-server.js';

const POOL_KEY = 'sk-pool-failover-0123456789abcdef';
registerSecret(POOL_KEY);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

describe('a gateway with a list of proxies', () => {
  let up: FakeUpstream;
  let refusing: TestHttpProxy;
  let good: TestSocks5Server;
  let gw: TestGateway;
  let userKey: string;

  beforeAll(async () => {
    up = await startFakeUpstream({ keys: [POOL_KEY] });
    refusing = await startHttpProxy({ behaviour: 'refuse-403' });
    good = await startSocks5Server();
    gw = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: up.baseUrl },
      config: {
        upstreamConnections: NO_WARM_CONNECTION,
        proxy: [`http://127.0.0.1:${await freePort()}`, refusing.url, good.url],
        proxyOptions: { cooldownMs: 600_000 },
      },
    });
    userKey = await gw.createUserKey('failover-user');
  });
  afterAll(async () => {
    await gw.close();
    await Promise.all([up.close(), refusing.close(), good.close()]);
  });
  beforeEach(() => {
    up.reset();
    // One tunnel per request, so that every request goes through the choice of a proxy.
    up.handle((req) => ({ body: { received: req.body.length }, headers: { connection: 'close' } }));
  });

  it('carries a streamed upload whole through the first proxy that works', async () => {
    const content = Buffer.alloc(512 * 1024, 3);
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([content]), 'big.jsonl');
    const res = await fetch(`${gw.baseUrl}/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${userKey}` },
      body: form,
    });
    expect(res.status).toBe(200);
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0]?.body.includes(content)).toBe(true);
    expect(await res.json()).toEqual({ received: up.requests[0]?.body.length });
    expect(refusing.connects).toEqual([{ target: `127.0.0.1:${up.port}`, authorized: true }]);
    expect(good.connects).toEqual([{ addressType: 'ipv4', host: '127.0.0.1', port: up.port }]);
  });

  it('passes over the failed proxies while they cool down', async () => {
    const before = { refused: refusing.connects.length, good: good.connects.length };
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${userKey}` } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(refusing.connects.length).toBe(before.refused);
    expect(good.connects.length).toBe(before.good + 3);
  });

  it('never sends a request again once it reached the upstream', async () => {
    const before = { refused: refusing.connects.length, good: good.connects.length };
    up.handle(() => ({ destroyBeforeHeaders: true }));
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [] }),
    });
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({
      error: { message: 'The upstream could not be reached.', type: 'server_error', param: null, code: 'upstream_unreachable' },
    });
    expect(up.requests).toHaveLength(1);
    expect(refusing.connects.length).toBe(before.refused);
    expect(good.connects.length).toBe(before.good + 1);
  });
});

describe('a list where every proxy fails', () => {
  it('answers with the last proxy error and never goes direct', async () => {
    const up = await startFakeUpstream({ keys: [POOL_KEY] });
    const refusing = await startHttpProxy({ behaviour: 'refuse-502' });
    const gw = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: up.baseUrl },
      config: { proxy: [`socks5://127.0.0.1:${await freePort()}`, refusing.url], upstreamConnections: NO_WARM_CONNECTION },
    });
    try {
      const userKey = await gw.createUserKey('unlucky');
      const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${userKey}` } });
      expect(res.status).toBe(502);
      expect(await res.json()).toEqual({
        error: { message: 'The outbound proxy failed.', type: 'server_error', param: null, code: 'upstream_proxy_error' },
      });
      expect(refusing.connects).toHaveLength(1);
      expect(up.requests).toEqual([]);
    } finally {
      await gw.close();
      await Promise.all([up.close(), refusing.close()]);
    }
  });
});

describe('the cool-down bookkeeping', () => {
  const a = parseProxyUrl('http://a.example:3128');
  const b = parseProxyUrl('socks5h://b.example:1080');
  const c = parseProxyUrl('https://c.example');

  it('tries the listed order, skips a failed proxy until its cool-down ends, and reports one failure per outage', () => {
    let now = 1_000;
    const reported: string[] = [];
    const health = new ProxyHealth(5_000, () => now, (f) => reported.push(`${f.proxy.masked} ${f.code} until ${f.untilMs}`));
    expect(health.candidates([a, b, c])).toEqual([a, b, c]);

    health.failed(a, 'ERR_PROXY_REFUSED');
    expect(health.candidates([a, b, c])).toEqual([b, c]);
    now = 3_000;
    health.failed(a, 'ERR_PROXY_REFUSED');
    expect(reported).toEqual(['http://a.example:3128 ERR_PROXY_REFUSED until 6000']);

    now = 7_999;
    expect(health.candidates([a, b, c])).toEqual([b, c]);
    now = 8_000;
    expect(health.candidates([a, b, c])).toEqual([a, b, c]);
  });

  it('still offers the proxy that recovers first when every one is cooling, and forgets a failure on success', () => {
    let now = 0;
    const health = new ProxyHealth(10_000, () => now);
    health.failed(a, 'ERR_PROXY_TIMEOUT');
    now = 1_000;
    health.failed(b, 'ERR_PROXY_UNREACHABLE');
    expect(health.candidates([a, b])).toEqual([a]);
    expect(health.candidates([b])).toEqual([b]);
    health.succeeded(b);
    expect(health.candidates([a, b])).toEqual([b]);
  });
});
