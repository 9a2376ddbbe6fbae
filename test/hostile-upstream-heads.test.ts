// An upstream whose answer is broken in its head or its framing: a header section of 64 KB,
// thousands of headers, a status line that is not HTTP, redirects to itself or elsewhere, a
// content-length that lies either way. The client gets an OpenAI-shaped 502 (or what can be
// passed on safely), the gateway keeps serving, and the pool key is not blamed for an answer
// that is the upstream's fault (docs/reliability.md, Hostile upstreams).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { CHAT, HEADERS_MS, type HostileFixture, call, startHostile } from './helpers/hostile-upstream-fixture.js';
import { head } from './helpers/raw-upstream.js';

let f: HostileFixture;
beforeAll(async () => {
  f = await startHostile();
});
afterAll(() => f.close());
let failuresBefore = 0;
beforeEach(async () => {
  await f.enableKey();
  f.upstream.requests.length = 0;
  failuresBefore = (await f.key()).failures;
});

const JSON_TYPE: [string, string] = ['content-type', 'application/json'];
const OK_BODY = JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });

function invalidResponse(answer: { status: number; json: any }): void {
  expect(answer.status).toBe(502);
  expect(answer.json).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'upstream_invalid_response' } });
}

/** The key took no failure for it, and the next request with it is served. */
async function keyNotBlamed(): Promise<void> {
  expect(await f.key()).toMatchObject({ state: 'active', failures: failuresBefore, consecutiveFailures: 0 });
  f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', OK_BODY.length]]) + OK_BODY));
  const next = await call(f, '/chat/completions', { body: CHAT });
  expect(next.status).toBe(200);
}

describe('a header section past what the gateway reads', () => {
  it('one header of 64 KB: 502 upstream_invalid_response, the key not blamed', async () => {
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['x-huge', 'a'.repeat(64 * 1024)], ['content-length', 2]]) + '{}'));
    invalidResponse(await call(f, '/chat/completions', { body: CHAT }));
    await keyNotBlamed();
  });

  it('thousands of headers: 502 upstream_invalid_response, the key not blamed', async () => {
    const many: Array<[string, string]> = Array.from({ length: 5000 }, (_, i) => [`x-h${i}`, String(i)]);
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ...many, ['content-length', 2]]) + '{}'));
    invalidResponse(await call(f, '/chat/completions', { body: CHAT }));
    await keyNotBlamed();
  });

  it('a header section that never ends: 504 upstream_timeout once the headers deadline passes', async () => {
    // A header line a second, forever: each under the size bound, the section never complete.
    f.upstream.answer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\n');
      const timer = setInterval(() => socket.write('x-drip: 1\r\n'), 100);
      socket.once('close', () => clearInterval(timer));
    });
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('upstream_timeout');
  });

  it('a status line that never ends: 504 upstream_timeout at the headers deadline, none of it held', async () => {
    f.upstream.answer((socket) => {
      socket.write('HTTP/1.1 200 ');
      const timer = setInterval(() => socket.write('A'.repeat(64 * 1024)), 5);
      socket.once('close', () => clearInterval(timer));
    });
    const before = process.memoryUsage().rss;
    const answer = await call(f, '/chat/completions', { body: CHAT });
    // undici keeps only the last piece of a reason phrase: tens of MB come and go.
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('upstream_timeout');
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 1024 * 1024);
    await f.upstream.whenIdle();
  });

  it('informational answers (103) without end: 504 upstream_timeout at the headers deadline', async () => {
    f.upstream.answer((socket) => {
      const timer = setInterval(() => socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n'), 50);
      socket.once('close', () => clearInterval(timer));
    });
    const started = performance.now();
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('upstream_timeout');
    expect(performance.now() - started).toBeLessThan(HEADERS_MS + 5_000);
  });

  it('an informational answer (103) ahead of the real one: the real one reaches the client', async () => {
    f.upstream.answer((socket) => {
      socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n');
      setTimeout(() => socket.end(head('200 OK', [JSON_TYPE, ['content-length', OK_BODY.length]]) + OK_BODY), 200);
    });
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(200);
    expect(answer.json.id).toBe('chatcmpl-1');
  });

  it('a few hundred small headers pass as they came', async () => {
    const some: Array<[string, string]> = Array.from({ length: 300 }, (_, i) => [`x-h${i}`, String(i)]);
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ...some, ['content-length', OK_BODY.length]]) + OK_BODY));
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-h299')).toBe('299');
    expect(answer.json.id).toBe('chatcmpl-1');
  });
});

describe('an answer that is not HTTP', () => {
  it.each([
    ['garbage for a status line', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
    ['a status line with no status', 'HTTP/1.1 abc OK\r\ncontent-length: 0\r\n\r\n'],
    ['a header line with no colon', 'HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n'],
    ['two different content-lengths', 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 5\r\n\r\n{}'],
  ])('%s: 502 upstream_invalid_response, the key not blamed', async (_name, bytes) => {
    f.upstream.answer((socket) => socket.end(bytes));
    invalidResponse(await call(f, '/chat/completions', { body: CHAT }));
    await keyNotBlamed();
  });
});

describe('a content-length that lies', () => {
  it('shorter than the body: the client gets as many bytes as it says, and the gateway goes on', async () => {
    const body = JSON.stringify({ id: 'chatcmpl-short' });
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', body.length]]) + body + 'TRAILING GARBAGE THAT IS NOT AN ANSWER'));
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(200);
    expect(answer.text).toBe(body);
    await keyNotBlamed();
  });

  it('longer than the body, then close: the client connection is cut, never a body that looks whole', async () => {
    const body = JSON.stringify({ id: 'chatcmpl-long' });
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', body.length + 1000]]) + body));
    const error = await call(f, '/chat/completions', { body: CHAT }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error).toBeInstanceOf(TypeError);
    // The next request is served.
    await f.enableKey();
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', OK_BODY.length]]) + OK_BODY));
    expect((await call(f, '/chat/completions', { body: CHAT })).status).toBe(200);
  });

  it('longer than an error body, then close: the client gets a mapped 502', async () => {
    f.upstream.answer((socket) => socket.end(head('500 Internal Server Error', [JSON_TYPE, ['content-length', 5000]]) + '{"error":'));
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(502);
    expect(answer.json.error).toMatchObject({ type: 'server_error', code: 'upstream_unreachable' });
  });
});

describe('a redirect: never followed by the gateway', () => {
  it.each([301, 302, 307])('%i to the same URL reaches the client as it came, the key not blamed', async (status) => {
    f.upstream.answer((socket, request) => socket.end(head(`${status} Moved`, [['location', request.path], ['content-length', 0]])));
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(status);
    expect(answer.headers.get('location')).toBe('/v1/chat/completions');
    expect(f.upstream.requests).toHaveLength(1);
    await keyNotBlamed();
  });

  it('to another host reaches the client as it came; the gateway sends nothing there', async () => {
    f.upstream.answer((socket) => socket.end(head('307 Temporary Redirect', [['location', 'http://127.0.0.1:9/v1/chat/completions'], ['content-length', 0]])));
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(307);
    expect(answer.headers.get('location')).toBe('http://127.0.0.1:9/v1/chat/completions');
    expect(f.upstream.requests).toHaveLength(1);
  });

  it('a loop back through the gateway ends at the SDK\'s own redirect limit, the gateway still serving', async () => {
    // The location is relative: the SDK follows it to the gateway, which asks the upstream again.
    f.upstream.answer((socket, request) => socket.end(head('307 Temporary Redirect', [['location', request.path], ['content-length', 0]])));
    const client = new OpenAI({ apiKey: f.userKey, baseURL: f.gateway.baseUrl, maxRetries: 0, timeout: 20_000 });
    const error = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error).toBeInstanceOf(OpenAI.APIConnectionError);
    // fetch follows at most 20 redirects: the loop is bounded by the client, each hop one request.
    expect(f.upstream.requests.length).toBeGreaterThan(1);
    expect(f.upstream.requests.length).toBeLessThanOrEqual(21);
    await keyNotBlamed();
  });
});
