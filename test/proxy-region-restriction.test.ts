// Region restriction, proven: the upstream's host name resolves only inside the proxies (their own
// name tables map it to the fake upstream), never in the gateway's process, where `.test` names have
// no resolver. Direct traffic fails; every kind of call succeeds through an http:// CONNECT proxy
// and through a socks5h:// proxy, which receive the name, not an address.
import { lookup } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Config } from '../src/config.js';
import { FAKE_TEXT, fakeFileContent } from '../src/dev/fake-openai-answers.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { NO_WARM_CONNECTION } from './helpers/proxy-faults.js';
import { type TestSocks5Server, startSocks5Server } from './helpers/socks5-server.js';

const POOL_KEY = 'sk-pool-region-0123456789abcdef';
const HOST = 'api.upstream.test';
registerSecret(POOL_KEY);

let up: FakeUpstream;
let httpProxy: TestHttpProxy;
let socks: TestSocks5Server;

beforeAll(async () => {
  up = await startFakeUpstream({ keys: [POOL_KEY] });
  httpProxy = await startHttpProxy({ hosts: { [HOST]: '127.0.0.1' } });
  socks = await startSocks5Server({ hosts: { [HOST]: '127.0.0.1' } });
});
afterAll(async () => {
  await Promise.all([up.close(), httpProxy.close(), socks.close()]);
});

function gatewayVia(proxy: string | undefined): Promise<TestGateway> {
  return startGateway({
    env: {
      OPENAI_API_KEYS: POOL_KEY,
      KEYRELAY_UPSTREAM_URL: `http://${HOST}:${up.port}/v1`,
      KEYRELAY_PROXY: proxy,
    },
    // The download below names a made-up file (`file-abc`): shared, it reaches the upstream.
    config: { pool: { shareUnknownObjects: true } as Config['pool'], upstreamConnections: NO_WARM_CONNECTION },
  });
}

const chatBody = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello, please!' }] };

it('is a name the gateway process cannot resolve', async () => {
  await expect(lookup(HOST)).rejects.toMatchObject({ code: 'ENOTFOUND' });
});

describe('without a proxy', () => {
  let gw: TestGateway;
  let userKey: string;
  beforeAll(async () => {
    gw = await gatewayVia(undefined);
    userKey = await gw.createUserKey('direct-user');
  });
  afterAll(() => gw.close());

  it('fails: 502 upstream_unreachable, and nothing reaches the upstream', async () => {
    up.reset();
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(chatBody),
    });
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({
      error: { message: 'The upstream could not be reached.', type: 'server_error', param: null, code: 'upstream_unreachable' },
    });
    expect(up.requests).toEqual([]);
  });
});

describe.each([
  ['http://', () => httpProxy.url, () => httpProxy.connects.map((c) => c.target)],
  ['socks5h://', () => socks.url, () => socks.connects.map((c) => `${c.addressType} ${c.host}:${c.port}`)],
])('through an %s proxy', (_kind, proxyUrl, targets) => {
  let gw: TestGateway;
  let userKey: string;
  let auth: { authorization: string };
  let expectedTarget: string;

  beforeAll(async () => {
    gw = await gatewayVia(proxyUrl());
    userKey = await gw.createUserKey('region-user');
    auth = { authorization: `Bearer ${userKey}` };
    expectedTarget = proxyUrl().startsWith('socks') ? `domain ${HOST}:${up.port}` : `${HOST}:${up.port}`;
  });
  afterAll(() => gw.close());

  /** Every tunnel the proxy opened went to the upstream's name, and at least one was opened. */
  function expectTunnelledByName(): void {
    expect(targets().length).toBeGreaterThan(0);
    expect(new Set(targets())).toEqual(new Set([expectedTarget]));
  }

  it('relays chat completions', async () => {
    up.reset();
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(chatBody),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      object: 'chat.completion',
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: FAKE_TEXT }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 },
    });
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0]?.headers.host).toBe(`${HOST}:${up.port}`);
    expect(up.requests[0]?.headers.authorization).toBe(`Bearer ${POOL_KEY}`);
    expectTunnelledByName();
  });

  it('streams SSE events as the upstream sends them (nothing is buffered in the tunnel)', async () => {
    up.reset();
    const first = 'data: {"n":1}\n\n';
    // The second event would come ten minutes later: the first can only arrive if nothing on the
    // way waits for more bytes or for the end of the answer.
    up.handle((req) =>
      req.path === '/v1/chat/completions'
        ? { headers: { 'content-type': 'text/event-stream' }, chunks: [first, 'data: [DONE]\n\n'], chunkIntervalMs: 600_000 }
        : undefined,
    );
    const controller = new AbortController();
    const res = await fetch(`${gw.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ ...chatBody, stream: true }),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    const { value } = await reader.read();
    expect(Buffer.from(value!).toString()).toBe(first);
    controller.abort();
    await up.requests[0]?.closed;
    expect(up.requests[0]?.clientAborted).toBe(true);
    expectTunnelledByName();
  });

  it('relays multipart uploads', async () => {
    up.reset();
    const content = Buffer.alloc(256 * 1024, 7);
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([content]), 'input.jsonl');
    const res = await fetch(`${gw.baseUrl}/files`, { method: 'POST', headers: auth, body: form });
    expect(res.status).toBe(200);
    const sent = up.requests[0]?.body;
    expect(sent?.includes(content)).toBe(true);
    expect(await res.json()).toEqual({
      id: expect.stringMatching(/^file-[0-9a-f]+$/),
      object: 'file',
      bytes: sent?.length,
      created_at: expect.any(Number),
      filename: 'input.jsonl',
      purpose: 'batch',
      status: 'processed',
    });
    expectTunnelledByName();
  });

  it('relays binary downloads byte for byte', async () => {
    up.reset();
    const res = await fetch(`${gw.baseUrl}/files/file-abc/content`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await res.arrayBuffer()).equals(fakeFileContent('file-abc'))).toBe(true);
    expectTunnelledByName();
  });

  // A client event the fake upstream echoes (the gateway refuses text that is not a JSON event).
  const CLEAR = JSON.stringify({ type: 'input_audio_buffer.clear' });

  it('relays the realtime WebSocket route', async () => {
    up.reset();
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, { headers: auth });
    const messages: unknown[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (data) => {
        messages.push(JSON.parse(data.toString()));
        if (messages.length === 1) ws.send(CLEAR);
        if (messages.length === 2) resolve();
      });
    });
    ws.close();
    expect(messages).toEqual([
      { type: 'session.created', session: { model: 'gpt-4o-realtime-preview' } },
      { type: 'echo', data: CLEAR },
    ]);
    expect(up.wsConnections).toHaveLength(1);
    expect(up.wsConnections[0]?.headers.host).toBe(`${HOST}:${up.port}`);
    expectTunnelledByName();
  });
});
