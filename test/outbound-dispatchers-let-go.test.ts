// The undici dispatchers of a proxy list that no configured key names any more are let go: an
// upstream with its own proxy, added, used and removed at run time over and over, leaves no
// dispatcher, tunnel or socket behind, and a stream in flight on it when it is removed ends whole.
// The gateway, the proxy and the fake upstream all run in this process: its open sockets are theirs.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { until } from './helpers/quota-fixture.js';
import { SECRET_A, adminAt, chat, runtimeSecret } from './helpers/runtime-fixture.js';

const SETTINGS_KEY = runtimeSecret('let-go-settings');
const ADDED_KEY = runtimeSecret('let-go-added');
const CYCLES = 200;
// Far longer than the test: a connection that closes did so because its dispatcher was let go.
const KEEP_ALIVE_MS = 120_000;
const CHUNK = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'rt-slow', choices: [{ index: 0, delta: { content: 'x' }, finish_reason: null }] };
const STREAM_CHUNKS = 6;

let fake: FakeUpstream;
let proxy: TestHttpProxy;
let gateway: TestGateway;
let admin: ReturnType<typeof adminAt>;
let userKey: string;

beforeAll(async () => {
  fake = await startFakeUpstream();
  fake.handle((req) => {
    if ((req.json as { model?: string } | undefined)?.model !== 'rt-slow') return undefined;
    return { headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents(Array.from({ length: STREAM_CHUNKS }, () => CHUNK), { done: true }), chunkIntervalMs: 150 };
  });
  proxy = await startHttpProxy();
  gateway = await startGateway({
    env: { KEYRELAY_SECRET: SECRET_A },
    config: {
      pool: { cacheAffinity: false },
      upstreamConnections: { keepAliveMs: KEEP_ALIVE_MS },
      upstreams: [{ id: 'main', baseUrl: fake.baseUrl, models: ['gpt-4o*'], keys: [{ id: 's1', key: SETTINGS_KEY, weight: 1 }] }],
    } as Partial<Config>,
  });
  admin = adminAt(gateway.url);
  userKey = await gateway.createUserKey('let-go-user', { limits: { tokensPerDay: 100_000_000 } });
  registerSecret(userKey);
}, 30_000);
afterAll(async () => {
  await gateway.close();
  await proxy.close();
  await fake.close();
});

async function dispatchers(): Promise<number> {
  return sampleValue(parsePrometheusText(await (await fetch(`${gateway.url}/metrics`)).text()), 'keyrelay_outbound_dispatchers');
}

const openSockets = () => process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length;

/** Adds the upstream `rt` behind the proxy as user `proxyUser` (a proxy list of its own) with one key. */
async function addProxied(proxyUser: string): Promise<void> {
  const up = await admin('POST', '/upstreams', { id: 'rt', baseUrl: fake.baseUrl, models: ['rt-*'], proxy: `http://${proxyUser}@127.0.0.1:${proxy.port}` });
  expect(up.status).toBe(201);
  expect((await admin('POST', '/upstreams/rt/keys', { id: 'k1', key: ADDED_KEY })).status).toBe(201);
}

async function removeProxied(): Promise<void> {
  expect((await admin('DELETE', '/upstreams/rt')).status).toBe(200);
}

it('lets go the dispatchers, tunnels and sockets of upstreams removed at run time, over many cycles', async () => {
  // Direct traffic first, so that what stays for good is open before the count.
  expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(200);
  const before = { dispatchers: await dispatchers(), sockets: openSockets() };
  expect(before.dispatchers).toBe(1);

  const connectsBefore = proxy.connects.length;
  for (let i = 0; i < CYCLES; i++) {
    await addProxied(`cycle-${i}`);
    expect((await chat(gateway.url, userKey, 'rt-model')).status).toBe(200);
    if (i === 0) expect(await dispatchers()).toBe(2);
    await removeProxied();
  }
  // Every cycle went through the proxy (its request, and perhaps a warm connection).
  expect(proxy.connects.length - connectsBefore).toBeGreaterThanOrEqual(CYCLES);

  expect(await dispatchers()).toBe(before.dispatchers);
  // Each removed upstream's tunnels close once their requests are done, long before keep-alive would.
  await proxy.whenIdle();
  await until(() => openSockets() <= before.sockets + 2, `the sockets to go back to ${before.sockets} (now ${openSockets()})`);
  expect((await chat(gateway.url, userKey, 'gpt-4o-mini')).status).toBe(200);
}, 300_000);

it('lets go the old proxy list when a PATCH changes the proxy, and keeps the new one', async () => {
  await addProxied('before-patch');
  expect((await chat(gateway.url, userKey, 'rt-model')).status).toBe(200);
  expect((await admin('PATCH', '/upstreams/rt', { proxy: `http://after-patch@127.0.0.1:${proxy.port}` })).status).toBe(200);
  expect((await chat(gateway.url, userKey, 'rt-model')).status).toBe(200);
  expect(await dispatchers()).toBe(2);
  expect(proxy.connects.length).toBeGreaterThan(0);
  await removeProxied();
  expect(await dispatchers()).toBe(1);
  await proxy.whenIdle();
});

it('never cuts a stream in flight on an upstream being removed: it ends whole, then its tunnel closes', async () => {
  await addProxied('streaming');
  const res = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'rt-slow', messages: [{ role: 'user', content: 'Hi' }], stream: true }),
  });
  expect(res.status).toBe(200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value);
  await removeProxied();
  expect(await dispatchers()).toBe(1);
  for (let next = await reader.read(); !next.done; next = await reader.read()) text += decoder.decode(next.value, { stream: true });
  const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
  expect(events).toHaveLength(STREAM_CHUNKS + 1);
  expect(events.at(-1)).toBe('data: [DONE]');
  await proxy.whenIdle();
});
