// A client that hangs up cannot make its request free. Once the whole request has reached the
// upstream, OpenAI bills it whether or not anyone reads the answer: a call that was not streamed
// is generated to its end, so it is charged its worst case (prompt plus its output cap), marked
// estimated; a stream stops when the gateway hangs up in turn, so it is charged its prompt and
// what streamed, marked estimated. A request cut off before the upstream had all of it is
// charged no tokens. Either way the rpm slot its admission took is kept, and it counts as a
// request of the day: only the upstream's own failures are refunded.
import { createServer } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, sseEvents } from '../src/dev/fake-upstream.js';
import { countText } from '../src/quota/estimate.js';
import { readRequestBody } from '../src/relay/body.js';
import { estimateAt } from './helpers/estimate.js';
import type { TestGateway } from './helpers/gateway.js';
import { QUOTA_SETTINGS, latch, startFake, startQuotaGateway, until, usageOf, userWithKey } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const SSE = { 'content-type': 'text/event-stream' };
const JSON_TYPE = { 'content-type': 'application/json' };
const CHAT = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell me a story about a lighthouse.' }], max_tokens: 50 };
const STREAMED = { ...CHAT, stream: true };
const estimate = estimateAt('/chat/completions', CHAT, QUOTA_SETTINGS.defaultMaxOutputTokens);
const PROMPT = estimate.promptTokens;
const WORST = PROMPT + estimate.maxOutputTokens;
// gpt-4o-mini: $0.15 input, $0.60 output per million tokens.
const WORST_MICROS = Math.ceil((PROMPT * 150_000 + estimate.maxOutputTokens * 600_000) / 1_000_000);
// rpm 2 refills one request every 30 s: a slot taken stays visibly taken for the whole test.
const LIMITS = { rpm: 2, tokensPerDay: 100_000, usdPerDay: 10 };

const BOUNDARY = 'kr-boundary';
const FORM = Buffer.from(
  `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-transcribe\r\n` +
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n--${BOUNDARY}--\r\n`,
);

function chunks(words: string[]): string[] {
  const chunk = (content: string) => ({ id: 'chatcmpl-a', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
  return sseEvents(words.map(chunk), { done: true });
}

describe.each([['memory'], ['redis']])('%s store: a client that goes away', (kind) => {
  let fake: FakeUpstream;
  let redis: RedisServer | undefined;
  let gateway: TestGateway;
  let users = 0;

  beforeAll(async () => {
    fake = await startFake();
    redis = kind === 'redis' ? await startRedis() : undefined;
    gateway = await startQuotaGateway(fake, redis?.url);
  });
  afterAll(async () => {
    await gateway.close();
    await fake.close();
    await redis?.stop();
  });
  beforeEach(() => fake.reset());

  async function newUser(): Promise<{ id: string; key: string }> {
    const id = `aborts-${kind}-${++users}`;
    return { id, key: await userWithKey(gateway, id, LIMITS) };
  }

  /** The user's ledger once nothing is in flight any more. */
  async function settled(id: string): Promise<any> {
    await until(async () => (await usageOf(gateway, id)).concurrent.inFlight === 0, 'the request to settle');
    return usageOf(gateway, id);
  }

  /** The request log line of the user's one request. */
  async function logged(id: string): Promise<Record<string, any>> {
    await until(() => gateway.logs.some((l) => l.msg === 'request' && l.userId === id), `the request line of ${id}`);
    return gateway.logs.find((l) => l.msg === 'request' && l.userId === id) as Record<string, any>;
  }

  /**
   * Sends a chat request and hangs up: once `arrived` resolves when given (no answer yet), else as
   * soon as the answer's headers are in. Resolves when the upstream has seen the client go.
   */
  async function abandon(key: string, body: unknown, arrived?: Promise<void>): Promise<void> {
    const controller = new AbortController();
    const pending = request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: controller.signal,
    }).then(
      (res) => {
        res.body.destroy();
        return 'headers';
      },
      () => 'aborted',
    );
    if (arrived) {
      await arrived;
      controller.abort();
    }
    expect(await pending).toBe(arrived ? 'aborted' : 'headers');
    await fake.requests[0]!.closed;
    expect(fake.requests[0]!.clientAborted).toBe(true);
  }

  /** Starts a transcription whose upload is written as the test says; `abort` hangs up. */
  function transcription(key: string, upload: PassThrough, length: number): { abort(): Promise<unknown> } {
    const controller = new AbortController();
    const pending = request(`${gateway.baseUrl}/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(length) },
      body: upload,
      signal: controller.signal,
    }).catch(() => 'aborted');
    return {
      abort() {
        controller.abort();
        return pending;
      },
    };
  }

  it('while its JSON body is still being sent: never admitted, so nothing is charged and no rpm slot is taken', async () => {
    const { id, key } = await newUser();
    const json = JSON.stringify(CHAT);
    const before = gateway.logs.length;
    const socket = connect(gateway.port, '127.0.0.1');
    socket.on('error', () => undefined);
    // The gateway says 100 Continue once it has read the request's head.
    const head = new Promise((resolve) => socket.once('data', resolve));
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${json.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    expect(String(await head)).toContain('100 Continue');
    socket.write(json.slice(0, 20), () => socket.destroy());
    // Its line (without the user when it left while its key was still being looked up).
    const line = () => gateway.logs.slice(before).find((l) => l.msg === 'request');
    await until(() => line() !== undefined, 'the request line');
    expect(line()).toMatchObject({ route: '/v1/chat/completions', outcome: 'client_aborted', status: 499 });
    const usage = await usageOf(gateway, id);
    expect(usage.day).toMatchObject({ requests: 0, tokens: 0, reservedTokens: 0 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm);
    expect(fake.requests).toHaveLength(0);
  });

  it('while its upload is still being sent: no tokens, but the request and its rpm slot count', async () => {
    const { id, key } = await newUser();
    const upload = new PassThrough();
    const call = transcription(key, upload, 100_000);
    upload.write(FORM.subarray(0, FORM.length - 10));
    // The upstream has the request's head and the first bytes of the file, never the rest.
    await until(() => fake.requests.length === 1, 'the upload to reach the upstream');
    expect(await call.abort()).toBe('aborted');
    await fake.requests[0]!.closed;
    expect(fake.requests[0]!.receivedAt).toBe(0);

    const usage = await settled(id);
    expect(usage.day).toMatchObject({ requests: 1, tokens: 0, usdMicros: 0, reservedTokens: 0, estimatedRequests: 0 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
    expect(await logged(id)).toMatchObject({ outcome: 'client_aborted', status: 499 });
  });

  it('after its whole upload reached the upstream, before any answer: charged the worst case of its file, estimated', async () => {
    const { id, key } = await newUser();
    const arrived = latch();
    fake.handle(() => {
      arrived.open();
      return { neverRespond: true };
    });
    const upload = new PassThrough();
    const call = transcription(key, upload, FORM.length);
    upload.end(FORM);
    await arrived.wait;
    expect(await call.abort()).toBe('aborted');
    await fake.requests[0]!.closed;
    const usage = await settled(id);
    // gpt-4o-transcribe: 20 audio tokens a second of the longest the form can play (750 bytes a
    // second), and its 2,000 output tokens (docs/prices.md).
    const worst = Math.ceil(FORM.length / 750) * 20 + 2000;
    expect(usage.day).toMatchObject({ requests: 1, tokens: worst, reservedTokens: 0, estimatedRequests: 1 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
  });

  it('after a call that is not streamed reached the upstream, before any answer: charged its worst case, estimated', async () => {
    const { id, key } = await newUser();
    const arrived = latch();
    fake.handle(() => {
      arrived.open();
      return { neverRespond: true };
    });
    await abandon(key, CHAT, arrived.wait);
    const usage = await settled(id);
    expect(usage.day).toMatchObject({ requests: 1, tokens: WORST, usdMicros: WORST_MICROS, reservedTokens: 0, estimatedRequests: 1 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
    expect(await logged(id)).toMatchObject({
      outcome: 'client_aborted',
      status: 499,
      tokens: { input: PROMPT, output: estimate.maxOutputTokens, estimated: true },
      costMicros: WORST_MICROS,
    });
  });

  it('after a streamed call reached the upstream, before any answer: charged its prompt, estimated', async () => {
    const { id, key } = await newUser();
    const arrived = latch();
    fake.handle(() => {
      arrived.open();
      return { neverRespond: true };
    });
    await abandon(key, STREAMED, arrived.wait);
    const usage = await settled(id);
    expect(usage.day).toMatchObject({ requests: 1, tokens: PROMPT, reservedTokens: 0, estimatedRequests: 1 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
  });

  it('after the headers of an answer that is not streamed, before its usage: charged its worst case, estimated', async () => {
    const { id, key } = await newUser();
    fake.handle(() => {
      // The headers and the start of the body; the rest (with the usage) would come much later.
      return { headers: JSON_TYPE, chunks: ['{"id":"chatcmpl-a","object":"chat.completion",', '"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'], chunkIntervalMs: 60_000 };
    });
    await abandon(key, CHAT);
    const usage = await settled(id);
    expect(usage.day).toMatchObject({ requests: 1, tokens: WORST, reservedTokens: 0, estimatedRequests: 1 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
  });

  it('after the headers of a stream, before any event: charged its prompt, estimated', async () => {
    const { id, key } = await newUser();
    fake.handle(() => {
      // A comment first, as proxies and some upstreams send to get the headers out, then a long wait.
      return { headers: SSE, chunks: [': keep-alive\n\n', ...chunks(['late'])], chunkIntervalMs: 60_000 };
    });
    await abandon(key, STREAMED);
    const usage = await settled(id);
    expect(usage.day).toMatchObject({ requests: 1, tokens: PROMPT, reservedTokens: 0, estimatedRequests: 1 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
  });

  it('mid-stream: charged its prompt and what was streamed to it, estimated', async () => {
    const { id, key } = await newUser();
    // Two events, then a pause the client will not wait out.
    fake.handle(() => ({ headers: SSE, chunks: chunks(['Once', ' upon', ' a', ' time']), chunkIntervalMs: 60_000 }));
    const res = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(STREAMED),
    });
    for await (const chunk of res.body) {
      expect(String(chunk)).toContain('"Once"');
      break; // leaving the loop destroys the body and the connection
    }
    await fake.requests[0]!.closed;
    const usage = await settled(id);
    expect(usage.day).toMatchObject({ requests: 1, tokens: PROMPT + countText('Once'), reservedTokens: 0, estimatedRequests: 1 });
    expect(usage.minute.requests.remaining).toBe(LIMITS.rpm - 1);
  });
});

describe('a client that goes away while its key is being looked up', () => {
  it('fails the read of its body at once: its abort has been and gone, and no end will come', async () => {
    const limits = { jsonBodyBytes: 1024 * 1024, multipartBodyBytes: 1024 * 1024, otherBodyBytes: 1024 * 1024 };
    let socket: Socket | undefined;
    const read = new Promise<string>((resolve) => {
      const server = createServer((req) => {
        // The body is read only once the client has gone, as after a slow key lookup.
        req.once('close', () => {
          readRequestBody(req, limits).then(
            () => resolve('read'),
            (err: Error) => resolve(err.message),
          );
          server.close();
        });
        socket?.destroy();
      });
      server.listen(0, '127.0.0.1', () => {
        socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":');
      });
    });
    const hung = new Promise<string>((resolve) => setTimeout(() => resolve('hung'), 5000).unref());
    expect(await Promise.race([read, hung])).toBe('client aborted the request body');
  });
});
