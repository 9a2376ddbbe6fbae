// A browser's preflight to /v1 (README, "The relay"; docs/browsers.md): answered 204 by
// the gateway itself, without a key and without reaching the upstream, for a listed origin; 403
// for another; relayed as any OPTIONS when no origin is listed. The headers it allows are the SDKs'
// and x-stainless-* ones a preflight asks for, never an arbitrary name echoed.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALLOWED_HEADERS, MAX_AGE_SECONDS } from '../src/inbound/cors.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';

const PAGE = 'https://chat.example';
const OTHER = 'https://evil.example';

function preflight(baseUrl: string, path: string, origin: string | undefined, asks: Record<string, string> = {}) {
  return request(`${baseUrl}${path}`, {
    method: 'OPTIONS',
    headers: {
      ...(origin === undefined ? {} : { origin }),
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type',
      ...asks,
    },
  });
}

const corsHeaders = (headers: Record<string, string | string[] | undefined>) =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith('access-control-')));

describe('with cors.origins listing the page', () => {
  let relay: RelayFixture;
  beforeAll(async () => {
    relay = await startRelay('sk-pool-cors-preflight-1', {}, { cors: { origins: [PAGE] } });
  });
  afterAll(() => relay.close());

  it('answers 204 without a key, never relayed, with the methods, headers and max-age', async () => {
    const before = relay.fake.requests.length;
    const res = await preflight(relay.gateway.baseUrl, '/chat/completions', PAGE);
    expect(res.statusCode).toBe(204);
    expect(await res.body.text()).toBe('');
    expect(res.headers['access-control-allow-origin']).toBe(PAGE);
    expect(res.headers.vary).toMatch(/^origin\b/);
    expect(res.headers['access-control-allow-methods']).toBe('GET, POST, PUT, PATCH, DELETE');
    expect(res.headers['access-control-max-age']).toBe(String(MAX_AGE_SECONDS));
    const allowed = String(res.headers['access-control-allow-headers']).split(', ');
    expect(allowed).toEqual(expect.arrayContaining(['authorization', 'content-type', 'openai-beta', 'openai-organization', 'openai-project', 'x-stainless-retry-count', 'x-stainless-timeout', 'x-stainless-os']));
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers['x-keyrelay-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(relay.fake.requests.length).toBe(before);
  });

  it('answers a preflight to any /v1 route the same way, and logs it as a 204 with no user', async () => {
    const before = relay.fake.requests.length;
    for (const path of ['/responses', '/files/file-abc/content', '/organization/users', '/no/such/route']) {
      const res = await preflight(relay.gateway.baseUrl, path, PAGE);
      expect(res.statusCode, path).toBe(204);
      await res.body.dump();
      expect(res.headers['access-control-allow-origin'], path).toBe(PAGE);
    }
    expect(relay.fake.requests.length).toBe(before);
    const lines = relay.gateway.logs.filter((l) => l.method === 'OPTIONS' && l.status === 204);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines.every((l) => l.userId === undefined)).toBe(true);
  });

  it('allows the headers the SDK sends and x-stainless-* ones it asks for, and echoes no other name', async () => {
    const asked = 'Authorization, X-Stainless-Lang, x-stainless-some-later-header, x-evil, cookie, x-stainless-, x-stainless-a b, proxy-authorization';
    const res = await preflight(relay.gateway.baseUrl, '/chat/completions', PAGE, { 'access-control-request-headers': asked });
    expect(res.statusCode).toBe(204);
    await res.body.dump();
    const allowed = String(res.headers['access-control-allow-headers']).split(', ');
    expect(allowed).toEqual([...ALLOWED_HEADERS, 'x-stainless-some-later-header']);
    for (const name of ['x-evil', 'cookie', 'x-stainless-', 'proxy-authorization']) expect(allowed).not.toContain(name);
    expect(res.headers.vary).toContain('access-control-request-headers');
  });

  it('allows the SDK headers when the preflight names none', async () => {
    const res = await request(`${relay.gateway.baseUrl}/models`, { method: 'OPTIONS', headers: { origin: PAGE, 'access-control-request-method': 'GET' } });
    expect(res.statusCode).toBe(204);
    await res.body.dump();
    expect(String(res.headers['access-control-allow-headers']).split(', ')).toEqual([...ALLOWED_HEADERS]);
  });

  it('refuses a preflight from an origin not listed with 403 origin_not_allowed and no CORS headers, not relayed', async () => {
    const before = relay.fake.requests.length;
    const res = await preflight(relay.gateway.baseUrl, '/chat/completions', OTHER);
    expect(res.statusCode).toBe(403);
    expect(await res.body.json()).toEqual({
      error: { message: `Pages of ${OTHER} may not call this gateway (cors.origins).`, type: 'invalid_request_error', param: null, code: 'origin_not_allowed' },
    });
    expect(corsHeaders(res.headers)).toEqual({});
    expect(relay.fake.requests.length).toBe(before);
  });

  it('relays an OPTIONS that is not a preflight (no Origin) as any request: it needs a key', async () => {
    const before = relay.fake.requests.length;
    const res = await preflight(relay.gateway.baseUrl, '/chat/completions', undefined);
    expect(res.statusCode).toBe(401);
    await res.body.dump();
    expect(corsHeaders(res.headers)).toEqual({});
    const keyed = await request(`${relay.gateway.baseUrl}/models`, { method: 'OPTIONS', headers: { authorization: `Bearer ${relay.userKey}` } });
    await keyed.body.dump();
    expect(relay.fake.requests.length).toBe(before + 1);
    expect(relay.fake.requests.at(-1)?.method).toBe('OPTIONS');
  });

  it('answers a preflight the lane leaves to Fastify (an overlong target) the same way', async () => {
    const before = relay.fake.requests.length;
    const res = await preflight(relay.gateway.baseUrl, `/files?after=${'a'.repeat(2100)}`, PAGE);
    expect(res.statusCode).toBe(204);
    await res.body.dump();
    expect(res.headers['access-control-allow-origin']).toBe(PAGE);
    expect(res.headers['access-control-max-age']).toBe(String(MAX_AGE_SECONDS));
    expect(relay.fake.requests.length).toBe(before);
  });

  it("allows Chromium's private network access when an allowed page asks for it", async () => {
    const res = await preflight(relay.gateway.baseUrl, '/chat/completions', PAGE, { 'access-control-request-private-network': 'true' });
    expect(res.statusCode).toBe(204);
    await res.body.dump();
    expect(res.headers['access-control-allow-private-network']).toBe('true');
  });
});

describe('with cors.origins "*"', () => {
  let relay: RelayFixture;
  beforeAll(async () => {
    relay = await startRelay('sk-pool-cors-preflight-2', {}, { cors: { origins: ['*'] } });
  });
  afterAll(() => relay.close());

  it('answers any page, echoing its origin (null included)', async () => {
    for (const origin of [PAGE, OTHER, 'http://localhost:3000', 'null']) {
      const res = await preflight(relay.gateway.baseUrl, '/chat/completions', origin);
      expect(res.statusCode, origin).toBe(204);
      await res.body.dump();
      expect(res.headers['access-control-allow-origin'], origin).toBe(origin);
    }
    expect(relay.fake.requests.length).toBe(0);
  });
});

describe('without cors.origins (the default)', () => {
  let relay: RelayFixture;
  beforeAll(async () => {
    relay = await startRelay('sk-pool-cors-preflight-3');
  });
  afterAll(() => relay.close());

  it('has no CORS: a preflight is an OPTIONS like any other, 401 without a key, with no CORS header', async () => {
    const res = await preflight(relay.gateway.baseUrl, '/chat/completions', PAGE);
    expect(res.statusCode).toBe(401);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    expect(corsHeaders(res.headers)).toEqual({});
    expect(res.headers.vary).toBeUndefined();
    expect(relay.fake.requests.length).toBe(0);
  });
});
