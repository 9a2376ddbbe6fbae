// docs/reliability.md, case 18: a SOCKS5 proxy that refuses the credentials, stalls in the handshake or at
// the CONNECT, refuses the CONNECT, is down, or kills the tunnel mid-stream. The same mapping as for
// HTTP CONNECT proxies: bounded, 502/504 upstream_proxy_error (the stream cut becomes the SSE error
// event), the pool key keeps serving, nothing goes direct, the password never shows.
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import type { TestGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { PROXY_FAILED, PROXY_TIMEOUT, chat as sharedChat, gatewayVia as sharedGatewayVia } from './helpers/proxy-faults.js';
import { type TestSocks5Server, startSocks5Server } from './helpers/socks5-server.js';

const POOL_KEY = 'sk-pool-socks-faults-0123456789ab';
const USER = 'socks-user';
const PASSWORD = 'S0cks-Secret-Passw0rd!';
const WRONG_PASSWORD = 'Wr0ng-S0cks-Passw0rd!';
registerSecret(POOL_KEY);
registerSecret(PASSWORD);
registerSecret(WRONG_PASSWORD);

let up: FakeUpstream;
let socks: TestSocks5Server;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  up = await startFakeUpstream({ keys: [POOL_KEY] });
  socks = await startSocks5Server({ auth: { username: USER, password: PASSWORD } });
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await Promise.all([up.close(), socks.close()]);
});
beforeEach(() => {
  up.reset();
  // One tunnel per request: a kept-alive tunnel would hide what the proxy does to the next one.
  up.handle(() => ({ body: { ok: true }, headers: { connection: 'close' } }));
  socks.connects.length = 0;
  socks.authFailures = 0;
  socks.behaviour = 'tunnel';
});

function socksUrl(port: number, password: string, scheme = 'socks5h'): string {
  return `${scheme}://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
}

function gatewayVia(proxyUrl: string, upstreamUrl = up.baseUrl) {
  return sharedGatewayVia(gateways, { poolKey: POOL_KEY, upstreamUrl, proxyUrl });
}

/** A chat call whose answer must carry no credential of the proxy, in its body or its headers. */
async function chat(gw: TestGateway, userKey: string) {
  const answer = await sharedChat(gw, userKey);
  expect(JSON.stringify(answer)).not.toContain(PASSWORD);
  expect(JSON.stringify(answer)).not.toContain(WRONG_PASSWORD);
  return answer;
}

describe('with the right credentials', () => {
  let gw: TestGateway;
  let userKey: string;
  beforeAll(async () => ({ gw, userKey } = await gatewayVia(socksUrl(socks.port, PASSWORD))));

  it('tunnels after the user/password sub-negotiation', async () => {
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(200);
    expect(socks.connects).toEqual([{ addressType: 'ipv4', host: '127.0.0.1', port: up.port, username: USER }]);
    expect(up.requests).toHaveLength(1);
  });

  it('answers 504 upstream_proxy_error when the proxy never answers the greeting, and the key keeps serving', async () => {
    socks.behaviour = 'stall-greeting';
    const stalled = await chat(gw, userKey);
    expect(stalled.status).toBe(504);
    expect(JSON.parse(stalled.text)).toEqual(PROXY_TIMEOUT);
    expect(up.requests).toEqual([]);
    await socks.whenIdle();

    socks.behaviour = 'tunnel';
    const after = await chat(gw, userKey);
    expect(after.status).toBe(200);
    expect(up.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${POOL_KEY}`]);
  });

  it('answers 504 upstream_proxy_error when the proxy never answers the CONNECT', async () => {
    socks.behaviour = 'stall-connect';
    const stalled = await chat(gw, userKey);
    expect(stalled.status).toBe(504);
    expect(JSON.parse(stalled.text)).toEqual(PROXY_TIMEOUT);
    expect(socks.connects).toHaveLength(1);
    expect(up.requests).toEqual([]);
    await socks.whenIdle();
  });

  it('ends an SSE answer with the upstream_stream_interrupted event when the tunnel is killed mid-stream', async () => {
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
    const firstRead = await reader.read();
    const chunks = [Buffer.from(firstRead.value!).toString()];
    socks.cutTunnels();
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

describe('refusals', () => {
  it('answers 502 upstream_proxy_error when the proxy refuses the user name and password', async () => {
    const { gw, userKey } = await gatewayVia(socksUrl(socks.port, WRONG_PASSWORD));
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expect(socks.authFailures).toBe(1);
    expect(socks.connects).toEqual([]);
    expect(up.requests).toEqual([]);
  });

  it('answers 502 upstream_proxy_error when the proxy needs credentials and none are set', async () => {
    const { gw, userKey } = await gatewayVia(`socks5h://127.0.0.1:${socks.port}`);
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expect(socks.authFailures).toBe(1);
    expect(up.requests).toEqual([]);
  });

  it('answers 502 upstream_proxy_error when the proxy cannot reach the host (reply 4)', async () => {
    const { gw, userKey } = await gatewayVia(socksUrl(socks.port, PASSWORD), `http://no-such-host.test:${up.port}/v1`);
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expect(socks.connects).toEqual([{ addressType: 'domain', host: 'no-such-host.test', port: up.port, username: USER }]);
  });

  it('answers 502 upstream_proxy_error when the proxy is down, and never goes direct', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const address = closed.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const { gw, userKey } = await gatewayVia(socksUrl(port, PASSWORD));
    const answer = await chat(gw, userKey);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual(PROXY_FAILED);
    expect(up.requests).toEqual([]);
  });
});
