// A hostile HTTP CONNECT proxy between the gateway and its upstream: it answers CONNECT with a
// header section of 64 KB, with bytes that are not HTTP, with a header section that never ends, or
// opens the tunnel and injects garbage ahead of the upstream's answer. The client gets an
// OpenAI-shaped 502 or 504 within the connect deadline, and the pool key is not blamed: nothing in
// it was the key's doing (docs/reliability.md, Hostile upstreams; docs/proxies.md).
import { type Socket, connect, createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CHAT, type HostileFixture, call, startHostile } from './helpers/hostile-upstream-fixture.js';
import { head } from './helpers/raw-upstream.js';

type Behaviour = 'huge-header' | 'not-http' | 'endless-header' | 'garbage-in-tunnel' | 'garbage-in-answer' | 'endless-status' | 'close-after-connect';

let behaviour: Behaviour = 'huge-header';
let connects = 0;
const sockets = new Set<Socket>();
const proxy = createServer((socket) => {
  sockets.add(socket);
  socket.on('error', () => socket.destroy());
  socket.once('close', () => sockets.delete(socket));
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    const end = buffered.indexOf('\r\n\r\n');
    if (end === -1) return;
    socket.off('data', onData);
    // What came after the CONNECT's head (the request, sent early) is the tunnel's.
    socket.pause();
    const rest = Buffer.from(buffered.slice(end + 4), 'latin1');
    if (rest.length > 0) socket.unshift(rest);
    const target = buffered.split(' ')[1] ?? '';
    connects++;
    answerConnect(socket, target);
  };
  socket.on('data', onData);
});

function drip(socket: Socket, bytes: string, everyMs: number): void {
  const timer = setInterval(() => socket.write(bytes), everyMs);
  socket.once('close', () => clearInterval(timer));
}

function answerConnect(socket: Socket, target: string): void {
  switch (behaviour) {
    case 'huge-header':
      socket.end(head('200 Connection Established', [['x-huge', 'a'.repeat(64 * 1024)]]));
      return;
    case 'close-after-connect':
      socket.end('HTTP/1.1 200 Connection Established\r\n\r\n');
      return;
    case 'not-http':
      socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n');
      return;
    case 'endless-header':
      socket.resume();
      socket.write('HTTP/1.1 200 Connection Established\r\n');
      drip(socket, 'x-drip: 1\r\n', 50);
      return;
    case 'endless-status':
      socket.write('HTTP/1.1 200 ');
      drip(socket, 'A'.repeat(1024), 5);
      return;
    case 'garbage-in-tunnel':
    case 'garbage-in-answer': {
      // The tunnel opens, and bytes the proxy made up come ahead of the upstream's answer: at once
      // (before the request), or once the upstream begins to answer.
      const colon = target.lastIndexOf(':');
      const upstream = connect(Number(target.slice(colon + 1)), target.slice(0, colon), () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (behaviour === 'garbage-in-tunnel') socket.write('\x00\x01garbage that is not HTTP\r\n\r\n');
        else upstream.once('data', () => socket.write('\x00\x01garbage that is not HTTP\r\n\r\n'));
        socket.pipe(upstream);
        upstream.on('data', (chunk: Buffer) => setImmediate(() => socket.write(chunk)));
        socket.resume();
      });
      upstream.on('error', () => socket.destroy());
      upstream.once('close', () => setImmediate(() => socket.end()));
      socket.once('close', () => upstream.destroy());
    }
  }
}

let f: HostileFixture;
let failuresBefore = 0;
beforeAll(async () => {
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  f = await startHostile({ proxy: `http://127.0.0.1:${port}` });
});
afterAll(async () => {
  await f.close();
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
});
beforeEach(async () => {
  connects = 0;
  await f.enableKey();
  failuresBefore = (await f.key()).failures;
  f.upstream.requests.length = 0;
  f.upstream.answer((socket) => socket.end(head('200 OK', [['content-type', 'application/json'], ['content-length', 2], ['connection', 'close']]) + '{}'));
});

async function keyNotBlamed(): Promise<void> {
  expect(await f.key()).toMatchObject({ state: 'active', failures: failuresBefore, consecutiveFailures: 0 });
}

describe('a hostile CONNECT answer', () => {
  it.each([
    ['a 64 KB header', 'huge-header', 502],
    ['bytes that are not HTTP', 'not-http', 502],
    ['a header section that never ends', 'endless-header', 504],
    ['a status line that never ends', 'endless-status', 504],
  ] as const)('with %s: upstream_proxy_error, nothing sent upstream, the key not blamed', async (_name, b, status) => {
    behaviour = b;
    const started = performance.now();
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(status);
    expect(answer.json).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'upstream_proxy_error' } });
    // Bounded by the connect deadline (2 s here), with room for a busy machine.
    expect(performance.now() - started).toBeLessThan(2_000 + 5_000);
    expect(f.upstream.requests).toEqual([]);
    expect(connects).toBe(1);
    await keyNotBlamed();
  });
});

describe('a tunnel closed as soon as it opened', () => {
  it('502 upstream_unreachable after one CONNECT, as a connection the upstream closed would be', async () => {
    // The gateway cannot tell the proxy's close from the upstream's: a reset, as any other.
    behaviour = 'close-after-connect';
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(502);
    expect(answer.json).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'upstream_unreachable' } });
    expect(connects).toBe(1);
  });
});

describe('garbage the proxy injects in the tunnel', () => {
  it('at once, before the request: 502 upstream_proxy_error after one CONNECT, never a loop of them', async () => {
    behaviour = 'garbage-in-tunnel';
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(502);
    expect(answer.json).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'upstream_proxy_error' } });
    expect(connects).toBe(1);
    expect(f.upstream.requests).toEqual([]);
    await keyNotBlamed();
  });

  it('ahead of the upstream\'s answer: 502 upstream_invalid_response, the key not blamed', async () => {
    behaviour = 'garbage-in-answer';
    const answer = await call(f, '/chat/completions', { body: CHAT });
    expect(answer.status).toBe(502);
    expect(answer.json).toEqual({ error: { message: expect.any(String), type: 'server_error', param: null, code: 'upstream_invalid_response' } });
    expect(f.upstream.requests).toHaveLength(1);
    await keyNotBlamed();
  });
});
