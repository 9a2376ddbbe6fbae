// Case 5 (docs/reliability.md): no client-chosen upstream. Every URL a request names (in fields such
// as api_base and base_url, in headers such as X-Upstream-URL, Host and X-Forwarded-Host, in an
// image or file URL the model is to read) and every redirect the upstream answers points here at a
// live listener that counts any connection: the gateway must never connect to it.
import { type Server, type Socket, createServer } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-case-05-decoys-0001';
let relay: RelayFixture;
let decoy: Server;
let decoyUrl: string;
let hits = 0;
const decoySockets = new Set<Socket>();

beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
  decoy = createServer((socket) => {
    hits++;
    decoySockets.add(socket);
    socket.on('close', () => decoySockets.delete(socket));
    socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}');
  });
  await new Promise<void>((resolve) => decoy.listen(0, '127.0.0.1', resolve));
  const address = decoy.address();
  decoyUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  for (const socket of decoySockets) socket.destroy();
  await new Promise<void>((resolve) => decoy.close(() => resolve()));
  await relay.close();
});
beforeEach(() => relay.fake.reset());

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${relay.gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('case 5: no client-chosen upstream', () => {
  it('URLs in body fields and headers reach only the configured upstream; the decoy gets no connection', async () => {
    const host = new URL(decoyUrl).host;
    const answer = await post(
      '/chat/completions',
      {
        model: 'gpt-4o-mini',
        api_base: `${decoyUrl}/v1`,
        base_url: `${decoyUrl}/v1`,
        baseURL: `${decoyUrl}/v1`,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: `${decoyUrl}/cat.png` } }] }],
      },
      { 'x-upstream-url': `${decoyUrl}/v1`, 'x-forwarded-host': host, 'x-original-url': `${decoyUrl}/v1/chat/completions`, 'x-rewrite-url': `${decoyUrl}/v1` },
    );
    expect(answer.status).toBe(200);
    const responses = await post('/responses', {
      model: 'gpt-4o-mini',
      input: [{ role: 'user', content: [{ type: 'input_file', file_url: `${decoyUrl}/doc.pdf` }, { type: 'input_image', image_url: `${decoyUrl}/a.png` }] }],
    });
    expect(responses.status).toBe(200);
    // A Host header naming the decoy, and an absolute-form target naming it, over a raw socket.
    const viaHost = await rawRequest(
      relay.gateway.port,
      `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${relay.userKey}\r\nConnection: close\r\n\r\n`,
    );
    expect(viaHost.status).toBe(200);
    const absolute = await rawRequest(
      relay.gateway.port,
      `GET ${decoyUrl}/v1/models HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${relay.userKey}\r\nConnection: close\r\n\r\n`,
    );
    expect(absolute.status).toBe(400);

    // (An unknown header such as X-Upstream-URL may go on to the upstream, which ignores it as
    // OpenAI does; what matters is that no connection went anywhere else.)
    // Everything that left went to the configured upstream, the URLs passed on as the client wrote them.
    expect(relay.fake.requests.map((r) => r.path)).toEqual(['/v1/chat/completions', '/v1/responses', '/v1/models']);
    expect(relay.fake.requests[0]?.body.toString()).toContain(`${decoyUrl}/cat.png`);
    for (const r of relay.fake.requests) {
      expect(r.headers['x-forwarded-host']).toBeUndefined();
    }
    expect(hits).toBe(0);
  });

  it('an upstream redirect to the decoy is passed back, never followed', async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      relay.fake.reset();
      relay.fake.handle(() => ({ status, headers: { location: `${decoyUrl}/v1/chat/completions` }, body: '' }));
      const answer = await post('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
      expect(answer.status).toBe(status);
      expect(answer.headers.location).toBe(`${decoyUrl}/v1/chat/completions`);
      expect(relay.fake.requests).toHaveLength(1);
    }
    // Give a follow-up connection, were there one, the time to land.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hits).toBe(0);
  });

  it('the decoy does count a connection (the check above can fail)', async () => {
    const before = hits;
    const res = await request(`${decoyUrl}/probe`);
    await res.body.text();
    expect(hits).toBe(before + 1);
    hits = 0;
  });
});
