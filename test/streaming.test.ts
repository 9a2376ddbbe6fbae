// SSE through the gateway: chunk by chunk as the upstream sends, byte for byte, aborts passed on
// both ways, and a broken-off upstream turned into an error event (docs/reliability.md, cases 19-23).
import OpenAI, { APIError } from 'openai';
import { Agent, type Dispatcher, request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sseEvents } from '../src/dev/fake-upstream.js';
import { type RelayFixture, startRelay } from './helpers/relay-fixture.js';

const POOL_KEY = 'sk-pool-streaming-1';
const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };
const INTERRUPTED = {
  error: {
    message: 'The upstream stream broke off before it was complete.',
    type: 'server_error',
    param: null,
    code: 'upstream_stream_interrupted',
  },
};

let relay: RelayFixture;

beforeAll(async () => {
  relay = await startRelay(POOL_KEY);
});
afterAll(() => relay.close());
beforeEach(() => relay.fake.reset());

function post(body: object, headers: Record<string, string> = {}, extra: { signal?: AbortSignal; dispatcher?: Dispatcher } = {}) {
  return request(`${relay.gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${relay.userKey}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...extra,
  });
}

const streamed = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true };

function chatChunks(words: string[]): string[] {
  const chunk = (content: string) => ({ id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] });
  return sseEvents(words.map(chunk), { done: true });
}

/** The `data` of each event of a whole SSE text, as the HTML spec's parser dispatches them. */
function sseData(text: string): string[] {
  const out: string[] = [];
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) out.push(data.join('\n'));
      data = [];
    } else if (line.startsWith('data:')) {
      data.push(line.slice(line[5] === ' ' ? 6 : 5));
    }
  }
  return out;
}

describe('events reach the client as the upstream sends them', () => {
  it('delivers the first event long before the upstream has sent the last', async () => {
    const events = Array.from({ length: 10 }, (_, n) => `data: {"n":${n}}\n\n`);
    const sent = new Set<number>();
    // The fake reads chunks[i] just before it writes chunk i: those reads are its send schedule.
    const chunks = new Proxy(events, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) sent.add(Number(prop));
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    relay.fake.handle(() => ({ headers: SSE, chunks, chunkIntervalMs: 100 }));

    const res = await post(streamed);
    let text = '';
    let sentAtFirstEvent: number | undefined;
    for await (const chunk of res.body) {
      text += String(chunk);
      if (sentAtFirstEvent === undefined && text.includes('\n\n')) sentAtFirstEvent = sent.size;
    }
    expect(sentAtFirstEvent).toBeLessThan(10);
    expect(text).toBe(events.join(''));
  });
  it('case 23: each event reaches the client before the upstream sends the next one', async () => {
    const events = Array.from({ length: 5 }, (_, n) => `data: {"n":${n}}\n\n`);
    const sent = new Set<number>();
    const chunks = new Proxy(events, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) sent.add(Number(prop));
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    // A second between events: an event held back until the next (or buffered for 900 ms) fails.
    relay.fake.handle(() => ({ headers: SSE, chunks, chunkIntervalMs: 1000 }));
    const res = await post(streamed);
    let text = '';
    const sentWhenReceived: number[] = [];
    for await (const chunk of res.body) {
      text += String(chunk);
      const whole = text.split('\n\n').length - 1;
      while (sentWhenReceived.length < whole) sentWhenReceived.push(sent.size);
    }
    expect(text).toBe(events.join(''));
    // Event n arrived while the upstream had sent n + 1 events, not more.
    expect(sentWhenReceived).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('a client that goes away mid-stream', () => {
  it('aborts the upstream request', async () => {
    const events = Array.from({ length: 600 }, (_, n) => `data: {"n":${n}}\n\n`);
    relay.fake.handle(() => ({ headers: SSE, chunks: events, chunkIntervalMs: 50 }));
    const res = await post(streamed);
    for await (const chunk of res.body) {
      expect(String(chunk)).toMatch(/^data: \{"n":0\}/);
      break; // leaving the loop destroys the body and the connection
    }
    const left = Date.now();
    const upstream = relay.fake.requests[0]!;
    await upstream.closed;
    expect(upstream.clientAborted).toBe(true);
    // Case 19: "within 500 ms", with a margin for a busy machine; the stream would run 30 s more.
    expect(Date.now() - left).toBeLessThan(5000);
  });
});

describe('awkwardly split events', () => {
  it('arrive byte for byte: split lines and characters, CRLF, comments, error events, a 1 MB line', async () => {
    const head = Buffer.from(
      ': ping\r\n\r\n' +
        'event: message\r\ndata: {"text":"héllo ✓ 😀 日本"}\r\n\r\n' +
        'event: error\ndata: {"error":{"message":"overloaded","type":"server_error"}}\n\n' +
        'data: not json {\r\r',
    );
    const big = Buffer.from(`data: {"big":"${'é'.repeat(512 * 1024)}"}\n\n`);
    const tail = Buffer.from(': ping\n\ndata: {"last":"ü"}\n\ndata: [DONE]\n\n');
    // Every byte of the head and tail alone: each multibyte character and each CRLF is cut.
    const bytes = (buf: Buffer) => Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1));
    const chunks = [...bytes(head), big.subarray(0, 1001), big.subarray(1001, 700_001), big.subarray(700_001), ...bytes(tail)];
    relay.fake.handle(() => ({ headers: SSE, chunks }));

    const res = await post(streamed);
    const received = Buffer.from(await res.body.arrayBuffer());
    expect(res.statusCode).toBe(200);
    expect(received.length).toBe(head.length + big.length + tail.length);
    expect(received.equals(Buffer.concat([head, big, tail]))).toBe(true);
  });
});

describe('an upstream that dies mid-stream', () => {
  it('ends the stream with an upstream_stream_interrupted event after the events so far', async () => {
    const chunks = chatChunks(['Hel', 'lo', ' there', '!']);
    relay.fake.handle(() => ({ headers: SSE, chunks, destroyAfterChunks: 3 }));
    const res = await post(streamed);
    const text = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(text).toBe(`${chunks.slice(0, 3).join('')}data: ${JSON.stringify(INTERRUPTED)}\n\n`);
    expect(text).not.toContain('[DONE]');
  });

  it('sends the error as an event of its own when the cut falls inside an event', async () => {
    const chunks = ['data: {"n":0}\n\n', 'data: {"n":1', '}\n\ndata: [DONE]\n\n'];
    relay.fake.handle(() => ({ headers: SSE, chunks, destroyAfterChunks: 2 }));
    const text = await (await post(streamed)).body.text();
    expect(text.startsWith(chunks[0]! + chunks[1]!)).toBe(true);
    expect(sseData(text).at(-1)).toBe(JSON.stringify(INTERRUPTED));
    expect(text).not.toContain('[DONE]');
  });

  it('makes the official SDK throw instead of returning truncated text', async () => {
    relay.fake.handle(() => ({ headers: SSE, chunks: chatChunks(['Hel', 'lo', ' there', '!']), destroyAfterChunks: 2 }));
    const client = new OpenAI({ baseURL: relay.gateway.baseUrl, apiKey: relay.userKey, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true });
    let text = '';
    const failure = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().then(() => undefined, (err: unknown) => err);
    expect(text).toBe('Hello');
    expect(failure).toBeInstanceOf(APIError);
    expect((failure as APIError).error).toEqual(INTERRUPTED.error);
  });
});

describe('SSE response headers', () => {
  const expected = (events: string) => ({
    status: 200,
    type: 'text/event-stream; charset=utf-8',
    cacheControl: 'no-cache',
    accel: 'no',
    length: undefined,
    encoding: undefined,
    body: events,
  });

  async function fetchSse() {
    const res = await post(streamed, { 'accept-encoding': 'gzip, br' });
    return {
      status: res.statusCode,
      type: res.headers['content-type'],
      cacheControl: res.headers['cache-control'],
      accel: res.headers['x-accel-buffering'],
      length: res.headers['content-length'],
      encoding: res.headers['content-encoding'],
      body: await res.body.text(),
    };
  }

  it('are set, uncompressed, for a chunked upstream stream even when the client asks for gzip', async () => {
    const chunks = chatChunks(['a', 'b']);
    relay.fake.handle(() => ({ headers: SSE, chunks }));
    expect(await fetchSse()).toEqual(expected(chunks.join('')));
    expect(relay.fake.requests[0]?.headers['accept-encoding'] ?? 'identity').toBe('identity');
  });

  it('drop the content-length of an upstream that sent the stream whole', async () => {
    const events = chatChunks(['a', 'b']).join('');
    relay.fake.handle(() => ({ headers: { ...SSE, 'cache-control': 'no-store' }, body: events }));
    expect(await fetchSse()).toEqual(expected(events));
  });
});

describe('a JSON answer cut by the upstream', () => {
  const whole = Buffer.from(JSON.stringify({ id: 'chatcmpl-cut', object: 'chat.completion', choices: [], pad: 'x'.repeat(4000) }));
  const halves = [whole.subarray(0, 2000), whole.subarray(2000)];

  async function outcome(): Promise<string> {
    return post({ model: 'gpt-4o-mini', messages: [] })
      .then((res) => res.body.text())
      .then(
        () => 'complete',
        () => 'failed',
      );
  }

  it('fails the client request when a content-length was declared', async () => {
    relay.fake.handle(() => ({
      headers: { 'content-type': 'application/json', 'content-length': String(whole.length) },
      chunks: halves,
      destroyAfterChunks: 1,
    }));
    expect(await outcome()).toBe('failed');
  });

  it('fails the client request when the answer was chunked', async () => {
    relay.fake.handle(() => ({ headers: { 'content-type': 'application/json' }, chunks: halves, destroyAfterChunks: 1 }));
    expect(await outcome()).toBe('failed');
  });
});

describe('a client that goes away before the first byte', () => {
  it('aborts the upstream request', async () => {
    let arrived!: () => void;
    const upstreamHasIt = new Promise<void>((resolve) => (arrived = resolve));
    relay.fake.handle(() => {
      arrived();
      return { headers: SSE, headersDelayMs: 60_000, chunks: chatChunks(['late']) };
    });
    const controller = new AbortController();
    // Its own agent: after an abort undici opens a spare connection that sends nothing, and such a
    // connection would hold up the gateway's close() until Node's headers timeout.
    const agent = new Agent();
    const pending = post(streamed, {}, { signal: controller.signal, dispatcher: agent }).then(
      () => 'answered',
      () => 'aborted',
    );
    try {
      await upstreamHasIt;
      controller.abort();
      expect(await pending).toBe('aborted');
      const upstream = relay.fake.requests[0]!;
      await upstream.closed;
      expect(upstream.clientAborted).toBe(true);
    } finally {
      await agent.destroy();
    }
  });
});
