// Hostile review: the WebSocket routes and the cost-bound rule the HTTP relay keeps. The Responses
// socket is metered and checked per `response.create` (test/websocket-metering-responses.test.ts),
// so it opens to users with a model list or a dollar limit; a realtime upgrade without `?model=`
// runs the upstream's default model, and a call sideband or transcription session is not metered:
// for those users these upgrades are refused.
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-attack-ws-1';

let fake: FakeUpstream;
let gateway: TestGateway;
const clients: WebSocket[] = [];

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());
afterEach(() => {
  for (const ws of clients.splice(0)) {
    ws.on('error', () => {});
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }
});

/** The status of the handshake's answer: 101 when the upgrade went through. */
function handshake(path: string, key: string): Promise<number | undefined> {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, [], { headers: { authorization: `Bearer ${key}` } });
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(101));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => resolve(res.statusCode));
    ws.once('error', reject);
  });
}

it('a user with a model list opens the Responses WebSocket: each response.create is checked instead', async () => {
  const key = await gateway.createUserKey('ws-listed', { models: ['gpt-4o-mini'] });
  registerSecret(key);
  expect(await handshake('/v1/responses', key)).toBe(101);
});

it('a user with a dollar limit opens the Responses WebSocket: each response is metered', async () => {
  const key = await gateway.createUserKey('ws-dollars', { limits: { usdPerDay: 1 } });
  registerSecret(key);
  expect(await handshake('/v1/responses', key)).toBe(101);
});

it('a user with a model list cannot open a realtime session that names no model', async () => {
  const key = await gateway.createUserKey('ws-realtime-listed', { models: ['gpt-4o-mini'] });
  registerSecret(key);
  expect(await handshake('/v1/realtime', key)).toBe(403);
  expect(fake.wsConnections).toHaveLength(0);
});

it('a user with a dollar limit cannot open a realtime session on a model with no price', async () => {
  const key = await gateway.createUserKey('ws-realtime-dollars', { limits: { usdPerDay: 1 } });
  registerSecret(key);
  expect(await handshake('/v1/realtime?model=gpt-realtime-unpriced', key)).toBe(403);
  expect(fake.wsConnections).toHaveLength(0);
});

it('a user with a dollar limit cannot attach to a call or open a transcription session, which are not metered', async () => {
  const key = await gateway.createUserKey('ws-realtime-call', { limits: { usdPerDay: 1 } });
  registerSecret(key);
  expect(await handshake('/v1/realtime?model=gpt-4o-mini&call_id=rtc_1', key)).toBe(403);
  expect(await handshake('/v1/realtime?model=gpt-4o-mini&intent=transcription', key)).toBe(403);
  expect(fake.wsConnections).toHaveLength(0);
});
