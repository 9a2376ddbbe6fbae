// Bad bodies and smuggling attempts get a clear OpenAI-shaped error and never reach the upstream
// (docs/reliability.md, cases 30, 31, 32 and 35).
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-malformed-test-0000001';
let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { limits: { jsonBodyBytes: 64 * 1024, multipartBodyBytes: 256 * 1024, otherBodyBytes: 128 * 1024 } },
  });
  key = await gateway.createUserKey('alice');
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

async function post(path: string, contentType: string, body: string | Buffer | AsyncIterable<Buffer>) {
  const res = await request(`${gateway.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': contentType },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : Readable.from(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) as { error: Record<string, unknown> } };
}

describe('case 30: body over the limit', () => {
  it('is refused by Content-Length before the body is read', async () => {
    fake.reset();
    const answer = await rawRequest(
      gateway.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{"model":`,
    );
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: 'The request body is larger than 65536 bytes.', type: 'invalid_request_error', param: null, code: 'request_too_large' },
    });
    expect(fake.requests).toHaveLength(0);
  });

  it('a chunked JSON body is refused as soon as it passes the limit', async () => {
    fake.reset();
    async function* chunks() {
      yield Buffer.from('{"model":"gpt-4o","input":"');
      for (let i = 0; i < 100; i++) yield Buffer.alloc(1024, 0x61);
      yield Buffer.from('"}');
    }
    const res = await post('/v1/embeddings', 'application/json', chunks());
    expect(res.status).toBe(413);
    expect(res.json.error.code).toBe('request_too_large');
    expect(fake.requests).toHaveLength(0);
  });

  it('multipart over its own limit is refused by Content-Length', async () => {
    const answer = await rawRequest(
      gateway.port,
      `POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: multipart/form-data; boundary=abc\r\nContent-Length: 300000\r\n\r\n--abc`,
    );
    expect(answer.status).toBe(413);
  });
});

describe('case 31: malformed JSON', () => {
  it.each([
    ['invalid JSON', '{"model": "gpt-4o",', 'invalid_json', null],
    ['a __proto__ key', '{"model":"gpt-4o","__proto__":{"admin":true}}', 'invalid_json', null],
    ['constructor.prototype', '{"constructor":{"prototype":{"admin":true}}}', 'invalid_json', null],
    ['model of the wrong type', '{"model": 42}', 'invalid_request', 'model'],
    ['stream of the wrong type', '{"model":"gpt-4o","stream":"yes"}', 'invalid_request', 'stream'],
    ['negative max_tokens', '{"model":"gpt-4o","max_tokens":-1}', 'invalid_request', 'max_tokens'],
    ['fractional max_completion_tokens', '{"model":"gpt-4o","max_completion_tokens":1.5}', 'invalid_request', 'max_completion_tokens'],
    ['max_output_tokens as a string', '{"model":"gpt-4o","max_output_tokens":"10"}', 'invalid_request', 'max_output_tokens'],
  ])('%s: 400 with the right code and param', async (_name, body, code, param) => {
    fake.reset();
    const res = await post('/v1/chat/completions', 'application/json', body);
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code, param });
    expect(fake.requests).toHaveLength(0);
  });

  it('deep nesting is answered, not crashed on', async () => {
    fake.reset();
    const deep = `{"model":"gpt-4o","x":${'['.repeat(30_000)}${']'.repeat(30_000)}}`;
    const res = await post('/v1/chat/completions', 'application/json', deep);
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request', param: 'x' });
    expect(fake.requests).toHaveLength(0);
    const health = await request(`${gateway.url}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.text();
  });
});

describe('case 32: broken multipart', () => {
  it.each([
    ['no boundary', 'multipart/form-data'],
    ['an empty boundary', 'multipart/form-data; boundary='],
    ['a boundary over 70 characters', `multipart/form-data; boundary=${'b'.repeat(71)}`],
  ])('%s: 400 invalid_multipart', async (_name, contentType) => {
    fake.reset();
    const res = await post('/v1/files', contentType, '--x\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('invalid_multipart');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('case 35: request smuggling', () => {
  it.each([
    ['Content-Length with Transfer-Encoding', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'],
    ['duplicate Content-Length', 'Content-Length: 2\r\nContent-Length: 3\r\n'],
    ['obs-fold', 'X-Folded: a\r\n b\r\nContent-Length: 2\r\n'],
  ])('%s: 400 and the connection closed', async (_name, framing) => {
    fake.reset();
    const answer = await rawRequest(
      gateway.port,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n${framing}\r\n{}\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(answer.status).toBe(400);
    expect(answer.closed).toBe(true);
    expect(fake.requests).toHaveLength(0);
  });
});
