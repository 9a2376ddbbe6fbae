// Case 24 (docs/reliability.md): a client that reads its stream at 1 KB/s. The gateway must pass the
// slowness on to the upstream (backpressure), not hold what the upstream sends in memory; and 200
// such clients at once must not starve anyone else. The upstream here writes as fast as its socket
// lets it and counts what it wrote, so a gateway that buffered would be seen to drain it.
import { type Server, type ServerResponse, createServer } from 'node:http';
import { type Socket, connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-case-24-slow-readers';
const MB = 1024 * 1024;
// One SSE event of about 16 KB of words (words tokenize as fast as text gets).
const EVENT = Buffer.from(
  `data: ${JSON.stringify({ id: 'chatcmpl-s', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'slow reader '.repeat(1365) } }] })}\n\n`,
);

interface UpstreamStream {
  written: number;
  closed: boolean;
}

let upstream: Server;
let upstreamUrl: string;
const streams: UpstreamStream[] = [];
let gateway: TestGateway;
let userKey: string;

function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}

/** Writes events until `budget` bytes are out or the gateway goes away, waiting for every drain. */
async function pour(res: ServerResponse, stream: UpstreamStream, budget: number): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  while (!stream.closed && stream.written < budget) {
    stream.written += EVENT.length;
    if (!res.write(EVENT)) await drainedOrClosed(res);
  }
  // The stream never ends by itself: only the gateway's hanging up ends it.
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const json = JSON.parse(body || '{}') as { stream?: boolean; max_tokens?: number };
      if (!json.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'chatcmpl-q', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
        return;
      }
      const stream: UpstreamStream = { written: 0, closed: false };
      streams.push(stream);
      res.on('close', () => (stream.closed = true));
      // max_tokens picks the budget: 256 MB for the one slow reader, 256 KB for each of the 200.
      void pour(res, stream, json.max_tokens === 1 ? 256 * MB : 256 * 1024);
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const address = upstream.address();
  upstreamUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1`;
  registerPoolKey(POOL_KEY);
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: upstreamUrl } });
  userKey = await gateway.createUserKey('slow-reader');
  registerSecret(userKey);
});

afterAll(async () => {
  await gateway.close();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

interface SlowClient {
  socket: Socket;
  read(): number;
}

/** A client that asks for a stream and then reads it at `bytesPerSecond`, never faster. */
function slowClient(maxTokens: number, bytesPerSecond = 1024): Promise<SlowClient> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'go' }], stream: true, max_tokens: maxTokens });
    const socket = connect(gateway.port, '127.0.0.1');
    let read = 0;
    socket.pause();
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${userKey}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      // A quarter of the rate every 250 ms; socket.read(n) takes n bytes from what Node holds, and
      // Node stops reading the kernel once it holds its high-water mark.
      const share = Math.max(1, Math.floor(bytesPerSecond / 4));
      const timer = setInterval(() => {
        const chunk = (socket.read(share) ?? socket.read()) as Buffer | null;
        if (chunk) read += chunk.length;
      }, 250);
      socket.once('close', () => clearInterval(timer));
      resolve({ socket, read: () => read });
    });
  });
}

/** Waits until `value` has not changed for `quietMs`: the writer is blocked. */
async function stalled(value: () => number, quietMs: number, what: string): Promise<void> {
  let last = value();
  let since = Date.now();
  await until(() => {
    const now = value();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
    return Date.now() - since >= quietMs;
  }, what, 30_000);
}

// A full collection before each measure: what is compared is what is held, not garbage.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function memory(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('case 24: a client reading at 1 KB/s', () => {
  it('holds the upstream back instead of the gateway holding its bytes, and the heap stays flat', async () => {
    const before = memory();
    const client = await slowClient(1);
    await until(() => streams.length === 1, 'the upstream stream to start');
    const stream = streams[0]!;
    // The upstream would pour 256 MB in well under a second if nothing held it back.
    await stalled(() => stream.written, 1500, 'the upstream to be held back');
    const heldAt = stream.written;
    const memoryAtStall = memory();
    // Kernel socket buffers on two loopback connections hold a few MB each way; far under 256 MB.
    expect(heldAt).toBeLessThan(48 * MB);
    expect(stream.closed).toBe(false);

    // Two more seconds of 1 KB/s reading: the upstream moves by what the client takes, no more.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(stream.written - heldAt).toBeLessThan(4 * MB);
    expect(client.read()).toBeGreaterThan(0);
    expect(client.read()).toBeLessThan(16 * 1024);
    // What the gateway holds does not grow with what the upstream has (256 MB) nor with time.
    expect(memoryAtStall - before).toBeLessThan(16 * MB);
    expect(memory() - memoryAtStall).toBeLessThan(4 * MB);

    client.socket.destroy();
    await until(() => stream.closed, 'the upstream stream to be closed by the gateway', 5000);
  });

  it('200 slow streams at once do not starve other requests', async () => {
    streams.length = 0;
    const clients = await Promise.all(Array.from({ length: 200 }, () => slowClient(2)));
    await until(() => streams.length === 200, 'the 200 upstream streams to start', 30_000);
    // Every upstream writer is blocked by its own reader (each stream is bounded to 256 KB).
    await stalled(() => streams.reduce((sum, s) => sum + s.written, 0), 1000, 'the 200 streams to stall');

    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await request(`${gateway.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
        });
        return { status: res.statusCode, json: (await res.body.json()) as any };
      }),
    );
    const health = await request(`${gateway.url}/healthz`);
    await health.body.text();
    // "Not starved": answered within a bound that fails on a hang (each takes milliseconds alone).
    expect(Date.now() - started).toBeLessThan(5000);
    expect(health.statusCode).toBe(200);
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.json.choices[0].message.content).toBe('ok');
    }
    expect(streams.every((s) => !s.closed)).toBe(true);

    for (const client of clients) client.socket.destroy();
    await until(() => streams.every((s) => s.closed), 'every upstream stream to be closed', 10_000);
  }, 60_000);
});
