// A realtime WebSocket upgrade names its model in the query: an alias there is checked and routed
// by its public name, and the upstream's handshake carries the target, the rest of the query as sent.
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { withQueryModel } from '../src/relay/websocket.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-alias-ws-1';

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;
const clients: WebSocket[] = [];

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl }, config: { aliases: { voice: 'gpt-realtime' } } });
  userKey = await gateway.createUserKey('ws-alias-user', { models: ['voice'] });
  registerSecret(userKey);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
afterEach(() => {
  for (const ws of clients.splice(0)) {
    ws.on('error', () => {});
    if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }
  fake.reset();
});

function connectTo(path: string): WebSocket {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, [], { headers: { authorization: `Bearer ${userKey}` } });
  clients.push(ws);
  return ws;
}

const nextMessage = (ws: WebSocket): Promise<unknown> => new Promise((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data)))));

function refusal(ws: WebSocket): Promise<{ status: number | undefined; body: any }> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += String(chunk)));
      res.once('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
  });
}

describe('a realtime upgrade with an alias', () => {
  it('opens on the target, the rest of the query as the client wrote it', async () => {
    const ws = connectTo('/v1/realtime?x=%20a+b&model=voice&y');
    expect(await nextMessage(ws)).toEqual({ type: 'session.created', session: { model: 'gpt-realtime' } });
    expect(fake.wsConnections.map((c) => c.url)).toEqual(['/v1/realtime?x=%20a+b&model=gpt-realtime&y']);
  });

  it('finds the model parameter however its name is escaped', async () => {
    const ws = connectTo('/v1/realtime?mod%65l=voice');
    expect(await nextMessage(ws)).toEqual({ type: 'session.created', session: { model: 'gpt-realtime' } });
    expect(fake.wsConnections.map((c) => c.url)).toEqual(['/v1/realtime?mod%65l=gpt-realtime']);
  });

  it('refuses the target to a user allowed only the alias, before the upstream hears of it', async () => {
    const answer = await refusal(connectTo('/v1/realtime?model=gpt-realtime'));
    expect(answer.status).toBe(403);
    expect(answer.body.error).toMatchObject({ code: 'model_not_allowed', param: 'model' });
    expect(fake.wsConnections).toHaveLength(0);
  });
});

describe('withQueryModel', () => {
  it('replaces only the model value', () => {
    expect(withQueryModel('?model=a', 'b/c d')).toBe('?model=b%2Fc%20d');
    expect(withQueryModel('?a=1&model=x&b=%zz', 'y')).toBe('?a=1&model=y&b=%zz');
    expect(withQueryModel('', 'y')).toBe('');
  });
});
