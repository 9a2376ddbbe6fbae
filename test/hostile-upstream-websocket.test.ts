// A WebSocket handshake answered by a hostile upstream: a refusal whose body never ends (endless
// bytes, or a trickle), informational answers without end. The gateway keeps 64 KB of a refusal,
// waits no longer than timeouts.bodyIdleMs for the rest, and gives the client the refusal's
// status (the 401 is the key's all the same); the real answer must come within timeouts.headersMs.
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BODY_IDLE_MS, HEADERS_MS, type HostileFixture, startHostile } from './helpers/hostile-upstream-fixture.js';
import { head } from './helpers/raw-upstream.js';

let f: HostileFixture;
const clients: WebSocket[] = [];
beforeAll(async () => {
  f = await startHostile();
});
afterAll(async () => {
  for (const ws of clients.splice(0)) ws.terminate();
  await f.close();
});
beforeEach(async () => {
  await f.enableKey();
});

/** The status of the gateway's answer to the handshake, and its body. */
function handshake(): Promise<{ status: number | undefined; body: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${f.gateway.port}/v1/realtime?model=gpt-4o-realtime-preview`, [], { headers: { authorization: `Bearer ${f.userKey}` } });
  clients.push(ws);
  ws.on('error', () => {});
  return new Promise((resolve) => {
    ws.once('open', () => resolve({ status: 101, body: '' }));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.once('end', () => resolve({ status: res.statusCode, body }));
      res.once('error', () => resolve({ status: res.statusCode, body }));
    });
  });
}

const OPENAI_401 = JSON.stringify({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });

it('a 401 whose body goes on without end: the client gets the 401 at once, and the key is disabled', async () => {
  const filler = Buffer.alloc(64 * 1024, 0x20);
  f.upstream.answer((socket) => {
    socket.write(head('401 Unauthorized', [['content-type', 'application/json'], ['transfer-encoding', 'chunked']]));
    socket.write(`${Buffer.byteLength(OPENAI_401).toString(16)}\r\n${OPENAI_401}\r\n`);
    const frame = Buffer.concat([Buffer.from(`${filler.length.toString(16)}\r\n`), filler, Buffer.from('\r\n')]);
    const pump = () => {
      while (!socket.destroyed && socket.write(frame));
    };
    socket.on('drain', pump);
    pump();
  });
  const answer = await handshake();
  expect(answer.status).toBe(401);
  expect(JSON.parse(answer.body).error.code).toBe('invalid_api_key');
  expect(await f.key()).toMatchObject({ state: 'disabled', reason: 'invalid_api_key' });
  await f.upstream.whenIdle();
});

it('a 429 whose body trickles forever: the client gets the 429 once timeouts.bodyIdleMs has passed', async () => {
  f.upstream.answer((socket) => {
    socket.write(head('429 Too Many Requests', [['content-type', 'application/json'], ['transfer-encoding', 'chunked']]));
    const timer = setInterval(() => socket.write('1\r\n \r\n'), BODY_IDLE_MS / 8);
    socket.once('close', () => clearInterval(timer));
  });
  const started = performance.now();
  const answer = await handshake();
  expect(answer.status).toBe(429);
  expect(performance.now() - started).toBeLessThan(BODY_IDLE_MS + 5_000);
  await f.upstream.whenIdle();
});

it('informational answers (103) without end: 504 upstream_timeout at the headers deadline', async () => {
  f.upstream.answer((socket) => {
    const timer = setInterval(() => socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n'), 50);
    socket.once('close', () => clearInterval(timer));
  });
  const started = performance.now();
  const answer = await handshake();
  expect(answer.status).toBe(504);
  expect(JSON.parse(answer.body).error.code).toBe('upstream_timeout');
  expect(performance.now() - started).toBeLessThan(HEADERS_MS + 5_000);
  await f.upstream.whenIdle();
});
