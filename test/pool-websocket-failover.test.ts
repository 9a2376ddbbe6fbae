// WebSocket handshakes fail over as HTTP requests do: an upstream that refuses the upgrade for its
// key (here 401) is recorded against that key and the handshake goes to another before the client
// hears anything; a refusal that stands reaches the client with its own status, masked.
import type { IncomingMessage } from 'node:http';
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type PoolFixture, poolSecret, startPool } from './helpers/pool-fixture.js';

let pool: PoolFixture | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

function connect(p: PoolFixture): WebSocket {
  return new WebSocket(`ws://127.0.0.1:${p.gateway.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${p.userKey}` } });
}

it('opens through another key when the first key is refused', async () => {
  // The fake takes only `b`'s key: `a`'s handshake is refused with OpenAI's 401.
  const p = (pool = await startPool({ keys: ['a', 'b'], fakeOptions: { keys: [poolSecret('b')] } }));
  const ws = connect(p);
  const greeting = await new Promise<unknown>((resolve, reject) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data))));
    ws.once('error', reject);
  });
  expect(greeting).toEqual({ type: 'session.created', session: { model: 'gpt-realtime' } });
  expect(p.fake.wsConnections.map((c) => c.headers.authorization)).toEqual([`Bearer ${poolSecret('b')}`]);
  expect(await p.poolKey('a')).toMatchObject({ state: 'disabled', reason: 'invalid_api_key', failures: 1 });
  const opened = p.gateway.logs.find((l) => l.msg === 'websocket opened');
  expect(opened).toMatchObject({ poolKeyId: 'b', retries: 1 });
  ws.close();
});

it("passes the upstream's refusal on, masked, when no key is accepted", async () => {
  const p = (pool = await startPool({ keys: ['a', 'b'], fakeOptions: { keys: ['sk-some-other-key-0123456789'] } }));
  const ws = connect(p);
  const refusal = await new Promise<{ status?: number; body: unknown }>((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('error', () => {});
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += String(chunk)));
      res.once('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
    });
  });
  expect(refusal).toEqual({
    status: 401,
    body: {
      error: {
        message: 'Incorrect API key provided: sk-***mnBx. You can find your API key at https://platform.openai.com/account/api-keys.',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    },
  });
  expect(p.fake.wsConnections).toEqual([]);
  ws.terminate();
});
