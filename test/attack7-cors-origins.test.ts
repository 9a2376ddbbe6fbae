// A hostile page, or a script posing as one, tries to get CORS headers for an origin not listed,
// to make a preflight reach the upstream or cost the gateway more than an ordinary one, and to use
// a key whose user allows only certain pages from elsewhere, over HTTP and over WebSocket.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ALLOWED_HEADERS } from '../src/inbound/cors.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const PAGE = 'https://chat.example';
// Each is not PAGE as a browser would send it: a page of any of these must get nothing.
const LOOKALIKES = [
  'null',
  'HTTPS://CHAT.EXAMPLE',
  'https://Chat.example',
  `${PAGE}/`,
  `${PAGE}:443`,
  `${PAGE}.evil.com`,
  'https://evil.chat.example',
  'http://chat.example',
  `${PAGE}, https://evil.example`,
  `https://chat.example@evil.example`,
  '*',
];

let relay: RelayFixture;
let pageKey: string;

beforeAll(async () => {
  relay = await startRelay('sk-pool-attack7-cors-1', {}, { cors: { origins: [PAGE] } });
  pageKey = await relay.gateway.createUserKey('attack7-page-user', { origins: [PAGE] });
  registerSecret(pageKey);
});
afterAll(() => relay.close());

const corsNames = (headers: Record<string, unknown>) => Object.keys(headers).filter((name) => name.startsWith('access-control-'));

function chat(key: string, origin: string | undefined) {
  return request(`${relay.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(origin === undefined ? {} : { origin }) },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  });
}

describe('an origin that only looks like a listed one', () => {
  it('gets no CORS header on an answer, and 403 without CORS headers on a preflight that is never relayed', async () => {
    const before = relay.fake.requests.length;
    for (const origin of LOOKALIKES) {
      const answer = await chat(relay.userKey, origin);
      await answer.body.dump();
      expect(answer.statusCode, origin).toBe(200);
      expect(corsNames(answer.headers), origin).toEqual([]);
      const pre = await request(`${relay.gateway.baseUrl}/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
      });
      const body = (await pre.body.json()) as { error: { code: string } };
      expect(pre.statusCode, origin).toBe(403);
      expect(body.error.code).toBe('origin_not_allowed');
      expect(corsNames(pre.headers), origin).toEqual([]);
    }
    // The answers above went upstream (no CORS is no refusal); the preflights did not.
    expect(relay.fake.requests.length - before).toBe(LOOKALIKES.length);
    expect(relay.fake.requests.every((r) => r.method !== 'OPTIONS')).toBe(true);
  });

  it("is refused for a key whose user allows only the listed page, before the upstream", async () => {
    const before = relay.fake.requests.length;
    for (const origin of [...LOOKALIKES, undefined]) {
      const answer = await chat(pageKey, origin);
      const body = (await answer.body.json()) as { error: { code: string } };
      expect(answer.statusCode, String(origin)).toBe(403);
      expect(body.error.code).toBe('origin_not_allowed');
    }
    expect(relay.fake.requests.length).toBe(before);
    const fromPage = await chat(pageKey, PAGE);
    await fromPage.body.dump();
    expect(fromPage.statusCode).toBe(200);
    expect(fromPage.headers['access-control-allow-origin']).toBe(PAGE);
  });
});

describe('a preflight from the listed page', () => {
  it('echoes no name outside the list, whatever Access-Control-Request-Headers holds', async () => {
    const asked = 'authorization,x-stainless-ok,x-evil set-cookie,x-stainless-a;b,x-stainless-x: y,cookie ,  X-STAINLESS-UP ,x-stainless-ok';
    const res = await request(`${relay.gateway.baseUrl}/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: PAGE, 'access-control-request-method': 'POST', 'access-control-request-headers': asked },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(204);
    expect(String(res.headers['access-control-allow-headers']).split(', ')).toEqual([...ALLOWED_HEADERS, 'x-stainless-ok', 'x-stainless-up']);
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it('asking for thousands of x-stainless-* names gets at most 16 of them, not an echo of the 60 KB', async () => {
    const names: string[] = [];
    for (let i = 0; names.join(',').length < 60_000; i++) names.push(`x-stainless-n${i}`);
    const res = await request(`${relay.gateway.baseUrl}/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: PAGE, 'access-control-request-method': 'POST', 'access-control-request-headers': names.join(',') },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(204);
    const allowed = String(res.headers['access-control-allow-headers']).split(', ');
    expect(allowed).toEqual([...ALLOWED_HEADERS, ...names.slice(0, 16)]);
  });

  it('for a path outside /v1 is not answered with CORS headers', async () => {
    const res = await request(`${new URL(relay.gateway.baseUrl).origin}/admin/users`, {
      method: 'OPTIONS',
      headers: { origin: PAGE, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    await res.body.dump();
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    const get = await request(`${new URL(relay.gateway.baseUrl).origin}/admin/users`, { headers: { origin: PAGE } });
    await get.body.dump();
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });
});

type Opened = { opened: true } | { opened: false; status: number; code?: string };

function openRealtime(key: string, headers: Record<string, string>): Promise<Opened> {
  const ws = new WebSocket(`${relay.gateway.baseUrl.replace('http://', 'ws://')}/realtime?model=gpt-4o-realtime-preview`, ['realtime', `openai-insecure-api-key.${key}`], { headers });
  return new Promise((resolve, reject) => {
    ws.once('message', () => {
      resolve({ opened: true });
      ws.close();
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => resolve({ opened: false, status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: { code: string } }).error.code }));
    });
    ws.once('error', reject);
  });
}

describe('a WebSocket with a page-restricted key', () => {
  it('is refused with a forged look-alike Origin, two Origins, or none; opens from the page', async () => {
    const before = relay.fake.wsConnections.length;
    for (const origin of LOOKALIKES) {
      const result = await openRealtime(pageKey, { origin });
      expect(result, origin).toEqual({ opened: false, status: 403, code: 'origin_not_allowed' });
    }
    expect(await openRealtime(pageKey, {})).toEqual({ opened: false, status: 403, code: 'origin_not_allowed' });
    expect(relay.fake.wsConnections.length).toBe(before);
    expect(await openRealtime(pageKey, { origin: PAGE })).toEqual({ opened: true });
  });
});
