// `upstreamConnections.http2`: HTTP/2 offered to an https upstream, through an HTTP CONNECT proxy.
// A streamed answer goes over HTTP/2 when the upstream takes it; a WebSocket handshake keeps to
// HTTP/1.1 (undici would send it as an extended CONNECT, RFC 8441, which this upstream, like many,
// does not take). Off by default (docs/proxies.md says why): then every request is HTTP/1.1.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type Http2SecureServer, createSecureServer } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { makeCertificate } from './helpers/tls-front.js';

const POOL_KEY = 'sk-h2-pool-0123456789abcdefghijklmn';
registerSecret(POOL_KEY);
const CHUNK = { id: 'chatcmpl-h2', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] };

let certFile: string;
let upstream: Http2SecureServer;
let upstreamPort: number;
let proxy: TestHttpProxy;
/** `2.0 POST /v1/chat/completions`, `1.1 upgrade /v1/realtime?...`: what the upstream saw, in order. */
const seen: string[] = [];
const children: ChildGateway[] = [];

beforeAll(async () => {
  const tls = makeCertificate();
  certFile = tls.certFile;
  upstream = createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true }, (req, res) => {
    seen.push(`${req.httpVersion} ${req.method} ${req.url}`);
    req.resume();
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < 3; i++) {
        res.write(`data: ${JSON.stringify(CHUNK)}\n\n`);
        await new Promise((r) => setTimeout(r, 10));
      }
      res.end('data: [DONE]\n\n');
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  upstream.on('upgrade', (req, socket, head) => {
    seen.push(`${req.httpVersion} upgrade ${req.url}`);
    wss.handleUpgrade(req, socket, head, (ws) => ws.send(JSON.stringify({ type: 'session.created', session: {} })));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
  upstreamPort = (upstream.address() as { port: number }).port;
  proxy = await startHttpProxy();
});
afterAll(async () => {
  await Promise.all(children.map((c) => c.stop()));
  await proxy.close();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

async function gateway(http2: boolean | undefined): Promise<{ gw: ChildGateway; userKey: string }> {
  const settings = join(mkdtempSync(join(tmpdir(), 'keyrelay-h2-')), 'keyrelay.yaml');
  writeFileSync(settings, JSON.stringify({ proxy: proxy.url, ...(http2 === undefined ? {} : { upstreamConnections: { http2 } }) }));
  const gw = await startChildGateway({ KEYRELAY_CONFIG: settings, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: `https://127.0.0.1:${upstreamPort}/v1`, NODE_EXTRA_CA_CERTS: certFile });
  children.push(gw);
  const admin = (path: string) =>
    fetch(`${gw.url}/admin${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(path === '/users' ? { id: 'h2' } : {}) });
  expect((await admin('/users')).status).toBe(201);
  const { key } = (await (await admin('/users/h2/keys')).json()) as { key: string };
  registerSecret(key);
  return { gw, userKey: key };
}

async function streamedChat(gw: ChildGateway, userKey: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    signal: AbortSignal.timeout(10_000),
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: res.status, text: await res.text() };
}

/** The first message of a realtime session through the gateway, or what went wrong. */
function firstRealtimeMessage(gw: ChildGateway, userKey: string): Promise<string> {
  const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, { headers: { authorization: `Bearer ${userKey}` } });
  return new Promise<string>((resolve) => {
    ws.on('message', (data) => resolve(String(data)));
    ws.on('unexpected-response', (_req, res) => resolve(`refused with ${res.statusCode}`));
    ws.on('error', (err) => resolve(`error ${err.message}`));
    setTimeout(() => resolve('no message within 5 s'), 5000);
  }).finally(() => ws.terminate());
}

const STREAM = `${`data: ${JSON.stringify(CHUNK)}\n\n`.repeat(3)}data: [DONE]\n\n`;

describe('upstreamConnections.http2', () => {
  it('streams over HTTP/2 through the proxy, and keeps WebSocket handshakes on HTTP/1.1', async () => {
    const { gw, userKey } = await gateway(true);
    const from = seen.length;
    for (let i = 0; i < 2; i++) expect(await streamedChat(gw, userKey)).toEqual({ status: 200, text: STREAM });
    expect(await firstRealtimeMessage(gw, userKey)).toBe(JSON.stringify({ type: 'session.created', session: {} }));
    expect(seen.slice(from)).toEqual(['2.0 POST /v1/chat/completions', '2.0 POST /v1/chat/completions', '1.1 upgrade /v1/realtime?model=gpt-4o-realtime-preview']);
  }, 60_000);

  it('is off by default: HTTP/1.1 only', async () => {
    const { gw, userKey } = await gateway(undefined);
    const from = seen.length;
    expect(await streamedChat(gw, userKey)).toEqual({ status: 200, text: STREAM });
    expect(seen.slice(from)).toEqual(['1.1 POST /v1/chat/completions']);
  }, 60_000);
});
