// docs/reliability.md, case 17: an HTTP CONNECT proxy that is down, asks for credentials (407), refuses the
// CONNECT, never answers it, or cuts the tunnel mid-stream. Each ends in bounded time with the
// error the README names, blames the proxy (the pool key keeps serving), never goes direct (the
// upstream is reachable directly here, and sees nothing), and never shows the proxy's password.
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy, withCredentials } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { PROXY_FAILED, PROXY_TIMEOUT, chat, gatewayVia as sharedGatewayVia } from './helpers/proxy-faults.js';

const POOL_KEY = 'sk-pool-connect-faults-0123456789';
const USER = 'relay-user';
const PASSWORD = 'Pr0xy-Secret-Passw0rd!';
const WRONG_PASSWORD = 'Wr0ng-Secret-Passw0rd!';
registerSecret(POOL_KEY);
registerSecret(PASSWORD);
registerSecret(WRONG_PASSWORD);

let up: FakeUpstream;
let proxy: TestHttpProxy;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  up = await startFakeUpstream({ keys: [POOL_KEY] });
  proxy = await startHttpProxy({ auth: { username: USER, password: PASSWORD } });
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await Promise.all([up.close(), proxy.close()]);
});
beforeEach(() => {
  up.reset();
  // One tunnel per request: a kept-alive tunnel would hide what the proxy does to the next CONNECT.
  up.handle(() => ({ body: { ok: true }, headers: { connection: 'close' } }));
  proxy.connects.length = 0;
  proxy.behaviour = 'tunnel';
});

function gatewayVia(proxyUrl: string) {
  return sharedGatewayVia(gateways, { poolKey: POOL_KEY, upstreamUrl: up.baseUrl, proxyUrl });
}

/** The answer carries no credential of the proxy, in its body or its headers. */
function expectNoPassword(answer: { headers: Record<string, string>; text: string }): void {
  const all = JSON.stringify(answer);
  expect(all).not.toContain(PASSWORD);
  expect(all).not.toContain(WRONG_PASSWORD);
  expect(all).not.toContain(Buffer.from(`${USER}:${PASSWORD}`).toString('base64'));
}

describe('with the right credentials', () => {
  let gw: TestGateway;
  let userKey: string;
  beforeAll(async () => ({ gw, userKey } = await gatewayVia(withCredentials(proxy.url, USER, PASSWORD))));

  it('tunnels with Basic auth', async () => {
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(200);
    expect(proxy.connects).toEqual([{ target: `127.0.0.1:${up.port}`, authorized: true }]);
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0]?.headers['proxy-authorization']).toBeUndefined();
  });

  it('answers 502 upstream_proxy_error when the proxy refuses the CONNECT with 403, and the key keeps serving', async () => {
    proxy.behaviour = 'refuse-403';
    const refused = await chat(gw, userKey);
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.text)).toEqual(PROXY_FAILED);
    expectNoPassword(refused);
    expect(up.requests).toEqual([]);

    proxy.behaviour = 'tunnel';
    const after = await chat(gw, userKey);
    expect(after.status).toBe(200);
    expect(up.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${POOL_KEY}`]);
  });

  it('answers 502 upstream_proxy_error when the proxy answers the CONNECT with 502', async () => {
    proxy.behaviour = 'refuse-502';
    const refused = await chat(gw, userKey);
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.text)).toEqual(PROXY_FAILED);
    expect(up.requests).toEqual([]);
  });

  it('answers 504 upstream_proxy_error within the connect deadline, and hangs up, when the CONNECT is never answered', async () => {
    proxy.behaviour = 'stall';
    const stalled = await chat(gw, userKey);
    expect(stalled.status).toBe(504);
    expect(JSON.parse(stalled.text)).toEqual(PROXY_TIMEOUT);
    expect(proxy.connects).toHaveLength(1);
    expect(up.requests).toEqual([]);
    // The gateway hangs up on the stalled proxy: no connection is left behind.
    await proxy.whenIdle();
  });

  it('refuses a WebSocket upgrade with 502 upstream_proxy_error when the proxy refuses', async () => {
    proxy.behaviour = 'refuse-403';
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, {
      headers: { authorization: `Bearer ${userKey}` },
    });
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('open', () => reject(new Error('the upgrade went through')));
    });
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body)).toEqual(PROXY_FAILED);
    expect(up.wsConnections).toEqual([]);
  });

  it('ends an SSE answer with the upstream_stream_interrupted event when the tunnel is cut mid-stream', async () => {
    const first = 'data: {"n":1}\n\n';
    up.handle((req) =>
      req.path === '/v1/chat/completions'
        ? {
            headers: { 'content-type': 'text/event-stream', connection: 'close' },
            chunks: [first, 'data: [DONE]\n\n'],
            chunkIntervalMs: 600_000,
          }
        : undefined,
    );
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [], stream: true }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const chunks: string[] = [];
    const firstRead = await reader.read();
    chunks.push(Buffer.from(firstRead.value!).toString());
    proxy.cutTunnels();
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(Buffer.from(r.value).toString());
    const interrupted = {
      error: {
        message: 'The upstream stream broke off before it was complete.',
        type: 'server_error',
        param: null,
        code: 'upstream_stream_interrupted',
      },
    };
    expect(chunks.join('')).toBe(`${first}data: ${JSON.stringify(interrupted)}\n\n`);
  });
});

describe('with wrong or missing credentials', () => {
  it('answers 502 upstream_proxy_error on 407 for a wrong password', async () => {
    const { gw, userKey } = await gatewayVia(withCredentials(proxy.url, USER, WRONG_PASSWORD));
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expectNoPassword(answer);
    expect(proxy.connects).toEqual([{ target: `127.0.0.1:${up.port}`, authorized: false }]);
    expect(up.requests).toEqual([]);
  });

  it('answers 502 upstream_proxy_error on 407 when no credentials are set', async () => {
    const { gw, userKey } = await gatewayVia(proxy.url);
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expect(proxy.connects).toEqual([{ target: `127.0.0.1:${up.port}`, authorized: false }]);
    expect(up.requests).toEqual([]);
  });
});

describe('a proxy that is down', () => {
  it('answers 502 upstream_proxy_error and never goes direct', async () => {
    // A port that was just free: nothing listens there.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const address = closed.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const { gw, userKey } = await gatewayVia(`http://${USER}:${PASSWORD}@127.0.0.1:${port}`);
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expectNoPassword(answer);
    expect(up.requests).toEqual([]);
  });
});
