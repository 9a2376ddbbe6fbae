import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import { request } from 'undici';
import { WebSocket } from 'ws';
import { startFakeUpstream, sseEvents } from '../src/dev/fake-upstream.js';
import type { FakeUpstream } from '../src/dev/fake-upstream.js';
import { FAKE_SPEECH, FAKE_TEXT, fakeEmbedding, fakeFileContent } from '../src/dev/fake-openai-answers.js';

const KEY = 'sk-test-0123456789abcdefWXYZ';
const auth = { authorization: `Bearer ${KEY}` };

interface SseEvent {
  event?: string;
  data: string;
}

/** Splits a whole SSE body into events (the fake writes `\n` line endings only). */
function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block !== '')
    .map((block) => {
      const e: SseEvent = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) e.event = line.slice(7);
        else if (line.startsWith('data: ')) e.data = line.slice(6);
      }
      return e;
    });
}

async function post(up: FakeUpstream, path: string, body: unknown, headers: Record<string, string> = auth) {
  const res = await request(`${up.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const messages = [{ role: 'user', content: 'Say hello, please!' }]; // 18 characters -> 5 prompt tokens

describe('fake upstream default answers', () => {
  let up: FakeUpstream;
  beforeAll(async () => {
    up = await startFakeUpstream();
  });
  afterAll(() => up.close());
  beforeEach(() => up.reset());

  it('answers chat completions with JSON, usage and OpenAI headers, and records the request', async () => {
    const res = await post(up, '/v1/chat/completions?trace=1', { model: 'gpt-4o', messages });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-request-id']).toMatch(/^req_[0-9a-f]{24}$/);
    expect(res.headers['openai-processing-ms']).toMatch(/^\d+$/);
    expect(res.headers['x-ratelimit-remaining-requests']).toBe('9999');
    expect(res.headers['x-ratelimit-reset-tokens']).toBe('1ms');
    expect(JSON.parse(res.text)).toEqual({
      id: expect.stringMatching(/^chatcmpl-/),
      object: 'chat.completion',
      created: expect.any(Number),
      model: 'gpt-4o',
      system_fingerprint: 'fp_fake',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: FAKE_TEXT, refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: 'stop',
        },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 },
    });

    expect(up.requests).toHaveLength(1);
    const rec = up.requests[0]!;
    expect(rec).toMatchObject({
      method: 'POST',
      url: '/v1/chat/completions?trace=1',
      path: '/v1/chat/completions',
      query: 'trace=1',
      json: { model: 'gpt-4o', messages },
      clientAborted: false,
    });
    expect(rec.body.toString()).toBe(JSON.stringify({ model: 'gpt-4o', messages }));
    expect(rec.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(rec.rawHeaders).toContain('authorization');
    expect(rec.receivedAt).toBeGreaterThan(0);
    await rec.closed;
  });

  it('streams chat completions word by word, ending with [DONE]', async () => {
    const res = await post(up, '/v1/chat/completions', { model: 'gpt-4o-mini', messages, stream: true });
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['content-length']).toBeUndefined();
    const events = parseSse(res.text);
    expect(events.at(-1)).toEqual({ data: '[DONE]' });
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    const common = {
      id: chunks[0]!['id'],
      object: 'chat.completion.chunk',
      created: expect.any(Number),
      model: 'gpt-4o-mini',
      system_fingerprint: 'fp_fake',
    };
    const choice = (delta: object, finish_reason: string | null) => ({
      ...common,
      choices: [{ index: 0, delta, logprobs: null, finish_reason }],
    });
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: '', refusal: null }, null),
      choice({ content: 'Hello' }, null),
      choice({ content: ' from' }, null),
      choice({ content: ' the' }, null),
      choice({ content: ' fake' }, null),
      choice({ content: ' upstream.' }, null),
      choice({}, 'stop'),
    ]);
    expect(events.every((e) => e.event === undefined)).toBe(true);
  });

  it('adds the usage chunk and usage: null everywhere else with stream_options.include_usage', async () => {
    const res = await post(up, '/v1/chat/completions', {
      model: 'gpt-4o-mini',
      messages,
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = parseSse(res.text);
    expect(events.map((e) => e.data === '[DONE]')).toEqual([false, false, false, false, false, false, false, false, true]);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(chunks.slice(0, -1).map((c) => c['usage'])).toEqual(Array(7).fill(null));
    expect(chunks.map((c) => (c['choices'] as unknown[]).length)).toEqual([1, 1, 1, 1, 1, 1, 1, 0]);
    expect(chunks.at(-1)).toEqual({
      id: chunks[0]!['id'],
      object: 'chat.completion.chunk',
      created: expect.any(Number),
      model: 'gpt-4o-mini',
      system_fingerprint: 'fp_fake',
      choices: [],
      usage: { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 },
    });
  });

  it('answers legacy completions, streamed with usage', async () => {
    const res = await post(up, '/v1/completions', {
      model: 'gpt-3.5-turbo-instruct',
      prompt: 'abcdefgh',
      stream: true,
      stream_options: { include_usage: true },
    });
    const events = parseSse(res.text);
    expect(events.at(-1)).toEqual({ data: '[DONE]' });
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(chunks.map((c) => c['object'])).toEqual(Array(7).fill('text_completion'));
    const texts = chunks.slice(0, -1).map((c) => (c['choices'] as Array<{ text: string }>)[0]!.text);
    expect(texts.join('')).toBe(FAKE_TEXT);
    expect(chunks.at(-1)!['usage']).toEqual({ prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });
  });

  it('streams responses as named events with sequence numbers, ending with response.completed', async () => {
    const res = await post(up, '/v1/responses', { model: 'gpt-4.1', input: 'abcd', stream: true });
    expect(res.headers['content-type']).toBe('text/event-stream');
    const events = parseSse(res.text);
    expect(events.map((e) => e.event)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const data = events.map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(data.map((d) => d['sequence_number'])).toEqual(data.map((_, i) => i));
    expect(data.map((d) => d['type'])).toEqual(events.map((e) => e.event));
    expect((data[0]!['response'] as Record<string, unknown>)['usage']).toBeNull();
    expect(data.at(-1)).toEqual({
      type: 'response.completed',
      sequence_number: 12,
      response: {
        id: expect.stringMatching(/^resp_/),
        object: 'response',
        created_at: expect.any(Number),
        model: 'gpt-4.1',
        error: null,
        status: 'completed',
        output: [
          {
            id: expect.stringMatching(/^msg_/),
            type: 'message',
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', text: FAKE_TEXT, annotations: [] }],
          },
        ],
        usage: {
          input_tokens: 1,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: 5,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: 6,
        },
      },
    });
    expect(res.text).not.toContain('[DONE]');
  });

  it('answers embeddings as floats or as base64 of little-endian float32', async () => {
    const floats = JSON.parse((await post(up, '/v1/embeddings', { model: 'text-embedding-3-small', input: ['ab', 'cd'] })).text);
    expect(floats).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: fakeEmbedding(0) },
        { object: 'embedding', index: 1, embedding: fakeEmbedding(1) },
      ],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 1, total_tokens: 1 },
    });
    const b64 = JSON.parse(
      (await post(up, '/v1/embeddings', { model: 'text-embedding-3-small', input: 'hello', encoding_format: 'base64' })).text,
    ) as { data: Array<{ embedding: string }> };
    const bytes = Buffer.from(b64.data[0]!.embedding, 'base64');
    expect(bytes.length).toBe(32);
    const decoded = Array.from({ length: 8 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toEqual(fakeEmbedding(0));
  });

  it('sends speech as raw audio bytes in chunks', async () => {
    const res = await request(`${up.url}/v1/audio/speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tts-1', input: 'hi', voice: 'alloy' }),
    });
    expect(res.headers['content-type']).toBe('audio/mpeg');
    expect(res.headers['transfer-encoding']).toBe('chunked');
    const bytes = Buffer.from(await res.body.arrayBuffer());
    expect(bytes.length).toBe(4096);
    expect(bytes.equals(FAKE_SPEECH)).toBe(true);
  });

  it('answers multipart uploads, file downloads, transcriptions, models and anything else', async () => {
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob(['{"a":1}\n']), 'input.jsonl');
    const uploaded = await fetch(`${up.baseUrl}/files`, { method: 'POST', body: form });
    const file = (await uploaded.json()) as Record<string, unknown>;
    const sent = up.requests[0]!.body.length;
    expect(sent).toBeGreaterThan(0);
    expect(file).toEqual({
      id: expect.stringMatching(/^file-[0-9a-f]+$/),
      object: 'file',
      bytes: sent,
      created_at: expect.any(Number),
      filename: 'input.jsonl',
      purpose: 'batch',
      status: 'processed',
    });

    const content = await fetch(`${up.baseUrl}/files/file-abc/content`);
    expect(content.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await content.arrayBuffer()).equals(fakeFileContent('file-abc'))).toBe(true);

    const audio = new FormData();
    audio.append('model', 'whisper-1');
    audio.append('file', new Blob([Buffer.alloc(2000, 1)]), 'a.mp3');
    const transcript = await fetch(`${up.baseUrl}/audio/transcriptions`, { method: 'POST', body: audio });
    expect(await transcript.json()).toMatchObject({ text: FAKE_TEXT, usage: { type: 'duration', seconds: 1 } });

    const models = (await (await fetch(`${up.baseUrl}/models`)).json()) as { object: string; data: Array<{ id: string }> };
    expect(models.object).toBe('list');
    expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini');

    // An operation of the API the fake does not imitate: the request told back.
    const echo = await fetch(`${up.baseUrl}/batches/batch_1?limit=2`);
    expect(echo.status).toBe(200);
    expect(await echo.json()).toEqual({
      object: 'fake.echo',
      method: 'GET',
      path: '/v1/batches/batch_1',
      query: 'limit=2',
      bodyBytes: 0,
    });
  });

  it('answers a route OpenAI does not have with OpenAI\'s own 404, never a 200', async () => {
    for (const [method, path] of [
      ['DELETE', '/v1/batches/batch_1'], // a real path, a method it does not take
      ['POST', '/v1/edits'], // a retired route
      ['GET', '/v1/nope/x'],
      ['GET', '/'],
      ['POST', '/v2/chat/completions'],
    ] as const) {
      const res = await fetch(`${up.url}${path}?q=1`, { method, ...(method === 'POST' ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}) });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.json()).toEqual({ error: { message: `Invalid URL (${method} ${path})`, type: 'invalid_request_error', param: null, code: null } });
    }
  });
});

describe('fake upstream scripting', () => {
  let up: FakeUpstream;
  beforeAll(async () => {
    up = await startFakeUpstream();
  });
  afterAll(() => up.close());
  beforeEach(() => up.reset());

  it('tries handlers newest first, falls through on undefined, and keeps handler headers', async () => {
    const seen: string[] = [];
    up.handle(() => ({ status: 418, body: 'older' }));
    up.handle((req) => (req.path === '/v1/a' ? { status: 201, body: { a: true }, headers: { 'X-Request-Id': 'req_mine' } } : undefined));
    up.handle((req) => {
      seen.push(req.path);
      return undefined;
    });

    const a = await request(`${up.url}/v1/a`);
    expect(a.statusCode).toBe(201);
    expect(a.headers['x-request-id']).toBe('req_mine');
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.headers['x-ratelimit-limit-requests']).toBeUndefined(); // only default answers carry them
    expect(await a.body.text()).toBe('{"a":true}');

    const b = await request(`${up.url}/v1/b`);
    expect(b.statusCode).toBe(418);
    expect(b.headers['x-request-id']).toMatch(/^req_/);
    expect(b.headers['openai-processing-ms']).toMatch(/^\d+$/);
    expect(await b.body.text()).toBe('older');
    expect(seen).toEqual(['/v1/a', '/v1/b']);
  });

  it('writes scripted chunks one by one with the interval, after headersDelayMs', async () => {
    up.handle(async () => ({
      headers: { 'content-type': 'text/event-stream' },
      chunks: sseEvents([{ n: 1 }, { n: 2 }, { n: 3 }], { done: true, event: () => 'tick' }),
      chunkIntervalMs: 60,
      headersDelayMs: 40,
    }));
    const t0 = performance.now();
    const res = await request(`${up.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    const tHeaders = performance.now() - t0;
    expect(tHeaders).toBeGreaterThanOrEqual(35);
    const arrivals: Array<[number, string]> = [];
    for await (const chunk of res.body) arrivals.push([performance.now() - t0, (chunk as Buffer).toString()]);
    expect(arrivals.map(([, c]) => c).join('')).toBe(
      'event: tick\ndata: {"n":1}\n\nevent: tick\ndata: {"n":2}\n\nevent: tick\ndata: {"n":3}\n\ndata: [DONE]\n\n',
    );
    // Four writes 60 ms apart arrive as four reads, the last at least 3 intervals in.
    expect(arrivals).toHaveLength(4);
    expect(arrivals[3]![0] - arrivals[0]![0]).toBeGreaterThanOrEqual(170);
  });

  it('cuts the connection after destroyAfterChunks chunks: the client sees the first bytes, then an error', async () => {
    up.handle(() => ({ chunks: ['data: one\n\n', 'data: two\n\n', 'data: three\n\n'], destroyAfterChunks: 2 }));
    const res = await request(`${up.url}/v1/x`);
    expect(res.statusCode).toBe(200);
    const received: string[] = [];
    const read = (async () => {
      for await (const chunk of res.body) received.push((chunk as Buffer).toString());
    })();
    await expect(read).rejects.toThrow();
    expect(received.join('')).toBe('data: one\n\ndata: two\n\n');
    await up.requests[0]!.closed;
    expect(up.requests[0]!.clientAborted).toBe(false); // the fake cut it, not the client
  });

  it('can cut a JSON body short, reset before headers, and delay headers', async () => {
    up.handle((req) => (req.path === '/v1/short' ? { body: { long: 'x'.repeat(100) }, destroyAfterChunks: 0 } : undefined));
    up.handle((req) => (req.path === '/v1/reset' ? { destroyBeforeHeaders: true } : undefined));

    const short = await request(`${up.url}/v1/short`);
    expect(short.headers['content-length']).toBe('111');
    await expect(short.body.text()).rejects.toThrow();
    await expect(request(`${up.url}/v1/reset`)).rejects.toMatchObject({ code: expect.stringMatching(/ECONNRESET|UND_ERR_SOCKET/) });
  });

  it('sees the client abort while the answer is pending', async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    up.handle(() => {
      arrived();
      return { neverRespond: true };
    });
    const controller = new AbortController();
    const pending = request(`${up.url}/v1/hang`, { method: 'POST', body: 'abc', signal: controller.signal });
    await arrival;
    controller.abort();
    await expect(pending).rejects.toThrow();
    await up.requests[0]!.closed;
    expect(up.requests[0]!.clientAborted).toBe(true);
    expect(up.requests[0]!.body.toString()).toBe('abc');
  });

  it('answers a handler that throws with a 500', async () => {
    up.handle(() => {
      throw new Error('boom');
    });
    const res = await request(`${up.url}/v1/x`);
    expect(res.statusCode).toBe(500);
    expect(await res.body.json()).toEqual({
      error: { message: 'fake upstream handler failed: boom', type: 'server_error', param: null, code: null },
    });
  });
});

describe('fake upstream keys', () => {
  let up: FakeUpstream;
  beforeAll(async () => {
    up = await startFakeUpstream({ keys: [KEY, 'sk-other-key-0000'] });
  });
  afterAll(() => up.close());

  it('answers 401 quoting part of a wrong key, like OpenAI', async () => {
    const res = await post(up, '/v1/chat/completions', { messages }, { authorization: 'Bearer sk-wrong-key-1234567890abcd' });
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toMatch(/^req_/);
    expect(JSON.parse(res.text)).toEqual({
      error: {
        message: `Incorrect API key provided: sk-${'*'.repeat(20)}abcd. You can find your API key at https://platform.openai.com/account/api-keys.`,
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
    const missing = await post(up, '/v1/models', {}, {});
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.text)).toMatchObject({ error: { code: 'invalid_api_key' } });

    expect((await post(up, '/v1/embeddings', { input: 'x' }, { authorization: 'Bearer sk-other-key-0000' })).status).toBe(200);
  });

  it('lets handlers answer before the key check', async () => {
    up.handle(() => ({ body: 'scripted' }));
    const res = await post(up, '/v1/chat/completions', {}, { authorization: 'Bearer nope' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('scripted');
    up.reset();
  });
});

describe('fake upstream websockets', () => {
  let up: FakeUpstream;
  beforeAll(async () => {
    up = await startFakeUpstream({ keys: [KEY] });
  });
  afterAll(() => up.close());

  function open(path: string, protocols: string[], headers: Record<string, string>): Promise<WebSocket> {
    const ws = new WebSocket(`ws://127.0.0.1:${up.port}${path}`, protocols, { headers });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  }

  function nextMessage(ws: WebSocket): Promise<unknown> {
    return new Promise((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)))));
  }

  it('accepts realtime, chooses the first subprotocol, greets and echoes', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${up.port}/v1/realtime?model=gpt-realtime`, ['realtime', 'openai-beta.realtime-v1'], {
      headers: auth,
    });
    const greeting = nextMessage(ws);
    await new Promise((resolve) => ws.once('open', resolve));
    expect(ws.protocol).toBe('realtime');
    expect(await greeting).toEqual({ type: 'session.created', session: { model: 'gpt-realtime' } });

    const echoed = nextMessage(ws);
    ws.send('{"type":"session.update"}');
    expect(await echoed).toEqual({ type: 'echo', data: '{"type":"session.update"}' });
    ws.close();

    expect(up.wsConnections).toEqual([
      { url: '/v1/realtime?model=gpt-realtime', headers: expect.objectContaining(auth), protocol: 'realtime' },
    ]);
  });

  it('accepts /v1/responses without subprotocol and the browser key subprotocol', async () => {
    const ws = await open('/v1/responses', [], auth);
    expect(ws.protocol).toBe('');
    const echoed = nextMessage(ws);
    ws.send('hi');
    expect(await echoed).toEqual({ type: 'echo', data: 'hi' });
    ws.close();

    const browser = await open('/v1/realtime', ['realtime', `openai-insecure-api-key.${KEY}`], {});
    expect(browser.protocol).toBe('realtime');
    browser.close();
  });

  it('rejects a bad key with 401 and other paths with 404', async () => {
    const status = (path: string, headers: Record<string, string>) =>
      new Promise<number | undefined>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${up.port}${path}`, { headers });
        ws.once('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode);
        });
        ws.once('open', () => reject(new Error('opened')));
      });
    expect(await status('/v1/realtime', { authorization: 'Bearer bad' })).toBe(401);
    expect(await status('/v1/other', auth)).toBe(404);
  });
});

describe('fake upstream lifecycle', () => {
  it('closes fast with a neverRespond request and an open websocket pending', async () => {
    const up = await startFakeUpstream();
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    up.handle(() => {
      arrived();
      return { neverRespond: true };
    });
    const pending = request(`${up.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    pending.catch(() => undefined);
    await arrival;
    const ws = new WebSocket(`ws://127.0.0.1:${up.port}/v1/realtime`);
    await new Promise((resolve) => ws.once('open', resolve));
    const wsClosed = new Promise((resolve) => ws.once('close', resolve));

    const t0 = performance.now();
    await up.close();
    expect(performance.now() - t0).toBeLessThan(500);
    await expect(pending).rejects.toThrow();
    await wsClosed;
    expect(up.requests[0]!.clientAborted).toBe(true);
  });

  it('keeps nothing with record: false but still answers from the body', async () => {
    const up = await startFakeUpstream({ record: false });
    try {
      const res = await post(up, '/v1/chat/completions', { messages, stream: true });
      expect(parseSse(res.text)).toHaveLength(8);
      const big = await request(`${up.url}/v1/files`, { method: 'POST', body: Buffer.alloc(3 * 1024 * 1024, 0x61) });
      expect(((await big.body.json()) as { bytes: number }).bytes).toBe(3 * 1024 * 1024);
      expect(up.requests).toEqual([]);
    } finally {
      await up.close();
    }
  });

  it('builds SSE chunks with sseEvents', () => {
    expect(sseEvents([{ type: 'a' }, 'raw'], { done: true, event: (e) => (e as { type?: string }).type })).toEqual([
      'event: a\ndata: {"type":"a"}\n\n',
      'data: raw\n\n',
      'data: [DONE]\n\n',
    ]);
  });
});
