// Slow drips and connection floods (the trust boundary against a hostile user): a client that
// holds a connection without finishing its request is cut, wherever it aims, and a flood past the
// connection cap is answered 503 at once, while honest clients are left alone: a long stream, a
// steady upload, a WebSocket, a call whose answer takes longer than any of the clocks.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Config } from '../src/config.js';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RawAnswer, type RawConnection, openConnection } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-slow-clients-00000001';
// Small clocks, so that the file runs in seconds.
const INBOUND: Config['inbound'] = { maxConnections: 10_000, maxRequestsInFlight: 5000, maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeaderBytes: 64 * 1024, maxHeadersCount: 100, headersMs: 1000, idleMs: 1000, bodyMinBytesPerSecond: 1024, requestMs: 0, keepAliveMs: 2000 };
// Longest a cut may take here: a hang fails, a slow shared machine does not.
const CUT_WITHIN_MS = 8000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

function start(inbound: Partial<Config['inbound']> = {}, tls?: Config['tls']): Promise<TestGateway> {
  return startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl }, config: { inbound: { ...INBOUND, ...inbound }, tls } });
}

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await start();
  key = await gateway.createUserKey('alice');
  registerSecret(key);
});

afterAll(async () => {
  await gateway.close();
  await fake.close();
});

/** Resolves with `promise`, or fails the test if it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes one byte every `everyMs` until the connection is gone. */
function drip(connection: RawConnection, everyMs: number): void {
  const timer = setInterval(() => connection.socket.write('x'), everyMs);
  connection.socket.once('close', () => clearInterval(timer));
}

function expectRequestTimeout(answer: RawAnswer): void {
  expect(answer.status).toBe(408);
  expect(answer.headers.connection).toBe('close');
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.headers['x-request-id']).toMatch(UUID);
  expect(JSON.parse(answer.body)).toEqual({
    error: { message: 'The request headers were not received in time.', type: 'invalid_request_error', param: null, code: 'request_timeout' },
  });
}

const TARGETS: Array<[string, string, () => string]> = [
  ['outside /v1, no credentials', 'POST /nowhere', () => ''],
  ['an admin route', 'POST /admin/users', () => `Authorization: Bearer ${ADMIN_TOKEN}\r\n`],
  ['/v1 with a valid key', 'POST /v1/chat/completions', () => `Authorization: Bearer ${key}\r\n`],
  ['/v1 without a key', 'POST /v1/chat/completions', () => ''],
];

function head(line: string, auth: string): string {
  return `${line} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 500000\r\n\r\n`;
}

describe('a body that never ends', () => {
  it.each(TARGETS)('dripped slower than the minimum rate (%s): the connection is closed', async (_name, line, auth) => {
    fake.reset();
    const connection = await openConnection(gateway.port);
    connection.socket.write(head(line, auth()));
    // Never silent for a whole idleMs, but 5 bytes a second against a minimum of 1024.
    drip(connection, 200);
    await within(connection.closed, CUT_WITHIN_MS, 'the dripping connection to close');
    expect(fake.requests).toHaveLength(0);
  });

  it.each(TARGETS)('falling silent (%s): the connection is closed', async (_name, line, auth) => {
    fake.reset();
    const connection = await openConnection(gateway.port);
    connection.socket.write(`${head(line, auth())}{"model":"gpt-4o-mini",`);
    await within(connection.closed, CUT_WITHIN_MS, 'the silent connection to close');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('a request that never begins', () => {
  it('a connection that sends nothing is closed', async () => {
    const connection = await openConnection(gateway.port);
    await within(connection.closed, CUT_WITHIN_MS, 'the silent connection to close');
  });

  it('headers sent a line at a time are cut at the headers timeout: 408 request_timeout', async () => {
    const connection = await openConnection(gateway.port);
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    let n = 0;
    const timer = setInterval(() => connection.socket.write(`X-Slow-${n++}: 1\r\n`), 200);
    connection.socket.once('close', () => clearInterval(timer));
    expectRequestTimeout(await within(connection.closed, CUT_WITHIN_MS, 'the slow headers to be cut'));
  });

  it('a keep-alive connection left idle after its answer is closed after keepAliveMs', async () => {
    const connection = await openConnection(gateway.port);
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const answer = await within(connection.closed, CUT_WITHIN_MS, 'the idle keep-alive connection to close');
    expect(answer.status).toBe(200);
  });
});

describe('honest clients slower than the clocks', () => {
  it('an upload at a steady rate, longer than idleMs in all, passes whole', async () => {
    fake.reset();
    const size = 512 * 1024;
    async function* body() {
      yield Buffer.from('--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n');
      // 16 KB every 50 ms: 320 KB/s, about 1.6 s for the whole file.
      for (let sent = 0; sent < size; sent += 16 * 1024) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        yield Buffer.alloc(16 * 1024, 0x61);
      }
      yield Buffer.from('\r\n--b--\r\n');
    }
    const res = await request(`${gateway.url}/v1/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'multipart/form-data; boundary=b' },
      body: Readable.from(body()),
    });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(fake.requests.at(-1)?.body.length).toBeGreaterThan(size);
  });

  it('an upload the upstream holds back for longer than idleMs is not cut: that silence is the gateway\'s', async () => {
    // An upstream that reads nothing for three idle periods, then everything. Idle periods of 3 s
    // here: the client's own writes must never pause for a whole period once the upstream reads,
    // and on a machine busy with other work a test process can stall for over a second.
    const IDLE_MS = 3000;
    const HOLD_MS = 3 * IDLE_MS;
    const slowReader = createServer((req, res) => {
      req.pause();
      setTimeout(() => {
        let bytes = 0;
        req.on('data', (chunk: Buffer) => (bytes += chunk.length));
        req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'file-1', object: 'file', bytes })));
        req.resume();
      }, HOLD_MS);
    });
    await new Promise<void>((resolve) => slowReader.listen(0, '127.0.0.1', resolve));
    const address = slowReader.address() as AddressInfo;
    const held = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: `http://127.0.0.1:${address.port}/v1` }, config: { inbound: { ...INBOUND, idleMs: IDLE_MS } } });
    try {
      const heldKey = await held.createUserKey('carol');
      registerSecret(heldKey);
      // Far more than the socket buffers between the three hold, so the client is held back too.
      const file = Buffer.alloc(48 * 1024 * 1024, 0x61);
      const body = Buffer.concat([Buffer.from('--b\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'), file, Buffer.from('\r\n--b--\r\n')]);
      const res = await request(`${held.baseUrl}/files`, {
        method: 'POST',
        headers: { authorization: `Bearer ${heldKey}`, 'content-type': 'multipart/form-data; boundary=b' },
        body,
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ id: 'file-1', object: 'file', bytes: body.length });
    } finally {
      await held.close();
      slowReader.closeAllConnections();
      await new Promise((resolve) => slowReader.close(resolve));
    }
  });

  it('a call whose answer is silent for longer than idleMs gets its answer', async () => {
    fake.reset();
    fake.handle((req) => (req.path === '/v1/embeddings' ? { headersDelayMs: 2500, body: { object: 'list', data: [] } } : undefined));
    const res = await request(`${gateway.baseUrl}/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'text-embedding-3-small', input: 'hi' }),
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ object: 'list', data: [] });
  });

  it('a WebSocket silent for longer than idleMs stays open', async () => {
    const ws = new WebSocket(`${gateway.url.replace('http', 'ws')}/v1/realtime?model=gpt-4o-realtime-preview`, { headers: { authorization: `Bearer ${key}` } });
    const messages: string[] = [];
    ws.on('message', (data: Buffer) => messages.push(data.toString('utf8')));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    await until(() => messages.length > 0, 'session.created');
    // Silence on the line, both ways, for twice idleMs.
    await new Promise((resolve) => setTimeout(resolve, 2 * INBOUND.idleMs));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    // A JSON event (text that is not one is refused by the gateway), which the fake upstream echoes.
    ws.send(JSON.stringify({ type: 'input_audio_buffer.clear', event_id: 'still here' }));
    await until(() => messages.some((m) => m.includes('still here')), 'the echo');
    ws.close();
  });
});

describe('requestMs, the total: the request only, never the answer', () => {
  let timed: TestGateway;
  let timedKey: string;
  beforeAll(async () => {
    timed = await start({ requestMs: 1000 });
    timedKey = await timed.createUserKey('bob');
    registerSecret(timedKey);
  });
  afterAll(() => timed.close());

  it('a stream that lasts three times requestMs, after a silence longer than idleMs, completes', async () => {
    fake.reset();
    const chunk = (content: string) => ({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
    fake.handle((req) =>
      req.path === '/v1/chat/completions'
        ? { headersDelayMs: 1500, headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents(Array.from({ length: 15 }, (_, i) => chunk(`w${i} `)), { done: true }), chunkIntervalMs: 100 }
        : undefined,
    );
    const res = await request(`${timed.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${timedKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(text).toContain('w14 ');
    expect(text).toContain('data: [DONE]');
  });

  it('a body still arriving at a good rate when requestMs is over is cut', async () => {
    fake.reset();
    const connection = await openConnection(timed.port);
    connection.socket.write(`POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${timedKey}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000\r\n\r\n`);
    const timer = setInterval(() => connection.socket.write(Buffer.alloc(8 * 1024, 0x61)), 50);
    connection.socket.once('close', () => clearInterval(timer));
    await within(connection.closed, CUT_WITHIN_MS, 'the overlong request to be cut');
  });
});

describe('a flood past maxConnections', () => {
  const MAX = 20;
  let dir: string;
  beforeAll(() => {
    // Node cannot make X.509 certificates; openssl (on every Debian) can.
    dir = mkdtempSync(join(tmpdir(), 'keyrelay-flood-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=keyrelay flood test'], { stdio: 'ignore' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function askHealth(port: number, tls: boolean): Promise<boolean> {
    const connection = await openConnection(port, { tls });
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    return (await connection.closed).status === 200;
  }

  it.each([
    ['plain HTTP', false],
    ['TLS, the answer inside TLS', true],
  ])('%s: the extra connections get 503 server_overloaded at once; established ones and /healthz keep working', async (_name, tls) => {
    const capped = await start({ maxConnections: MAX, keepAliveMs: 60_000 }, tls ? { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } : undefined);
    try {
      const established: RawConnection[] = [];
      for (let i = 0; i < MAX; i++) {
        const connection = await openConnection(capped.port, { tls });
        connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        await until(() => connection.received().includes('{"status":"ok"}'), 'an established connection answered');
        established.push(connection);
      }

      // The extra connections send nothing: the answer cannot have waited for a request.
      const extra = await Promise.all(Array.from({ length: 10 }, () => openConnection(capped.port, { tls })));
      const answers = await within(Promise.all(extra.map((c) => c.closed)), CUT_WITHIN_MS, 'the extra connections to be refused');
      for (const answer of answers) {
        expect(answer.status).toBe(503);
        expect(answer.headers.connection).toBe('close');
        expect(answer.headers['retry-after']).toBe('1');
        expect(answer.headers['content-type']).toBe('application/json');
        expect(answer.headers['x-request-id']).toMatch(UUID);
        expect(JSON.parse(answer.body)).toEqual({
          error: { message: 'The gateway is at its limit of open connections. Try again later.', type: 'server_error', param: null, code: 'server_overloaded' },
        });
      }
      expect(capped.logs.some((l) => l.msg === 'connection limit reached: new connections answered 503 server_overloaded' && l.maxConnections === MAX)).toBe(true);

      // An established connection still asks and gets its answer.
      const first = established[0] as RawConnection;
      first.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => first.received().split('{"status":"ok"}').length === 3, 'a second answer on an established connection');

      // Once the flood is gone, new connections are served again.
      for (const connection of established) connection.socket.destroy();
      await until(() => askHealth(capped.port, tls), '/healthz served on a new connection');
    } finally {
      await capped.close();
    }
  });
});
