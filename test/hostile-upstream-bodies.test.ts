// An upstream whose answer body is hostile: a gzip bomb although the gateway asked for identity
// (JSON, SSE, an error body read for the key's health), an SSE line of hundreds of MB with no
// newline, a body that trickles forever or stops after its headers, an error body of many MB, a
// list page that is huge, malformed or endless. The gateway holds a bounded amount (measured here
// with process.memoryUsage(), heap and buffers: it runs in this process), answers within its timeouts, and blames the
// pool key only for what is the key's (a 401 is; a body that does not decode is not).
import { type Socket } from 'node:net';
import { constants, deflateRawSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BODY_IDLE_MS, CHAT, type HostileFixture, call, startHostile } from './helpers/hostile-upstream-fixture.js';
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

const MB = 1024 * 1024;
const JSON_TYPE: [string, string] = ['content-type', 'application/json'];
const SSE_TYPE: [string, string] = ['content-type', 'text/event-stream'];
const CHUNKED: [string, string] = ['transfer-encoding', 'chunked'];
const GZIP: [string, string] = ['content-encoding', 'gzip'];

/** One HTTP chunk of `text`. */
const chunk = (text: string): string => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;

/** Writes `piece` as HTTP chunks `times` times, waiting for the socket to drain; ends if `end`. */
async function writeChunks(socket: Socket, piece: Buffer, times: number, end: boolean): Promise<void> {
  const frame = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
  for (let i = 0; i < times && !socket.destroyed; i++) {
    if (!socket.write(frame)) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
  }
  if (end && !socket.destroyed) socket.end('0\r\n\r\n');
}

// A gzip body that inflates to `times` × 16 MB of `byte`: one deflate segment of 16 MB, ended by
// a sync flush (byte-aligned, back-references inside itself), repeated. About 16 KB per 16 MB.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff]);
function bombSegment(byte: number): Buffer {
  return deflateRawSync(Buffer.alloc(16 * MB, byte), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
}

/** What the process holds: its JS heap and the buffers outside it (RSS stays high once grown). */
const held = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

/** Reads the answer's body up to `stopAfter` bytes, sampling the process's memory as it goes. */
async function readMeasured(res: Response, stopAfter = Number.POSITIVE_INFINITY): Promise<{ bytes: number; growth: number; text: string; cut: boolean }> {
  const before = held();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, held())), 20);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let bytes = 0;
  let tail = '';
  let cut = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.length;
      tail = (tail + Buffer.from(value).toString('latin1')).slice(-4096);
      if (bytes >= stopAfter) {
        await reader.cancel();
        break;
      }
    }
  } catch {
    cut = true;
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, held());
  return { bytes, growth: peak - before, text: tail, cut };
}

function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${f.gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${f.userKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function keyNotBlamed(): Promise<void> {
  expect(await f.key()).toMatchObject({ state: 'active', failures: failuresBefore, consecutiveFailures: 0 });
}

describe('a gzip bomb, although the gateway asked for identity', () => {
  it('as a JSON answer: decoded at the client\'s pace, the gateway\'s memory bounded', async () => {
    const segment = bombSegment(0x20);
    f.upstream.answer((socket) => {
      socket.write(head('200 OK', [JSON_TYPE, GZIP, CHUNKED]));
      socket.write(`${GZIP_HEADER.length.toString(16)}\r\n`);
      socket.write(GZIP_HEADER);
      socket.write('\r\n');
      void writeChunks(socket, segment, 64, false); // 1 GB inflated, never finished
    });
    const res = await post('/chat/completions', CHAT);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-encoding')).toBeNull();
    const read = await readMeasured(res, 512 * MB);
    expect(read.bytes).toBeGreaterThanOrEqual(512 * MB);
    expect(read.growth).toBeLessThan(256 * MB);
    // The client let go: the gateway let go of the upstream.
    await f.upstream.whenIdle();
  });

  it('as an SSE stream with no newline: the usage tap gives the line up, memory bounded', async () => {
    const segment = bombSegment(0x41); // "AAAA…": one endless line
    f.upstream.answer((socket) => {
      socket.write(head('200 OK', [SSE_TYPE, GZIP, CHUNKED]));
      const start = Buffer.concat([GZIP_HEADER, deflateRawSync('data: {"choices":[{"delta":{"content":"', { finishFlush: constants.Z_SYNC_FLUSH })]);
      socket.write(`${start.length.toString(16)}\r\n`);
      socket.write(start);
      socket.write('\r\n');
      void writeChunks(socket, segment, 32, false); // 512 MB inflated
    });
    const res = await post('/chat/completions', { ...CHAT, stream: true });
    expect(res.status).toBe(200);
    const read = await readMeasured(res, 384 * MB);
    expect(read.bytes).toBeGreaterThanOrEqual(384 * MB);
    expect(read.growth).toBeLessThan(256 * MB);
    await f.upstream.whenIdle();
  });

  it('as a 500 error body read for the key\'s health: the gateway reads 1 MB of it and stops', async () => {
    const segment = bombSegment(0x20);
    f.upstream.answer((socket) => {
      socket.write(head('500 Internal Server Error', [JSON_TYPE, GZIP, CHUNKED]));
      socket.write(`${GZIP_HEADER.length.toString(16)}\r\n`);
      socket.write(GZIP_HEADER);
      socket.write('\r\n');
      void writeChunks(socket, segment, 64, false);
    });
    const res = await post('/chat/completions', CHAT);
    expect(res.status).toBe(500);
    const read = await readMeasured(res);
    // Held to its bound, sent as far as that, then the connection cut: it cannot look whole.
    expect(read.bytes).toBeLessThanOrEqual(2 * MB);
    expect(read.cut).toBe(true);
    expect(read.growth).toBeLessThan(256 * MB);
    await f.upstream.whenIdle();
  });

  it('as a 401 error body: the key is disabled all the same (a 401 is the key\'s)', async () => {
    const segment = bombSegment(0x20);
    f.upstream.answer((socket) => {
      socket.write(head('401 Unauthorized', [JSON_TYPE, GZIP, CHUNKED]));
      socket.write(`${GZIP_HEADER.length.toString(16)}\r\n`);
      socket.write(GZIP_HEADER);
      socket.write('\r\n');
      void writeChunks(socket, segment, 64, false);
    });
    const res = await post('/chat/completions', CHAT);
    expect(res.status).toBe(401);
    await readMeasured(res);
    expect(await f.key()).toMatchObject({ state: 'disabled', reason: 'invalid_api_key' });
  });

  it.each([
    ['gzip', Buffer.concat([GZIP_HEADER, Buffer.from('this is not deflate data at all, not at all')])],
    ['br', Buffer.from('this is not brotli data at all, not at all')],
  ])('as a %s error body that does not decode: 502 upstream_invalid_response, the key not blamed', async (encoding, bad) => {
    f.upstream.answer((socket) => socket.end(Buffer.concat([Buffer.from(head('400 Bad Request', [JSON_TYPE, ['content-encoding', encoding], ['content-length', bad.length]])), bad])));
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(502);
    expect(answer.json.error).toMatchObject({ type: 'server_error', code: 'upstream_invalid_response' });
    await keyNotBlamed();
  });
});

describe('a compressed success body that does not decode', () => {
  const bad = Buffer.concat([GZIP_HEADER, Buffer.from('this is not deflate data at all, not at all')]);

  it('as JSON: the connection is cut, never a body that looks whole', async () => {
    f.upstream.answer((socket) => socket.end(Buffer.concat([Buffer.from(head('200 OK', [JSON_TYPE, GZIP, ['content-length', bad.length]])), bad])));
    // Cut before or after the headers went out, as the decoder's error comes.
    const cut = await post('/chat/completions', CHAT).then(
      async (res) => (await readMeasured(res)).cut,
      () => true,
    );
    expect(cut).toBe(true);
    await keyNotBlamed();
  });

  it('as SSE: the stream ends with the upstream_stream_interrupted error event', async () => {
    f.upstream.answer((socket) => socket.end(Buffer.concat([Buffer.from(head('200 OK', [SSE_TYPE, GZIP, ['content-length', bad.length]])), bad])));
    const read = await readMeasured(await post('/chat/completions', { ...CHAT, stream: true }));
    expect(read.text).toContain('"code":"upstream_stream_interrupted"');
    await keyNotBlamed();
  });
});

describe('an SSE line of hundreds of MB with no newline', () => {
  it.each([
    ['the usage the client asked for', { stream_options: { include_usage: true } }],
    ['usage the gateway asks for and takes out', {}],
  ])('with %s: relayed at the client\'s pace, memory bounded', async (_name, extra) => {
    const piece = Buffer.alloc(1 * MB, 0x61);
    f.upstream.answer((socket) => {
      socket.write(head('200 OK', [SSE_TYPE, CHUNKED]));
      const start = Buffer.from('data: {"choices":[{"delta":{"content":"');
      socket.write(`${start.length.toString(16)}\r\n`);
      socket.write(start);
      socket.write('\r\n');
      void writeChunks(socket, piece, 256, true); // 256 MB, then the stream ends
    });
    const res = await post('/chat/completions', { ...CHAT, stream: true, ...extra });
    expect(res.status).toBe(200);
    const read = await readMeasured(res);
    expect(read.bytes).toBeGreaterThanOrEqual(256 * MB);
    expect(read.growth).toBeLessThan(200 * MB);
    // The gateway is still serving.
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', 2]]) + '{}'));
    expect((await call(f, '/chat/completions', { body: CHAT })).status).toBe(200);
  });
});

describe('a body that never ends', () => {
  it('headers, then silence: a JSON answer is cut after timeouts.bodyIdleMs', async () => {
    f.upstream.answer((socket) => socket.write(head('200 OK', [JSON_TYPE, CHUNKED]) + chunk('{"id"')));
    const started = performance.now();
    const read = await readMeasured(await post('/chat/completions', CHAT));
    expect(read.cut).toBe(true);
    expect(performance.now() - started).toBeLessThan(BODY_IDLE_MS + 5_000);
  });

  it('headers, then silence: an SSE stream ends with an error event after timeouts.bodyIdleMs', async () => {
    const event = 'data: {"choices":[]}\n\n';
    f.upstream.answer((socket) => socket.write(head('200 OK', [SSE_TYPE, CHUNKED]) + chunk(event)));
    const read = await readMeasured(await post('/chat/completions', { ...CHAT, stream: true }));
    expect(read.text).toContain('"code":"upstream_stream_interrupted"');
  });

  it('an error body that trickles a byte at a time forever: 504 upstream_timeout once it is not whole in time', async () => {
    f.upstream.answer((socket) => {
      socket.write(head('500 Internal Server Error', [JSON_TYPE, CHUNKED]));
      // Never silent for as long as the idle timeout: only a deadline on the whole body ends it.
      const timer = setInterval(() => socket.write(chunk(' ')), BODY_IDLE_MS / 8);
      socket.once('close', () => clearInterval(timer));
    });
    const started = performance.now();
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('upstream_timeout');
    expect(performance.now() - started).toBeLessThan(BODY_IDLE_MS + 5_000);
    await f.upstream.whenIdle();
  });

  it('a list page that trickles forever: 504 upstream_timeout', async () => {
    f.upstream.answer((socket) => {
      socket.write(head('200 OK', [JSON_TYPE, CHUNKED]) + chunk('{"object":"list","data":['));
      const timer = setInterval(() => socket.write(chunk(' ')), BODY_IDLE_MS / 8);
      socket.once('close', () => clearInterval(timer));
    });
    const answer = await call(f, '/files');
    expect(answer.status).toBe(504);
    expect(answer.json.error.code).toBe('upstream_timeout');
    await f.upstream.whenIdle();
  });

  it('a success body that trickles forever is relayed as it comes, until the client leaves', async () => {
    f.upstream.answer((socket) => {
      socket.write(head('200 OK', [SSE_TYPE, CHUNKED]));
      const timer = setInterval(() => socket.write(chunk(':')), 50);
      socket.once('close', () => clearInterval(timer));
    });
    const res = await post('/chat/completions', { ...CHAT, stream: true });
    const read = await readMeasured(res, 20);
    expect(read.bytes).toBeGreaterThanOrEqual(20);
    await f.upstream.whenIdle();
  });
});

describe('an error body of many MB', () => {
  it('is held to 1 MB, sent as far as that, and the connection cut', async () => {
    const piece = Buffer.alloc(MB, 0x20);
    f.upstream.answer((socket) => {
      socket.write(head('500 Internal Server Error', [JSON_TYPE, CHUNKED]) + chunk('{"error":'));
      void writeChunks(socket, piece, 50, true);
    });
    const res = await post('/chat/completions', CHAT);
    expect(res.status).toBe(500);
    const read = await readMeasured(res);
    expect(read.bytes).toBeLessThanOrEqual(2 * MB);
    expect(read.cut).toBe(true);
    await f.upstream.whenIdle();
  });
});

describe('a list page the gateway filters per user', () => {
  it('larger than 8 MB: refused with a hint to ask for fewer, the gateway holding no more', async () => {
    const item = Buffer.from(`{"id":"file-${'x'.repeat(24)}","object":"file","bytes":1,"purpose":"assistants","filename":"${'f'.repeat(900)}"},`);
    f.upstream.answer((socket) => {
      socket.write(head('200 OK', [JSON_TYPE, CHUNKED]) + chunk('{"object":"list","data":['));
      void writeChunks(socket, Buffer.concat(Array.from({ length: 1000 }, () => item)), 100, true);
    });
    const answer = await call(f, '/files');
    expect(answer.status).toBe(400);
    expect(answer.json.error).toMatchObject({ code: 'invalid_request', param: 'limit' });
    await f.upstream.whenIdle();
  });

  it.each([
    ['not JSON', '{"object":"list","data":[{"id":"file-abc"', false],
    ['gzip of a list, cut', gzipSync('{"object":"list","data":[{"id":"file-abc"}]}').subarray(0, 30).toString('latin1'), true],
  ])('that is %s: 502 upstream_invalid_response, nothing of it passed on', async (_name, body, gzipped) => {
    const headers: Array<[string, string | number]> = [JSON_TYPE, ['content-length', Buffer.byteLength(body, 'latin1')]];
    if (gzipped) headers.push(GZIP);
    f.upstream.answer((socket) => socket.end(Buffer.concat([Buffer.from(head('200 OK', headers)), Buffer.from(body, 'latin1')])));
    const answer = await call(f, '/files');
    expect(answer.status).toBe(502);
    expect(answer.json.error).toMatchObject({ type: 'server_error', code: 'upstream_invalid_response' });
    expect(answer.text).not.toContain('file-abc');
    await keyNotBlamed();
  });

  it('of JSON with no `data` list: passed as it came, having no items to filter', async () => {
    const body = JSON.stringify({ files: [] });
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', body.length]]) + body));
    const answer = await call(f, '/files');
    expect(answer.status).toBe(200);
    expect(answer.text).toBe(body);
  });

  it('whose `object` is not "list": filtered all the same, another user\'s file not shown', async () => {
    const body = JSON.stringify({ object: 'page', data: [{ id: 'file-abc', object: 'file' }], has_more: false });
    f.upstream.answer((socket) => socket.end(head('200 OK', [JSON_TYPE, ['content-length', body.length]]) + body));
    const answer = await call(f, '/files');
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ object: 'page', data: [], has_more: false });
  });
});
