// The CORS headers of /v1 answers (README, "The relay"; docs/browsers.md): every answer
// to a listed origin carries them, relayed or made by the gateway, JSON, SSE or error of any kind;
// another origin gets none; the upstream's own access-control-* headers never reach the client.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPOSED_HEADERS } from '../src/inbound/cors.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';
import { registerSecret } from './helpers/log-capture.js';

const PAGE = 'https://chat.example';
const OTHER = 'https://evil.example';
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };

type Headers = Record<string, string | string[] | undefined>;

const corsHeaders = (headers: Headers) => Object.fromEntries(Object.entries(headers).filter(([name]) => name.startsWith('access-control-')));

/** The CORS headers an answer to PAGE carries, whatever the answer. */
function expectCors(headers: Headers, what: string): void {
  expect(corsHeaders(headers), what).toEqual({
    'access-control-allow-origin': PAGE,
    'access-control-expose-headers': EXPOSED_HEADERS.join(', '),
  });
  expect(String(headers.vary).split(', '), what).toContain('origin');
}

let relay: RelayFixture;
let rpmKey: string;
let modelKey: string;

function call(path: string, options: { key?: string; origin?: string; method?: string; body?: string | object } = {}) {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  return request(`${relay.gateway.baseUrl}${path}`, {
    method: (options.method ?? (body === undefined ? 'GET' : 'POST')) as 'GET',
    headers: {
      ...(options.key === undefined ? {} : { authorization: `Bearer ${options.key}` }),
      ...(options.origin === undefined ? {} : { origin: options.origin }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body,
  });
}

beforeAll(async () => {
  relay = await startRelay('sk-pool-cors-answers-1', {}, { cors: { origins: [PAGE] }, limits: { jsonBodyBytes: 4096, multipartBodyBytes: 4096, otherBodyBytes: 4096 } });
  rpmKey = await relay.gateway.createUserKey('cors-rpm', { limits: { rpm: 1 } });
  modelKey = await relay.gateway.createUserKey('cors-models', { models: ['gpt-4o'] });
  registerSecret(rpmKey);
  registerSecret(modelKey);
});
afterAll(() => relay.close());

describe('an answer to a listed origin', () => {
  it('a relayed 200 carries the headers, and the user limits it exposes', async () => {
    const res = await call('/chat/completions', { key: relay.userKey, origin: PAGE, body: CHAT });
    expect(res.statusCode).toBe(200);
    await res.body.json();
    expectCors(res.headers, '200');
    expect(res.headers['x-keyrelay-request-id']).toBeDefined();
  });

  it('an SSE stream carries them, and streams as before', async () => {
    const res = await call('/chat/completions', { key: relay.userKey, origin: PAGE, body: { ...CHAT, stream: true } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expectCors(res.headers, 'SSE');
    const text = await res.body.text();
    expect(text).toContain('data: [DONE]');
  });

  it('every kind of error carries them', async () => {
    const cases: Array<[string, Promise<Awaited<ReturnType<typeof call>>>, number, string]> = [];
    const add = (what: string, status: number, code: string, answer: Promise<Awaited<ReturnType<typeof call>>>) => cases.push([what, answer, status, code]);
    add('no key', 401, 'invalid_api_key', call('/chat/completions', { origin: PAGE, body: CHAT }));
    add('an unknown key', 401, 'invalid_api_key', call('/models', { key: 'sk-kr-00000000000000000000000000000000', origin: PAGE }));
    add('a model not allowed', 403, 'model_not_allowed', call('/chat/completions', { key: modelKey, origin: PAGE, body: CHAT }));
    add("an object the user does not own", 404, 'not_found', call('/files/file-nobodys', { key: relay.userKey, origin: PAGE }));
    add('malformed JSON', 400, 'invalid_json', call('/chat/completions', { key: relay.userKey, origin: PAGE, body: '{"model":' }));
    add('a body too large', 413, 'request_too_large', call('/chat/completions', { key: relay.userKey, origin: PAGE, body: { ...CHAT, pad: 'x'.repeat(5000) } }));
    add('a target that fails the check (answered by Fastify)', 400, 'invalid_path', call('/models//b', { key: relay.userKey, origin: PAGE }));
    for (const [what, answer, status, code] of cases) {
      const res = await answer;
      const body = (await res.body.json()) as { error: { code: string } };
      expect(res.statusCode, what).toBe(status);
      expect(body.error.code, what).toBe(code);
      expectCors(res.headers, what);
    }
  });

  it('a 429 of the user’s rate limit carries them, with retry-after exposed', async () => {
    const first = await call('/models', { key: rpmKey, origin: PAGE });
    await first.body.dump();
    const res = await call('/models', { key: rpmKey, origin: PAGE });
    expect(res.statusCode).toBe(429);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    expectCors(res.headers, '429');
    expect(res.headers['retry-after']).toBeDefined();
    expect(EXPOSED_HEADERS).toContain('retry-after');
  });

  it("the gateway's own upstream errors carry them (502 upstream unreachable)", async () => {
    relay.fake.handle(() => ({ destroyBeforeHeaders: true }));
    try {
      const res = await call('/models', { key: relay.userKey, origin: PAGE });
      expect(res.statusCode).toBe(502);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('upstream_unreachable');
      expectCors(res.headers, '502');
    } finally {
      relay.fake.reset();
    }
  });

  it("an upstream's error carries the gateway's headers, never the upstream's own; its Vary is kept with origin", async () => {
    relay.fake.handle(() => ({
      status: 400,
      headers: {
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'access-control-allow-headers': 'x-anything',
        'access-control-expose-headers': 'set-cookie',
        vary: 'Accept-Encoding',
        'openai-processing-ms': '12',
      },
      body: { error: { message: 'bad', type: 'invalid_request_error', param: 'messages', code: 'upstream_said_no' } },
    }));
    try {
      const res = await call('/chat/completions', { key: relay.userKey, origin: PAGE, body: CHAT });
      expect(res.statusCode).toBe(400);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('upstream_said_no');
      expectCors(res.headers, 'upstream 400');
      expect(res.headers.vary).toBe('accept-encoding, origin');
      expect(res.headers['openai-processing-ms']).toBe('12');
    } finally {
      relay.fake.reset();
    }
  });

  it('the page origin is not sent upstream', async () => {
    const res = await call('/models', { key: relay.userKey, origin: PAGE });
    await res.body.dump();
    expect(relay.fake.requests.at(-1)?.headers.origin).toBeUndefined();
  });
});

describe('an answer to an origin not listed', () => {
  it('is served, with no CORS header at all (the browser keeps it from the page)', async () => {
    relay.fake.handle(() => ({ headers: { 'access-control-allow-origin': '*' }, body: { object: 'list', data: [] } }));
    try {
      for (const res of [await call('/models', { key: relay.userKey, origin: OTHER }), await call('/models', { origin: OTHER })]) {
        await res.body.dump();
        expect(corsHeaders(res.headers)).toEqual({});
        expect(res.headers.vary).toBeUndefined();
      }
    } finally {
      relay.fake.reset();
    }
  });

  it('nor does an answer to a request without Origin (not a browser)', async () => {
    const res = await call('/chat/completions', { key: relay.userKey, body: CHAT });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(corsHeaders(res.headers)).toEqual({});
  });
});

describe('without cors.origins (the default)', () => {
  let plain: RelayFixture;
  beforeAll(async () => {
    plain = await startRelay('sk-pool-cors-answers-2');
  });
  afterAll(() => plain.close());

  it("no answer carries a CORS header, not even the upstream's", async () => {
    plain.fake.handle(() => ({ headers: { 'access-control-allow-origin': '*', 'access-control-expose-headers': '*' }, body: { object: 'list', data: [] } }));
    const res = await request(`${plain.gateway.baseUrl}/models`, { headers: { authorization: `Bearer ${plain.userKey}`, origin: PAGE } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(corsHeaders(res.headers)).toEqual({});
    const refused = await request(`${plain.gateway.baseUrl}/models`, { headers: { origin: PAGE } });
    expect(refused.statusCode).toBe(401);
    await refused.body.dump();
    expect(corsHeaders(refused.headers)).toEqual({});
  });
});
