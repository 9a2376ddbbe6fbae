// Cases 30 to 32 (docs/reliability.md), what malformed-requests.test.ts leaves open: a body over
// the limit is refused while the client is still sending it (not once it is done), a body of the
// wrong type or nested too deep is a 400 naming its field, and a broken form (part headers that
// never end, 10,000 parts) is answered quickly. Raw sockets, so that what the client sends and when
// is exactly what the test says, and the answer is read whatever the gateway does next.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { openConnection, parseAnswer } from './helpers/raw-socket.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-case-30-bodies-00001';
const JSON_LIMIT = 64 * 1024;
const OTHER_LIMIT = 128 * 1024;
let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { limits: { jsonBodyBytes: JSON_LIMIT, multipartBodyBytes: 256 * 1024, otherBodyBytes: OTHER_LIMIT } },
  });
  key = await gateway.createUserKey('alice', { limits: { tokensPerDay: 1_000_000 } });
  registerSecret(key);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

function head(path: string, contentType: string, framing: string): string {
  return `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: ${contentType}\r\n${framing}\r\n`;
}

const chunk = (data: Buffer | string) => {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return Buffer.concat([Buffer.from(`${buf.length.toString(16)}\r\n`), buf, Buffer.from('\r\n')]);
};

/** Sends the head and then `bytes` of body, never ends it, and waits (at most `ms`) for an answer. */
async function answerWhileSending(path: string, contentType: string, framing: string, bytes: Buffer[], ms = 5000) {
  const conn = await openConnection(gateway.port);
  conn.socket.write(head(path, contentType, framing));
  for (const b of bytes) conn.socket.write(b);
  const started = Date.now();
  await until(() => /\r\n\r\n/.test(conn.received()), 'an answer while the body is still coming', ms);
  const took = Date.now() - started;
  // Let the body of the answer land.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const answer = parseAnswer(conn.received(), false);
  conn.socket.destroy();
  return { answer, took };
}

describe('case 30: a body over the limit is refused as soon as it passes', () => {
  it('a chunked JSON body that passes 64 KB and then stalls gets its 413 at once', async () => {
    fake.reset();
    const pieces = [chunk('{"model":"gpt-4o-mini","input":"'), ...Array.from({ length: 80 }, () => chunk(Buffer.alloc(1024, 0x61)))];
    const { answer } = await answerWhileSending('/v1/embeddings', 'application/json', 'Transfer-Encoding: chunked\r\n', pieces);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: `The request body is larger than ${JSON_LIMIT} bytes.`, type: 'invalid_request_error', param: null, code: 'request_too_large' },
    });
    expect(fake.requests).toHaveLength(0);
  });

  it('a chunked raw upload that passes its limit and then stalls gets its 413, and the upstream got no more than the limit', async () => {
    fake.reset();
    const pieces = Array.from({ length: 200 }, () => chunk(Buffer.alloc(1024, 0x62)));
    const { answer } = await answerWhileSending('/v1/audio/raw_upload', 'application/octet-stream', 'Transfer-Encoding: chunked\r\n', pieces);
    expect(answer.status).toBe(413);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(JSON.parse(answer.body).error.code).toBe('request_too_large');
    const seen = fake.requests.reduce((n, r) => n + r.body.length, 0);
    expect(seen).toBeLessThanOrEqual(OTHER_LIMIT);
  });

  it('a Content-Length over the limit is refused before one byte of body is sent', async () => {
    fake.reset();
    const { answer } = await answerWhileSending('/v1/chat/completions', 'application/json', 'Content-Length: 10000000\r\n', []);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error.code).toBe('request_too_large');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('case 31: the wrong content type and deep nesting', () => {
  async function send(contentType: string, body: string) {
    const conn = await openConnection(gateway.port);
    conn.socket.write(head('/v1/chat/completions', contentType, `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n`) + body);
    return conn.closed;
  }

  it.each([
    ['text/plain', 'text/plain'],
    ['no content type', ''],
    ['a form type', 'application/x-www-form-urlencoded'],
  ])('JSON sent as %s to an operation that costs: 400 invalid_request, never relayed', async (_name, contentType) => {
    fake.reset();
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    const conn = await openConnection(gateway.port);
    const typeLine = contentType ? `Content-Type: ${contentType}\r\n` : '';
    conn.socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n${typeLine}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    const answer = await conn.closed;
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
    expect(fake.requests).toHaveLength(0);
  });

  it('arrays nested past 64 levels: 400 invalid_request naming the top-level field, never relayed', async () => {
    fake.reset();
    const deep = `{"model":"gpt-4o-mini","messages":[],"metadata":${'['.repeat(30_000)}${']'.repeat(30_000)}}`;
    const answer = await send('application/json', deep);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request', param: 'metadata' });
    expect(fake.requests).toHaveLength(0);
  });

  it('objects nested 65 levels deep are refused; 60 levels pass', async () => {
    fake.reset();
    const nest = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    const refused = await send('application/json', `{"model":"gpt-4o-mini","messages":[],"metadata":${nest(65)}}`);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).error.param).toBe('metadata');
    const passed = await send('application/json', `{"model":"gpt-4o-mini","messages":[],"metadata":${nest(60)}}`);
    expect(passed.status).toBe(200);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('case 32: broken multipart is answered quickly', () => {
  // A form streams through (README, "Body limits"): the gateway reads what it needs of it (the
  // fields before the first file) and the upstream, which parses it whole, refuses a broken one.
  // What the gateway guarantees: an answer within seconds, a form it must read refused before the
  // upstream sees it, and a form it need not read relayed unchanged, never held.
  const unterminated = `--b\r\nContent-Disposition: form-data; name="model"\r\n${'X-Filler: y\r\n'.repeat(20_000)}`;
  const cutInHeaders = '--b\r\nContent-Disposition: form-data; name="model"\r\nContent-Type: text/plain';

  async function form(path: string, body: string, userKey = key) {
    const conn = await openConnection(gateway.port);
    const started = Date.now();
    conn.socket.write(
      `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${userKey}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    const answer = await conn.closed;
    return { answer, took: Date.now() - started };
  }

  it.each([
    ['part headers that never end', unterminated],
    ['a body that ends inside part headers', cutInHeaders],
  ])('%s, on a route whose model the gateway must read: refused within seconds, never relayed', async (_name, body) => {
    fake.reset();
    const listed = await gateway.createUserKey(`listed-${body.length}`, { models: ['whisper-1'] });
    registerSecret(listed);
    const { answer, took } = await form('/v1/audio/transcriptions', body, listed);
    expect(took).toBeLessThan(5000);
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(JSON.parse(answer.body).error.type).toBe('invalid_request_error');
    expect(fake.requests).toHaveLength(0);
  });

  it.each([
    ['part headers that never end', unterminated],
    ['a body that ends inside part headers', cutInHeaders],
  ])('%s, on a route that reads nothing of the form: relayed unchanged within seconds, the upstream decides', async (_name, body) => {
    fake.reset();
    fake.handle(() => ({ status: 400, body: { error: { message: 'Invalid multipart body.', type: 'invalid_request_error', param: null, code: null } } }));
    const { answer, took } = await form('/v1/files', body);
    expect(took).toBeLessThan(5000);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error.message).toBe('Invalid multipart body.');
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.body.toString('latin1')).toBe(body);
  });

  it('10,000 parts: refused within seconds, never relayed, and the gateway serves on', async () => {
    fake.reset();
    const parts = Array.from({ length: 10_000 }, (_, i) => `--b\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`).join('');
    const body = `${parts}--b--\r\n`;
    const conn = await openConnection(gateway.port);
    const started = Date.now();
    conn.socket.write(head('/v1/files', 'multipart/form-data; boundary=b', `Content-Length: ${body.length}\r\nConnection: close\r\n`) + body);
    const answer = await conn.closed;
    expect(Date.now() - started).toBeLessThan(5000);
    // 10,000 parts pass this gateway's 256 KB form limit: refused by their Content-Length.
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body).error).toMatchObject({ type: 'invalid_request_error', code: 'request_too_large' });
    expect(fake.requests).toHaveLength(0);
    const health = await fetch(`${gateway.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
