// The lane (src/relay/lane.ts) takes API requests from the server before Fastify does. An answer
// must not depend on which of the two served it: the same request sent over a socket (the lane)
// and through app.inject() (Fastify's route, which the lane never sees) gets the same status,
// body and headers, and one record each. What the lane leaves to Fastify is answered as before.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-lane-test-00000000000001';
// Headers that differ between any two answers, whoever wrote them (the fake's timing among them).
const PER_ANSWER = new Set(['date', 'openai-processing-ms', 'x-request-id', 'x-keyrelay-request-id', 'connection', 'keep-alive', 'transfer-encoding']);

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  registerSecret(ADMIN_TOKEN);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('lane-user', { models: ['gpt-4o-mini'] });
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string>;
  requestId: string;
}

function stable(headers: Record<string, string | string[] | number | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || PER_ANSWER.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

async function overSocket(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const res = await request(`${gateway.url}${path}`, { method: method as 'POST', headers, body });
  const text = await res.body.text();
  return { status: res.statusCode, body: text, headers: stable(res.headers), requestId: String(res.headers['x-keyrelay-request-id']) };
}

async function throughFastify(method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const res = await gateway.app.inject({ method: method as 'POST', url: path, headers, payload: body });
  return { status: res.statusCode, body: res.body, headers: stable(res.headers), requestId: String(res.headers['x-keyrelay-request-id']) };
}

const json = (extra: Record<string, string> = {}) => ({ 'content-type': 'application/json', ...extra });
const chat = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });

describe('the lane and Fastify give the same answer', () => {
  const cases: Array<[string, string, string, () => Record<string, string>, string | undefined, number]> = [
    ['no key', 'POST', '/v1/chat/completions', () => json(), chat('gpt-4o-mini'), 401],
    ['an unknown key', 'GET', '/v1/models', () => ({ authorization: `Bearer sk-kr-${'x'.repeat(40)}` }), undefined, 401],
    ['a body that is not JSON', 'POST', '/v1/chat/completions', () => json({ authorization: `Bearer ${key}` }), '{"model": ', 400],
    ['a model the user may not use', 'POST', '/v1/chat/completions', () => json({ authorization: `Bearer ${key}` }), chat('gpt-4o'), 403],
    ['a relayed JSON answer', 'POST', '/v1/embeddings', () => json({ authorization: `Bearer ${key}` }), JSON.stringify({ model: 'gpt-4o-mini', input: 'x' }), 200],
    ['a relayed GET', 'GET', '/v1/models?limit=2', () => ({ authorization: `Bearer ${key}` }), undefined, 200],
  ];
  it.each(cases)('%s', async (_name, method, path, headers, body, status) => {
    const lane = await overSocket(method, path, headers(), body);
    const fastify = await throughFastify(method, path, headers(), body);
    expect(lane.status).toBe(status);
    expect(fastify.status).toBe(status);
    expect(lane.headers).toEqual(fastify.headers);
    if (status >= 400) expect(lane.body).toBe(fastify.body);
    else expect(JSON.parse(lane.body)).toHaveProperty('object');
    // One access line each, under each answer's own request id.
    const lines = (id: string) => gateway.logs.filter((l) => l.msg === 'request' && l.requestId === id);
    await expect.poll(() => lines(lane.requestId).length).toBe(1);
    expect(lines(fastify.requestId)).toHaveLength(1);
    expect(lines(lane.requestId)[0]).toMatchObject({ method, route: path.split('?')[0], status });
  });
});

describe('what the lane leaves to Fastify', () => {
  it('a path with an escape outside the canonical form: the same 400 invalid_path from Fastify', async () => {
    fake.reset();
    const res = await request(`${gateway.url}/v1/files/file-abc%20def`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('invalid_path');
    expect(fake.requests).toHaveLength(0);
  });

  it('a method the relay does not serve gets the 404 of an unknown URL', async () => {
    const res = await rawRequest(gateway.port, `PROPFIND /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body).error.code).toBe('unknown_url');
  });

  it('an unsafe target gets the 400 of the target check', async () => {
    const res = await rawRequest(gateway.port, `GET /v1/models/..%2f..%2fadmin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe('invalid_path');
  });

  it('paths outside /v1 and /v1 itself are not relayed', async () => {
    const bare = await request(`${gateway.url}/v1`, { headers: { authorization: `Bearer ${key}` } });
    const health = await request(`${gateway.url}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.text();
    // `/v1` alone is no operation: the gateway's own 404 unknown_url, never relayed, never a crash.
    expect(bare.statusCode).toBe(404);
    expect(await bare.body.json()).toEqual({ error: { message: 'Unknown request URL: GET /v1.', type: 'invalid_request_error', param: null, code: 'unknown_url' } });
  });
});
