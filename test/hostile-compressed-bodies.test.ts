// Request bodies sent with a Content-Encoding (gzip bombs among them): the gateway reads request
// bodies as sent and decodes none, so a compressed one would be checked blind (a JSON body as
// garbage, a form's model and object fields unseen) and relayed for the upstream to inflate. Such a
// body is refused at once, 400 `unsupported_content_encoding`, before its key is looked up or a
// byte of it read; the upstream sees nothing; the gateway's memory does not follow the inflated size.
import { createGzip, deflateSync, brotliCompressSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-compressed-bodies-00001';
const BOUNDARY = 'compressed-body-boundary';
const INFLATED_JSON = 45 * 1024 * 1024;
const INFLATED_FORM = 200 * 1024 * 1024;
// Far under either inflated size, far over what a refusal costs.
const MEMORY_GROWTH_BOUND = 40 * 1024 * 1024;
const REFUSED = {
  error: {
    message: 'The request body has a Content-Encoding: this gateway reads request bodies uncompressed, so that it checks what it relays; send the body without one.',
    type: 'invalid_request_error',
    param: null,
    code: 'unsupported_content_encoding',
  },
};

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('squeezer');
  registerSecret(key);
}, 30_000);
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

/** gzip of `head`, `size` bytes of one letter, then `tail`, compressed as it is made (never held inflated). */
function gzipBomb(head: string, size: number, tail: string): Promise<Buffer> {
  async function* parts(): AsyncGenerator<Buffer> {
    yield Buffer.from(head);
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    for (let left = size; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
    yield Buffer.from(tail);
  }
  return buffer(Readable.from(parts()).pipe(createGzip({ level: 9 })));
}

const memory = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Sends the body and resolves the answer, with the growth of this process's memory meanwhile (the gateway runs here). */
async function send(path: string, headers: Record<string, string>, body: Buffer | string | undefined, method = 'POST') {
  const before = memory();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, memory())), 5);
  try {
    const res = await request(`${gateway.url}${path}`, { method, headers: { authorization: `Bearer ${key}`, ...headers }, body });
    const text = await res.body.text();
    peak = Math.max(peak, memory());
    return { status: res.statusCode, headers: res.headers, text, growth: peak - before };
  } finally {
    clearInterval(sampler);
  }
}

function expectRefused(answer: Awaited<ReturnType<typeof send>>): void {
  expect(answer.status).toBe(400);
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.headers['accept-encoding']).toBe('identity');
  expect(JSON.parse(answer.text)).toEqual(REFUSED);
}

describe('gzip bombs', () => {
  it(`a JSON chat body of ${INFLATED_JSON / 2 ** 20} MB inflated: refused before it is read, the upstream untouched, memory bounded`, async () => {
    const bomb = await gzipBomb('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"', INFLATED_JSON, '"}]}');
    expect(bomb.length).toBeLessThan(INFLATED_JSON / 500);
    fake.reset();
    const answer = await send('/v1/chat/completions', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, bomb);
    expectRefused(answer);
    expect(fake.requests).toEqual([]);
    expect(answer.growth).toBeLessThan(MEMORY_GROWTH_BOUND);
  });

  it(`a transcription form of ${INFLATED_FORM / 2 ** 20} MB inflated: refused, not relayed for the upstream to inflate`, async () => {
    const head =
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`;
    const bomb = await gzipBomb(head, INFLATED_FORM, `\r\n--${BOUNDARY}--\r\n`);
    fake.reset();
    const answer = await send('/v1/audio/transcriptions', { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-encoding': 'gzip' }, bomb);
    expectRefused(answer);
    expect(fake.requests).toEqual([]);
    expect(answer.growth).toBeLessThan(MEMORY_GROWTH_BOUND);
  });
});

describe('other codings', () => {
  const chat = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }] });

  it('deflate, br, x-gzip, a list, an unknown coding and one written oddly are refused the same, chunked or not', async () => {
    const bodies: Array<[string, Buffer]> = [
      ['deflate', deflateSync(chat)],
      ['br', brotliCompressSync(chat)],
      ['x-gzip', Buffer.from(chat)],
      ['GZIP', Buffer.from(chat)],
      ['gzip, identity', Buffer.from(chat)],
      ['identity, gzip', Buffer.from(chat)],
      ['zstd', Buffer.from(chat)],
      [`x-${key}`, Buffer.from(chat)],
    ];
    fake.reset();
    for (const [coding, body] of bodies) {
      expectRefused(await send('/v1/chat/completions', { 'content-type': 'application/json', 'content-encoding': coding }, body));
      // Chunked: no Content-Length, the body still there.
      expectRefused(await send('/v1/chat/completions', { 'content-type': 'application/json', 'content-encoding': coding }, Readable.from([body]) as never));
    }
    expect(fake.requests).toEqual([]);
  });

  it('refuses it on every route, the admin API included, before the key is looked up', async () => {
    const answer = await send('/admin/users', { 'content-type': 'application/json', 'content-encoding': 'gzip', authorization: 'Bearer not-a-key' }, Buffer.from('{}'));
    expectRefused(answer);
  });

  it('takes identity, an empty value, and the header on a request without a body', async () => {
    for (const coding of ['identity', 'Identity', '']) {
      const answer = await send('/v1/chat/completions', { 'content-type': 'application/json', 'content-encoding': coding }, chat);
      expect(answer.status, coding).toBe(200);
    }
    const models = await send('/v1/models', { 'content-encoding': 'gzip' }, undefined, 'GET');
    expect(models.status).toBe(200);
  });
});
