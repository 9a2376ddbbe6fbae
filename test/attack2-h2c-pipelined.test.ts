// Requests pipelined on one connection after an h2c upgrade offer (src/inbound/upgrade-offers.ts)
// are lost: the offer's request is re-read by a fresh parser (nodeConnectionListener on the same
// socket), and the next request that also offers h2c, already in that parser's buffer, gets no
// answer at all. HTTP/1.1 lets a client pipeline (RFC 9112 section 9.3.2): each request is owed its
// answer, in order. The connection then just hangs, holding its slot, until a clock closes it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { openConnection, rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-attack2-h2c-pipe-00001';
const CAP = 8;
let fake: FakeUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { inbound: { headersMs: 1000, idleMs: 1000, keepAliveMs: 1000, maxConnections: CAP } as Config['inbound'] },
  });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';
const healthz = (offer: string, last = false) => `GET /healthz HTTP/1.1\r\nHost: x\r\n${offer}${last ? 'Connection: close\r\n' : ''}\r\n`;

const answersIn = (raw: string) => [...raw.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

// What is pipelined behind an upgrade offer the gateway declines is not read: the offer gets its
// answer and the connection closes at once (src/inbound/upgrade-offers.ts), as a server may; the
// client sends the rest again on a new connection. Nothing hangs, nothing is answered twice.
it('three pipelined requests offering h2c: the first is answered, and the connection closes at once', async () => {
  const answer = await rawRequest(gateway.port, healthz(H2C) + healthz(H2C) + healthz(H2C), 5000);
  expect(answersIn(answer.raw)).toEqual([200]);
  expect(answer.raw).toMatch(/^connection: close\r$/im);
  expect(answer.closed).toBe(true);
});

it('a plain request pipelined after two h2c offers: the first is answered, and the connection closes', async () => {
  const answer = await rawRequest(gateway.port, healthz(H2C) + healthz(H2C) + healthz('', true), 5000);
  expect(answersIn(answer.raw)).toEqual([200]);
  expect(answer.closed).toBe(true);
});

it('the connection such a pipeline leaves hanging is closed by the gateway once its clocks run out', async () => {
  const conn = await openConnection(gateway.port);
  conn.socket.write(healthz(H2C) + healthz(H2C));
  // Every clock is 1 s here: ten times that is plenty.
  const timeout = new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), 10_000).unref());
  const outcome = await Promise.race([conn.closed.then(() => 'closed' as const), timeout]);
  conn.socket.destroy();
  expect(outcome).toBe('closed');
}, 20_000);

it('one client holding every connection this way leaves none for anyone else, without a key', async () => {
  const held = await Promise.all(Array.from({ length: CAP }, () => openConnection(gateway.port)));
  for (const conn of held) conn.socket.write(healthz(H2C) + healthz(H2C));
  // Past all the clocks (1 s): the gateway should have closed those connections by now.
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const someoneElse = await fetch(`${gateway.url}/healthz`).then((r) => r.status, () => 0);
  for (const conn of held) conn.socket.destroy();
  expect(someoneElse).toBe(200);
}, 20_000);

it('(control, holds) a connection with one h2c offer, or two plain requests pipelined, is closed by its clocks', async () => {
  for (const bytes of [healthz(H2C), healthz('') + healthz('')]) {
    const conn = await openConnection(gateway.port);
    conn.socket.write(bytes);
    const timeout = new Promise<'still open'>((resolve) => setTimeout(() => resolve('still open'), 10_000).unref());
    const outcome = await Promise.race([conn.closed.then(() => 'closed' as const), timeout]);
    conn.socket.destroy();
    expect(outcome).toBe('closed');
  }
}, 30_000);
