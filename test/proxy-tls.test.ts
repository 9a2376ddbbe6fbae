// TLS and proxies: an https:// proxy is spoken to over TLS (its CA given by proxyOptions.caFile), with
// Basic auth inside that TLS; a proxy whose certificate is not trusted is a proxy failure. TLS with
// an https:// upstream runs end to end through the tunnel, with the upstream's name as SNI, so a
// certificate problem there is the upstream's, not the proxy's.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Server, createServer as createTlsServer, createSecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy, withCredentials } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';

const POOL_KEY = 'sk-pool-tls-0123456789abcdefghijk';
const PASSWORD = 'Tls-Pr0xy-Passw0rd';
registerSecret(POOL_KEY);
registerSecret(PASSWORD);

let dir: string;
let tls: { key: string; cert: string };
let up: FakeUpstream;
let proxy: TestHttpProxy;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  // Node cannot make X.509 certificates; openssl (on every Debian) can. Valid for 127.0.0.1 (the
  // proxy) and api.upstream.test (the https upstream below).
  dir = mkdtempSync(join(tmpdir(), 'keyrelay-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-subj', '/CN=keyrelay test proxy',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:api.upstream.test',
  ], { stdio: 'ignore' });
  tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  up = await startFakeUpstream({ keys: [POOL_KEY] });
  proxy = await startHttpProxy({ tls, auth: { username: 'tls-user', password: PASSWORD }, hosts: { 'api.upstream.test': '127.0.0.1' } });
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await Promise.all([up.close(), proxy.close()]);
});

async function gateway(upstreamUrl: string, caFile: string | undefined): Promise<{ gw: TestGateway; userKey: string }> {
  const gw = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: upstreamUrl, KEYRELAY_PROXY: withCredentials(proxy.url, 'tls-user', PASSWORD) },
    config: { proxyOptions: { cooldownMs: 30_000, ...(caFile ? { caFile } : {}) }, upstreamConnections: NO_WARM_CONNECTION },
  });
  gateways.push(gw);
  return { gw, userKey: await gw.createUserKey('tls-user') };
}

async function models(gw: TestGateway, userKey: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw.baseUrl}/models`, { headers: { authorization: `Bearer ${userKey}` } });
  return { status: res.status, body: await res.json() };
}

describe('an https:// proxy', () => {
  it('carries the traffic over TLS when its CA is given by proxyOptions.caFile', async () => {
    const { gw, userKey } = await gateway(up.baseUrl, join(dir, 'cert.pem'));
    const before = proxy.connects.length;
    const answer = await models(gw, userKey);
    expect(answer.status).toBe(200);
    expect(proxy.connects.slice(before)).toEqual([{ target: `127.0.0.1:${up.port}`, authorized: true }]);
  });

  it('is a proxy failure (502 upstream_proxy_error) when its certificate is not trusted', async () => {
    up.reset();
    const { gw, userKey } = await gateway(up.baseUrl, undefined);
    const before = proxy.connects.length;
    const answer = await models(gw, userKey);
    expect(answer).toEqual({
      status: 502,
      body: { error: { message: 'The outbound proxy failed.', type: 'server_error', param: null, code: 'upstream_proxy_error' } },
    });
    expect(proxy.connects.length).toBe(before);
    expect(up.requests).toEqual([]);
  });
});

describe('an https:// upstream through the proxy', () => {
  let upstreamTls: Server;
  const serverNames: string[] = [];

  beforeAll(async () => {
    const context = createSecureContext(tls);
    upstreamTls = createTlsServer({
      ...tls,
      SNICallback: (name, cb) => {
        serverNames.push(name);
        cb(null, context);
      },
    });
    upstreamTls.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => upstreamTls.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => upstreamTls.close(() => resolve())));

  it("speaks TLS to the upstream's name inside the tunnel; an untrusted upstream certificate is the upstream's fault", async () => {
    const address = upstreamTls.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const { gw, userKey } = await gateway(`https://api.upstream.test:${port}/v1`, join(dir, 'cert.pem'));
    const before = proxy.connects.length;
    const answer = await models(gw, userKey);
    // The gateway trusts this CA for proxies only, so the upstream's certificate is refused.
    expect(answer).toEqual({
      status: 502,
      body: { error: { message: 'The upstream could not be reached.', type: 'server_error', param: null, code: 'upstream_unreachable' } },
    });
    expect(proxy.connects.slice(before)).toEqual([{ target: `api.upstream.test:${port}`, authorized: true }]);
    expect(serverNames).toEqual(['api.upstream.test']);
  });
});
