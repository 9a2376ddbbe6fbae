// The silence clock after the gateway's own event loop stalled: a client that kept sending while
// the gateway could not read is not silent, even though the socket's idle timer fires before the
// bytes waiting in the kernel are read (timers run before I/O in a turn of the loop).
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-stalled-loop-000001';
const IDLE_MS = 1000;
const INBOUND: Config['inbound'] = { maxConnections: 10_000, maxRequestsInFlight: 5000, maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeaderBytes: 64 * 1024, maxHeadersCount: 100, headersMs: 5000, idleMs: IDLE_MS, bodyMinBytesPerSecond: 0, requestMs: 0, keepAliveMs: 2000 };

let fake: FakeUpstream;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
});

afterAll(async () => {
  await fake.close();
});

// A client in its own process (its loop keeps running while the gateway's is stalled): it sends
// a JSON body a few bytes every 100 ms for 4 s, then prints the status line it gets.
const CLIENT = `
const net = require('node:net');
const [port, key] = process.argv.slice(1);
const body = JSON.stringify({ model: 'text-embedding-3-small', input: 'x'.repeat(400) });
const socket = net.connect(Number(port), '127.0.0.1', () => {
  socket.write('POST /v1/embeddings HTTP/1.1\\r\\nhost: x\\r\\nauthorization: Bearer ' + key + '\\r\\ncontent-type: application/json\\r\\ncontent-length: ' + body.length + '\\r\\n\\r\\n');
  let at = 0;
  const step = Math.ceil(body.length / 40);
  const timer = setInterval(() => {
    socket.write(body.slice(at, at + step));
    at += step;
    if (at === step) process.stdout.write('sending\\n');
    if (at >= body.length) clearInterval(timer);
  }, 100);
});
let answer = '';
socket.on('data', (d) => { answer += d; if (answer.includes('\\r\\n')) { process.stdout.write('answer ' + answer.split('\\r\\n')[0] + '\\n'); socket.destroy(); } });
socket.on('close', () => { if (!answer) process.stdout.write('closed without an answer\\n'); });
socket.on('error', () => {});
`;

// The silence clock alone, then with the rate clock too: the client sends about 100 bytes a
// second, twice the minimum, but none of it is read during the stall.
it.each([
  ['the silence clock', 0],
  ['the rate clock', 50],
])('%s does not cut a client that kept sending while the gateway could not read for longer than idleMs', async (_clock, bodyMinBytesPerSecond) => {
  const gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl }, config: { inbound: { ...INBOUND, bodyMinBytesPerSecond } } });
  const key = await gateway.createUserKey('alice');
  registerSecret(key);
  const port = new URL(gateway.url).port;
  const child = spawn(process.execPath, ['-e', CLIENT, port, key], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  try {
    await until(() => out.includes('sending'), 'the client sends its body', 20_000);
    // Let the first bytes of the body be read, then hold this process (the gateway's) for 2.5
    // idle periods while the client goes on sending.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const end = Date.now() + 2.5 * IDLE_MS;
    while (Date.now() < end) {
      // Busy: nothing else of this process runs.
    }
    await until(() => out.includes('answer') || out.includes('closed'), 'the client gets an answer or is cut', 30_000);
    expect(out).toContain('answer HTTP/1.1 200');
    expect(gateway.logs.some((line) => line.msg === 'request body not received in time: connection closed')).toBe(false);
  } finally {
    child.kill();
    await gateway.close();
  }
});
