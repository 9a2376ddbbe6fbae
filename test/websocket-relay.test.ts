// WebSocket upgrades of GET /v1/realtime and GET /v1/responses (README, "The relay"): the key
// is swapped on the handshake, frames pass both ways, refusals are plain HTTP, and a client that
// goes away takes the upstream connection with it.
import type { IncomingMessage } from 'node:http';
import { type Socket, connect, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-websocket-1';

/** A TCP pass-through in front of the fake, so that the test sees each upstream connection close. */
interface Tap {
  port: number;
  connections: Array<{ closed: Promise<void> }>;
  close(): Promise<void>;
}

async function startTap(targetPort: number): Promise<Tap> {
  const sockets = new Set<Socket>();
  const connections: Tap['connections'] = [];
  const server = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
    }
    connections.push({ closed: new Promise((resolve) => inbound.once('close', () => resolve())) });
    inbound.once('close', () => outbound.destroy());
    outbound.once('close', () => inbound.destroy());
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    connections,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let fake: FakeUpstream;
let tap: Tap;
let gateway: TestGateway;
let userKey: string;
const clients: WebSocket[] = [];

beforeAll(async () => {
  registerSecret(POOL_KEY);
  // The fake accepts only the pool key: an upgrade that opens proves the key was swapped.
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  tap = await startTap(fake.port);
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: `http://127.0.0.1:${tap.port}/v1` } });
  userKey = await gateway.createUserKey('ws-user');
  registerSecret(userKey);
});
afterAll(async () => {
  await gateway.close();
  await tap.close();
  await fake.close();
});
beforeEach(() => {
  fake.reset();
  tap.connections.length = 0;
});
afterEach(() => {
  for (const ws of clients.splice(0)) {
    // Terminating a refused handshake reports an error; the test already judged that handshake.
    ws.on('error', () => {});
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }
});

function connectTo(path: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, options.protocols ?? [], { headers: options.headers });
  clients.push(ws);
  return ws;
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<unknown> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)))));
}

/** The HTTP answer to an upgrade the server refused. */
function refusal(ws: WebSocket): Promise<{ status: number | undefined; body: unknown }> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += String(chunk)));
      res.once('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
  });
}

const bearer = () => ({ authorization: `Bearer ${userKey}` });

describe('realtime with an Authorization header', () => {
  it('opens upstream with the pool key, greets with session.created and echoes', async () => {
    const ws = connectTo('/v1/realtime?model=gpt-realtime', { headers: bearer() });
    const greeting = nextMessage(ws);
    await opened(ws);
    expect(await greeting).toEqual({ type: 'session.created', session: { model: 'gpt-realtime' } });

    // The fake answers an update with session.updated, then echoes it.
    const two = new Promise<unknown[]>((resolve) => {
      const got: unknown[] = [];
      ws.on('message', (data) => got.push(JSON.parse(String(data))) === 2 && resolve(got));
    });
    ws.send('{"type":"session.update","session":{"instructions":"héllo"}}');
    const [answer, echoed] = await two;
    expect(answer).toMatchObject({ type: 'session.updated' });
    expect(echoed).toEqual({ type: 'echo', data: '{"type":"session.update","session":{"instructions":"héllo"}}' });

    expect(fake.wsConnections).toHaveLength(1);
    const upgrade = fake.wsConnections[0]!;
    expect(upgrade.url).toBe('/v1/realtime?model=gpt-realtime');
    expect(upgrade.headers.authorization).toBe(`Bearer ${POOL_KEY}`);
    expect(JSON.stringify(upgrade.headers)).not.toContain(userKey);
  });
});

describe('realtime from a browser, the key sent as a subprotocol', () => {
  it('opens with the realtime protocol and keeps the key from the upstream', async () => {
    const ws = connectTo('/v1/realtime?model=gpt-realtime', { protocols: ['realtime', `openai-insecure-api-key.${userKey}`] });
    const greeting = nextMessage(ws);
    await opened(ws);
    expect(ws.protocol).toBe('realtime');
    expect(await greeting).toEqual({ type: 'session.created', session: { model: 'gpt-realtime' } });

    const upgrade = fake.wsConnections[0]!;
    expect(upgrade.protocol).toBe('realtime');
    expect(upgrade.headers['sec-websocket-protocol']).toBe('realtime');
    expect(upgrade.headers.authorization).toBe(`Bearer ${POOL_KEY}`);
    expect(JSON.stringify(upgrade.headers)).not.toContain(userKey);
  });
});

describe('responses over a WebSocket', () => {
  it('upgrades GET /v1/responses and carries messages both ways', async () => {
    const ws = connectTo('/v1/responses', { headers: bearer() });
    await opened(ws);
    const create = JSON.stringify({ type: 'response.create', model: 'gpt-4o-mini', input: 'Hi' });
    const created = nextMessage(ws);
    ws.send(create);
    expect(await created).toMatchObject({ type: 'response.created', response: { model: 'gpt-4o-mini' } });
    expect(fake.wsMessages).toEqual([{ path: '/v1/responses', data: create }]);
    expect(fake.wsConnections.map((c) => [c.url, c.headers.authorization])).toEqual([['/v1/responses', `Bearer ${POOL_KEY}`]]);
  });
});

describe('refused upgrades', () => {
  it('answers an unknown key with 401 before any upstream connection', async () => {
    const answer = await refusal(connectTo('/v1/realtime?model=gpt-realtime', { headers: { authorization: 'Bearer sk-kr-unknown0123456789012345678901234' } }));
    expect(answer).toEqual({
      status: 401,
      body: {
        error: {
          message: 'Incorrect API key provided. Use a key issued by this keyrelay gateway.',
          type: 'invalid_request_error',
          param: null,
          code: 'invalid_api_key',
        },
      },
    });
    expect(tap.connections).toHaveLength(0);
    expect(fake.wsConnections).toHaveLength(0);
  });

  it('answers other paths with 404', async () => {
    for (const path of ['/v1/chat/completions', '/v1/realtime/calls', '/v1/responses/resp_test1']) {
      const answer = await refusal(connectTo(path, { headers: bearer() }));
      expect(answer.status, path).toBe(404);
      expect(answer.body, path).toMatchObject({ error: { type: 'invalid_request_error', code: 'unknown_url' } });
    }
    expect(tap.connections).toHaveLength(0);
  });
});

describe('a client that closes', () => {
  it('closes the upstream connection after a close handshake', async () => {
    const ws = connectTo('/v1/responses', { headers: bearer() });
    await opened(ws);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.close(1000, 'bye');
    // The close frame came back from the upstream through the gateway.
    expect(await closed).toBe(1000);
    await tap.connections[0]!.closed;
  });

  it('closes the upstream connection when it drops without one', async () => {
    const ws = connectTo('/v1/realtime?model=gpt-realtime', { headers: bearer() });
    const greeting = nextMessage(ws);
    await opened(ws);
    await greeting;
    expect(tap.connections).toHaveLength(1);
    ws.terminate();
    await tap.connections[0]!.closed;
  });
});
