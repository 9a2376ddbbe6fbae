// Connections to an https upstream through an HTTP CONNECT proxy, kept ready for the next request
// (docs/proxies.md, "Connections kept open"): after an idle gap longer than the upstream keeps an
// idle connection, the next request goes on a connection whose tunnel and TLS handshake were made
// in the background before it came; at most one such warm connection per upstream and proxy list;
// closed when the keys that used it are disabled or its upstream removed; TLS sessions resumed.
// The gateway runs in a process of its own, which trusts the test's certificate through
// NODE_EXTRA_CA_CERTS; the proxy and the upstream are real servers on loopback.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { type TestHttpProxy, startHttpProxy } from './helpers/http-proxy.js';
import { registerSecret } from './helpers/log-capture.js';
import { type FrontConnection, type TlsFront, startTlsFront } from './helpers/tls-front.js';

const KEYS = ['sk-warm-one-0123456789abcdefghij', 'sk-warm-two-0123456789abcdefghij'];
for (const key of KEYS) registerSecret(key);
const SECRET = 'a1'.repeat(32);
/** The upstream closes a connection idle this long; keyrelay keeps an idle one KEEP_ALIVE_MS. */
const UPSTREAM_IDLE_MS = 2500;
const KEEP_ALIVE_MS = 1500;
/** Longer than both: every connection that carried a request is gone by then. */
const GAP_MS = 3500;
const EXTRA_HOST = 'api.upstream.test';

let fake: FakeUpstream;
let front: TlsFront;
let proxy: TestHttpProxy;
const children: ChildGateway[] = [];

beforeAll(async () => {
  fake = await startFakeUpstream();
  front = await startTlsFront(fake.port, { idleMs: UPSTREAM_IDLE_MS, names: [EXTRA_HOST] });
  proxy = await startHttpProxy({ hosts: { [EXTRA_HOST]: '127.0.0.1' } });
});
afterAll(async () => {
  await Promise.all(children.map((c) => c.stop()));
  await Promise.all([front.close(), proxy.close(), fake.close()]);
});

async function gateway(connections: Record<string, unknown>): Promise<{ gw: ChildGateway; userKey: string }> {
  const settings = join(mkdtempSync(join(tmpdir(), 'keyrelay-warm-')), 'keyrelay.yaml');
  writeFileSync(
    settings,
    JSON.stringify({
      proxy: proxy.url,
      pool: { cacheAffinity: false },
      upstreamConnections: { keepAliveMs: KEEP_ALIVE_MS, warmForMs: 60_000, ...connections },
      upstreams: [{ id: 'main', baseUrl: `https://127.0.0.1:${front.port}/v1`, models: ['gpt-*'], keys: KEYS.map((key, i) => ({ id: `k${i + 1}`, key })) }],
    }),
  );
  const gw = await startChildGateway({
    KEYRELAY_CONFIG: settings,
    KEYRELAY_SECRET: SECRET,
    NODE_EXTRA_CA_CERTS: front.certFile,
  });
  children.push(gw);
  const created = await admin(gw, 'POST', '/users', { id: 'far' });
  expect(created.status).toBe(201);
  const { key } = (await (await admin(gw, 'POST', '/users/far/keys', {})).json()) as { key: string };
  registerSecret(key);
  return { gw, userKey: key };
}

function admin(gw: ChildGateway, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${gw.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
    body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined,
  });
}

/** A streamed chat call, read to its end; when it went out and came back. */
async function streamedChat(gw: ChildGateway, userKey: string, model = 'gpt-4o-mini'): Promise<{ status: number; text: string; sentAt: number; doneAt: number }> {
  const sentAt = Date.now();
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    signal: AbortSignal.timeout(10_000),
    method: 'POST',
    headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  });
  const text = await res.text();
  return { status: res.status, text, sentAt, doneAt: Date.now() };
}

/** The one front connection that carried data between `from` and `to`. */
function servedBy(from: number, to: number) {
  const used = front.connections.filter((c) => c.dataAt.some((t) => t >= from && t <= to));
  expect(used).toHaveLength(1);
  return used[0] as FrontConnection;
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}; connections to the upstream: ${JSON.stringify(front.connections.slice(-6))}`);
    await delay(25);
  }
}

describe('with warm connections (the default)', () => {
  let gw: ChildGateway;
  let userKey: string;
  beforeAll(async () => {
    ({ gw, userKey } = await gateway({}));
  }, 60_000);
  // Its warm connections would be counted in the next block's.
  afterAll(() => gw.stop());

  it('serves the request after an idle gap on a connection opened in the background before it came', async () => {
    const first = await streamedChat(gw, userKey);
    expect(first.status).toBe(200);
    expect(first.text).toContain('data: [DONE]');
    await until(() => front.unused().length === 1, 'a warm connection after the first request');
    const connectsBefore = proxy.connects.length;

    await delay(GAP_MS);
    // The one that carried the first request is gone (both sides' keep-alive are shorter than
    // the gap); the warm one was replaced in the background, through a new tunnel.
    expect(front.connections.filter((c) => c.dataAt.length > 0 && c.closedAt === undefined)).toEqual([]);
    expect(proxy.connects.length).toBeGreaterThan(connectsBefore);
    const connectsAtRequest = proxy.connects.length;

    const second = await streamedChat(gw, userKey);
    expect(second.status).toBe(200);
    expect(second.text).toContain('data: [DONE]');
    const used = servedBy(second.sentAt, second.doneAt);
    expect(used.openedAt).toBeLessThan(second.sentAt);
    expect(used.dataAt[0]).toBeGreaterThanOrEqual(second.sentAt);
    // Its tunnel was opened before the request, so the request path opened none: the first
    // request's, its warm one, and the warm one that replaced it during the gap.
    expect(connectsAtRequest).toBeGreaterThanOrEqual(3);
    // Connections opened since the first resume its TLS session, through the proxy. The one that
    // served the second request was opened during the gap, long after the session's ticket came;
    // one opened right after the first request may race the ticket on a busy machine.
    const later = front.connections.filter((c) => c.openedAt > first.doneAt && c.servername === '');
    expect(later.length).toBeGreaterThan(0);
    expect(used.resumed).toBe(true);
  }, 60_000);

  it('holds at most one warm connection per upstream and proxy, however many requests ran at once', async () => {
    fake.handle((rec) => (rec.path.endsWith('/chat/completions') ? { headersDelayMs: 300, body: { ok: true } } : undefined));
    try {
      const answers = await Promise.all(Array.from({ length: 6 }, () => streamedChat(gw, userKey)));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    } finally {
      fake.reset();
    }
    // Six connections carried the six requests; the warm one is one more, never two: it is
    // renewed every KEEP_ALIVE_MS, the old one closed once the new one is open, so two overlap
    // only for the moment that close takes to reach the upstream.
    const burstEnd = Date.now();
    await delay(KEEP_ALIVE_MS * 2 + 500);
    const warm = front.connections.filter((c) => c.dataAt.length === 0 && (c.closedAt ?? Infinity) > burstEnd);
    expect(warm.length).toBeGreaterThanOrEqual(2);
    for (const [i, a] of warm.entries()) {
      for (const b of warm.slice(i + 1)) {
        const overlap = Math.min(a.closedAt ?? Date.now(), b.closedAt ?? Date.now()) - Math.max(a.openedAt, b.openedAt);
        expect(overlap).toBeLessThan(1000);
      }
    }
    // Past keyrelay's keep-alive only the warm one is left open.
    await until(() => front.connections.filter((c) => c.closedAt === undefined).length === 1 && front.unused().length === 1, 'only the warm connection open');
  }, 60_000);

  it("closes an upstream's warm connection when it is removed, and keeps the others", async () => {
    expect((await admin(gw, 'POST', '/upstreams', { id: 'extra', baseUrl: `https://${EXTRA_HOST}:${front.port}/v1`, models: ['extra-*'] })).status).toBe(201);
    expect((await admin(gw, 'POST', '/upstreams/extra/keys', { id: 'x1', key: KEYS[0] })).status).toBe(201);
    const answer = await streamedChat(gw, userKey, 'extra-model');
    expect(answer.status, answer.text).toBe(200);
    await until(() => front.unused(EXTRA_HOST).length === 1, "the extra upstream's warm connection");
    expect(front.unused('')).toHaveLength(1);

    expect((await admin(gw, 'DELETE', '/upstreams/extra')).status).toBe(200);
    await until(() => front.unused(EXTRA_HOST).length === 0, "the removed upstream's warm connection closed");
    // And it is not opened again, while the main upstream's stays.
    const connects = proxy.connects.filter((c) => c.target.startsWith(EXTRA_HOST)).length;
    await delay(KEEP_ALIVE_MS * 2);
    expect(proxy.connects.filter((c) => c.target.startsWith(EXTRA_HOST)).length).toBe(connects);
    await until(() => front.unused('').length === 1, "the main upstream's warm connection kept");
  }, 60_000);

  it('closes the warm connection once every key that used it is disabled, and opens none for them', async () => {
    // Round robin: both keys have used the main upstream's route by now.
    expect((await streamedChat(gw, userKey)).status).toBe(200);
    expect((await streamedChat(gw, userKey)).status).toBe(200);
    await until(() => front.unused('').length === 1, 'a warm connection');

    expect((await admin(gw, 'POST', '/upstreams/main/keys/k1/disable')).status).toBe(200);
    // The other key still uses it: it is still renewed every KEEP_ALIVE_MS (the old one closes
    // just after the new one opens, so there may be two for a moment).
    await delay(KEEP_ALIVE_MS * 2);
    await until(() => front.unused('').length === 1, 'the warm connection kept for the other key');

    expect((await admin(gw, 'POST', '/upstreams/main/keys/k2/disable')).status).toBe(200);
    await until(() => front.unused('').length === 0, 'the warm connection closed');
    const mainConnects = () => proxy.connects.filter((c) => c.target.startsWith('127.0.0.1:')).length;
    const connects = mainConnects();
    await delay(KEEP_ALIVE_MS * 2);
    expect(mainConnects()).toBe(connects);
    expect(front.unused('')).toHaveLength(0);

    // Enabled again, the next request makes it warm again.
    expect((await admin(gw, 'POST', '/upstreams/main/keys/k1/enable')).status).toBe(200);
    expect((await streamedChat(gw, userKey)).status).toBe(200);
    await until(() => front.unused('').length === 1, 'a warm connection after the key came back');
  }, 60_000);
});

describe('with warm connections off', () => {
  it('opens the tunnel on the request path after an idle gap (what the warm connection saves)', async () => {
    const { gw, userKey } = await gateway({ warm: false });
    expect((await streamedChat(gw, userKey)).status).toBe(200);
    await delay(GAP_MS);
    const connects = proxy.connects.length;
    const answer = await streamedChat(gw, userKey);
    expect(answer.status).toBe(200);
    expect(servedBy(answer.sentAt, answer.doneAt).openedAt).toBeGreaterThanOrEqual(answer.sentAt);
    expect(proxy.connects.length).toBe(connects + 1);
    await gw.stop();
  }, 60_000);
});
