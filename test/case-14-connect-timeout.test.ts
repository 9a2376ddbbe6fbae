// Case 14 (docs/reliability.md), the connect side: an upstream whose TCP connect never completes.
// The upstream is a listener in a process that never accepts, its backlog filled by this test, so
// the kernel drops the gateway's SYNs and its connect hangs (an address with no route would fail
// at once instead, or be answered by whatever the network does with it). With a short
// timeouts.connectMs, the request ends in bounded time with an OpenAI-shaped 504 and costs nothing.
// Headers and body timeouts are in pool-failover-timeouts.test.ts.
import { type ChildProcess, spawn } from 'node:child_process';
import { type Socket, connect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-case-14-connect-0001';
const CONNECT_MS = 300;
let blackhole: ChildProcess;
let port: number;
const fillers: Socket[] = [];
let gateway: TestGateway;
let userKey: string;

/** A listener whose process blocks before it accepts anything (backlog 1). */
function startBlackhole(): Promise<number> {
  const script =
    "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port);" +
    'setTimeout(()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0),20)})';
  blackhole = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => blackhole.stdout?.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
}

/** Opens connections until one no longer completes: the accept queue is full from then on. */
async function fillBacklog(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (;;) {
    const socket = connect(port, '127.0.0.1');
    fillers.push(socket);
    socket.on('error', () => {});
    const done = await Promise.race([
      new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 500)),
    ]);
    if (!done) return;
  }
}

beforeAll(async () => {
  port = await startBlackhole();
  await fillBacklog();
  registerPoolKey(POOL_KEY);
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: `http://127.0.0.1:${port}/v1` },
    config: { timeouts: { connectMs: CONNECT_MS, headersMs: 60_000, bodyIdleMs: 60_000 } } as Partial<Config>,
  });
  userKey = await gateway.createUserKey('waiter', { limits: { tokensPerDay: 100_000 } });
  registerSecret(userKey);
});
afterAll(async () => {
  await gateway.close();
  for (const socket of fillers) socket.destroy();
  blackhole.kill('SIGKILL');
});

describe('case 14: a connect that never completes', () => {
  it('the listener really does not complete a connect (the check below can fail)', async () => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const connected = await Promise.race([
      new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
    ]);
    socket.destroy();
    expect(connected).toBe(false);
  });

  it('ends in bounded time with 504 upstream_timeout, and charges nothing', async () => {
    const started = Date.now();
    const res = await request(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 }),
    });
    const body = (await res.body.json()) as any;
    const took = Date.now() - started;
    // connectMs per attempt, a few attempts with backoff, inside the pool's retry deadline: seconds,
    // never the minutes an operating system's own connect timeout takes.
    expect(took).toBeLessThan(10_000);
    expect(res.statusCode).toBe(504);
    expect(body).toEqual({ error: { message: 'The upstream did not answer in time.', type: 'server_error', param: null, code: 'upstream_timeout' } });
    const usage = (await gateway.admin('GET', '/users/waiter')).json.usage;
    expect(usage.day).toMatchObject({ tokens: 0, reservedTokens: 0 });
    expect(usage.concurrent.inFlight).toBe(0);
  });
});
