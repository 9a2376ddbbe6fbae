// One user cannot hurt the others: no pool key reaches a client, whatever the upstream sends back.
// The upstream here echoes the key in each way one has been seen to: a compressed error body
// (the gateway asked for identity), JSON escapes inside the key, an answer header, a redirect's
// location, a success body and an SSE stream whose key is cut between two chunks. The client's
// status, headers and body hold no form of the key (raw, escaped, percent-encoded, base64: the
// scan of log-capture.ts), and the answer is still of use: the masked key is in its place.
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeResponse } from '../src/dev/fake-upstream.js';
import { guardHeldAnswer } from '../src/relay/answer-guard.js';
import { createMasker } from '../src/relay/mask.js';
import { poolKeyForms } from './helpers/log-capture.js';
import { type RelayFixture, cutEvery, startRelay } from './helpers/relay-fixture.js';
import { type RawHttpAnswer, scannedRequest } from './helpers/scanned-client.js';

const POOL_KEY = 'sk-proj-Lk29Xv0QpB7mZt3RwY8cN1sHd4Ua6Ej5Gi2Fo9Kq0Vz7Tb3Wx8Cy1Pn6Ml4Jr5q';
const MASKED = 'sk-***Jr5q';
const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };

/** The key with the characters in `chars` (every one when omitted) written as JSON `\u00XX` escapes. */
function jsonEscaped(key: string, chars?: string, upper = false): string {
  const hex = (c: string) => c.charCodeAt(0).toString(16).padStart(2, '0');
  return [...key].map((c) => (chars === undefined || chars.includes(c) ? `\\u00${upper ? hex(c).toUpperCase() : hex(c)}` : c)).join('');
}

const openaiError = (message: string) => ({ error: { message, type: 'invalid_request_error', param: null, code: null } });

let relay: RelayFixture;
beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());
beforeEach(() => relay.fake.reset());

function answerWith(answer: FakeResponse): void {
  relay.fake.handle(() => answer);
}

function chat(extra: Record<string, unknown> = {}): Promise<RawHttpAnswer> {
  return scannedRequest(`${relay.gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], ...extra }),
  });
}

/** No form of the key anywhere in the answer (the suite-wide scan says the same after the file). */
function expectNoKey(answer: RawHttpAnswer): void {
  const everything = [String(answer.status), ...Object.entries(answer.headers).map(([n, v]) => `${n}: ${String(v)}`), answer.text];
  expect(everything.flatMap(poolKeyForms)).toEqual([]);
}

/** The SSE events' data, parsed (`[DONE]` kept as text). */
function events(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

const completion = (content: string) => ({
  id: 'chatcmpl-leak',
  object: 'chat.completion',
  created: 1767225600,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 },
});

const chunk = (content: string) => ({
  id: 'chatcmpl-leak',
  object: 'chat.completion.chunk',
  created: 1767225600,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, delta: { content }, finish_reason: null }],
});

describe('an error body', () => {
  const body = JSON.stringify(openaiError(`Incorrect API key provided: ${POOL_KEY}.`));
  const masked = openaiError(`Incorrect API key provided: ${MASKED}.`);

  it.each([
    ['gzip', gzipSync(body)],
    ['br', brotliCompressSync(body)],
  ])('compressed (%s) although the gateway asked for identity: decoded, masked, sent as identity', async (encoding, bytes) => {
    answerWith({ status: 400, headers: { 'content-type': 'application/json', 'content-encoding': encoding }, body: bytes });
    const answer = await chat();

    expectNoKey(answer);
    expect(answer.status).toBe(400);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(answer.text)).toEqual(masked);
    expect(answer.headers['content-length']).toBe(String(answer.body.length));
  });

  it('compressed in an encoding the gateway cannot decode: 502 upstream_invalid_response, nothing of it passed on', async () => {
    answerWith({ status: 400, headers: { 'content-type': 'application/json', 'content-encoding': 'zstd' }, body: Buffer.from(body) });
    const answer = await chat();

    expectNoKey(answer);
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toEqual({
      error: {
        message: 'The upstream compressed its answer in an encoding the gateway cannot decode, although it asked for none.',
        type: 'server_error',
        param: null,
        code: 'upstream_invalid_response',
      },
    });
  });

  it.each([
    ['its dashes', jsonEscaped(POOL_KEY, '-')],
    ['its first letter', jsonEscaped(POOL_KEY, 's')],
    ['every character', jsonEscaped(POOL_KEY)],
    ['every character, upper-case hex', jsonEscaped(POOL_KEY, undefined, true)],
  ])('with JSON escapes for %s inside the key: masked', async (_name, escaped) => {
    answerWith({ status: 400, headers: { 'content-type': 'application/json' }, body: `{"error":{"message":"Incorrect API key provided: ${escaped}.","type":"invalid_request_error","param":null,"code":null}}` });
    const answer = await chat();

    expectNoKey(answer);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toEqual(masked);
  });

  it('an escaped backslash before u0073 is text, not an escape, and is left as it came', async () => {
    const text = `{"error":{"message":"path C:\\\\u0073k-proj and ${POOL_KEY}"}}`;
    answerWith({ status: 400, headers: { 'content-type': 'application/json' }, body: text });
    const answer = await chat();

    expect(answer.text).toBe(`{"error":{"message":"path C:\\\\u0073k-proj and ${MASKED}"}}`);
  });
});

describe('an answer header', () => {
  it.each([
    ['as it is', `Bearer ${POOL_KEY}`, `Bearer ${MASKED}`],
    ['percent-encoded', `key=${encodeURIComponent(POOL_KEY).replaceAll('-', '%2D')}`, `key=${MASKED}`],
    ['JSON-escaped', `{"key":"${jsonEscaped(POOL_KEY, '-')}"}`, `{"key":"${MASKED}"}`],
  ])('holding the key %s, on an error and on a success: masked', async (_name, value, masked) => {
    answerWith({ status: 400, headers: { 'content-type': 'application/json', 'x-debug-authorization': value }, body: openaiError('Bad request.') });
    const refused = await chat();
    expectNoKey(refused);
    expect(refused.status).toBe(400);
    expect(refused.headers['x-debug-authorization']).toBe(masked);

    relay.fake.reset();
    answerWith({ headers: { 'content-type': 'application/json', 'x-debug-authorization': value }, body: completion('Hello') });
    const served = await chat();
    expectNoKey(served);
    expect(served.status).toBe(200);
    expect(served.headers['x-debug-authorization']).toBe(masked);
    expect(JSON.parse(served.text)).toEqual(completion('Hello'));
  });
});

describe('a redirect', () => {
  it.each([
    ['as it is', `https://upstream.example/callback?api_key=${POOL_KEY}`],
    ['percent-encoded', `https://upstream.example/callback?api_key=${POOL_KEY.replaceAll('-', '%2D')}`],
  ])('whose location holds the key %s: 502 upstream_invalid_response, no location', async (_name, location) => {
    answerWith({ status: 302, headers: { location }, body: `Found: ${location}` });
    const answer = await chat();

    expectNoKey(answer);
    expect(answer.status).toBe(502);
    expect(answer.headers.location).toBeUndefined();
    expect(JSON.parse(answer.text)).toMatchObject({ error: { code: 'upstream_invalid_response', type: 'server_error' } });
  });

  it('whose location holds no key passes as it came', async () => {
    answerWith({ status: 302, headers: { location: 'https://upstream.example/v1/files/file-abc' }, body: '' });
    const answer = await chat();

    expect(answer.status).toBe(302);
    expect(answer.headers.location).toBe('https://upstream.example/v1/files/file-abc');
  });
});

describe('a success body', () => {
  const content = `Your key is ${POOL_KEY}, and again "${jsonEscaped(POOL_KEY, '-')}"`;
  const json = JSON.stringify(completion('X')).replace('"X"', `"${content.replaceAll('"', '\\"')}"`);
  const masked = completion(`Your key is ${MASKED}, and again "${MASKED}"`);

  it('in JSON, cut into chunks of 7 bytes (the key across several): masked, whole', async () => {
    answerWith({ headers: { 'content-type': 'application/json' }, chunks: cutEvery(json, 7) });
    const answer = await chat();

    expectNoKey(answer);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual(masked);
  });

  it('in JSON, compressed: decoded, masked, sent as identity', async () => {
    answerWith({ headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, chunks: cutEvery(gzipSync(json), 16) });
    const answer = await chat();

    expectNoKey(answer);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(answer.text)).toEqual(masked);
  });

  it('without a key passes byte for byte', async () => {
    const plain = JSON.stringify(completion('sk-learn and \\u0041 are fine'));
    answerWith({ headers: { 'content-type': 'application/json' }, chunks: cutEvery(plain, 5) });
    const answer = await chat();

    expect(answer.text).toBe(plain);
  });
});

describe('an SSE stream', () => {
  const split = (first: string, second: string) => [`data: ${first}`, `${second}\n\n`, 'data: [DONE]\n\n'];
  const cut = 'Your key is '.length + 20;
  const eventText = JSON.stringify(chunk(`Your key is ${POOL_KEY}.`));
  const start = eventText.indexOf('Your key is ');

  it.each([
    ['as it is', eventText.slice(0, start + cut), eventText.slice(start + cut)],
    ['inside a JSON escape', `${eventText.slice(0, start + 14)}\\u00`, `2d${eventText.slice(start + 15)}`],
  ])('whose key is cut between two chunks (%s): masked, every event whole', async (_name, first, second) => {
    answerWith({ headers: SSE, chunks: split(first, second), chunkIntervalMs: 20 });
    const answer = await chat({ stream: true });

    expectNoKey(answer);
    expect(answer.status).toBe(200);
    expect(events(answer.text)).toEqual([chunk(`Your key is ${MASKED}.`), '[DONE]']);
  });

  it('compressed: decoded as it streams, masked', async () => {
    const stream = `data: ${eventText}\n\ndata: [DONE]\n\n`;
    answerWith({ headers: { ...SSE, 'content-encoding': 'gzip' }, chunks: cutEvery(gzipSync(stream), 10) });
    const answer = await chat({ stream: true });

    expectNoKey(answer);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(events(answer.text)).toEqual([chunk(`Your key is ${MASKED}.`), '[DONE]']);
  });
});

// The fake upstream cannot script a refused WebSocket handshake; its answer is read whole and
// guarded by the same function the relay calls (src/relay/websocket.ts).
describe('a refused WebSocket handshake', () => {
  const masker = createMasker([POOL_KEY]);
  const body = JSON.stringify(openaiError(`Incorrect API key provided: ${POOL_KEY}.`));

  it('compressed, with the key in a header: decoded, masked, identity', () => {
    const guarded = guardHeldAnswer({ 'content-encoding': 'gzip', 'content-length': '99', 'x-echo': POOL_KEY }, gzipSync(body), masker, 1024 * 1024);
    expect(guarded).toEqual({ ok: true, headers: { 'x-echo': MASKED }, body: Buffer.from(JSON.stringify(openaiError(`Incorrect API key provided: ${MASKED}.`))) });
  });

  it('inflating past the bound: 502 upstream_invalid_response', () => {
    const guarded = guardHeldAnswer({ 'content-encoding': 'gzip' }, gzipSync(Buffer.alloc(2 * 1024 * 1024, 0x20)), masker, 1024 * 1024);
    expect(guarded).toMatchObject({ ok: false, error: { code: 'upstream_invalid_response', status: 502 } });
  });
});
