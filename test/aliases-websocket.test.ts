// A realtime WebSocket upgrade names its model in the query: an alias there is checked and routed
// by its public name, and the upstream's handshake carries the target, the rest of the query as sent.
// Events that name a model (a Responses socket's `response.create`, a realtime `session.update`'s
// model and transcription model) are checked by the alias and sent with the target in its place,
// every other byte as the client wrote it; the response is priced as the target.
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { FAKE_RESPONSES_USAGE, type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { normalizeUsage } from '../src/quota/usage.js';
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
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl }, config: { aliases: { voice: 'gpt-realtime', fast: 'gpt-4o-mini', scribe: 'gpt-4o-transcribe' } } });
  userKey = await gateway.createUserKey('ws-alias-user', { models: ['voice', 'fast', 'scribe'], limits: { usdPerDay: 100 } });
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

/** The next event of `type` the client gets. */
const nextOf = (ws: WebSocket, type: string): Promise<any> =>
  new Promise((resolve) => {
    const on = (data: unknown) => {
      const event = JSON.parse(String(data));
      if (event.type !== type) return;
      ws.off('message', on);
      resolve(event);
    };
    ws.on('message', on);
  });

const opened = (ws: WebSocket): Promise<void> => new Promise((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
const sentUpstream = (path: string): string[] => fake.wsMessages.filter((m) => m.path === path).map((m) => m.data);

describe('a Responses socket create with an alias', () => {
  it('is sent as the target, every other byte as written, and priced as the target', async () => {
    const ws = connectTo('/v1/responses');
    await opened(ws);
    const before = (await gateway.admin('GET', '/users/ws-alias-user')).json.usage.day.usdMicros;
    const create = '{"type":"response.create",  "input":"Say hi.\u00e9", "max_output_tokens":50,"model" : "f\\u0061st", "metadata":{"model":"fast"}}';
    const done = nextOf(ws, 'response.completed');
    ws.send(create);
    expect((await done).response.model).toBe('gpt-4o-mini');
    expect(sentUpstream('/v1/responses')).toEqual([create.replace('"f\\u0061st"', '"gpt-4o-mini"')]);
    const price = new PriceTable().lookup('gpt-4o-mini')!;
    await expect.poll(async () => (await gateway.admin('GET', '/users/ws-alias-user')).json.usage.day.usdMicros - before).toBe(costMicros(price, normalizeUsage(FAKE_RESPONSES_USAGE)!));
  });

  it('refuses the target to a user allowed only the alias, relaying nothing', async () => {
    const ws = connectTo('/v1/responses');
    await opened(ws);
    const error = nextOf(ws, 'error');
    ws.send(JSON.stringify({ type: 'response.create', model: 'gpt-4o-mini', input: 'hi' }));
    expect(await error).toMatchObject({ code: 'model_not_allowed', param: 'model' });
    expect(sentUpstream('/v1/responses')).toEqual([]);
  });
});

describe('a realtime session.update with an alias', () => {
  it('sends the session model and the transcription model as their targets', async () => {
    const ws = connectTo('/v1/realtime?model=voice');
    await nextMessage(ws);
    const update = '{"type":"session.update","session":{"model":"voice","instructions":"voice","audio":{"input":{"transcription":{"model":"scribe"}}},"input_audio_transcription":{"model":"scribe"}}}';
    const updated = nextOf(ws, 'echo');
    ws.send(update);
    await updated;
    expect(sentUpstream('/v1/realtime')).toEqual([
      '{"type":"session.update","session":{"model":"gpt-realtime","instructions":"voice","audio":{"input":{"transcription":{"model":"gpt-4o-transcribe"}}},"input_audio_transcription":{"model":"gpt-4o-transcribe"}}}',
    ]);
  });

  it('refuses a target the user may not name, relaying nothing', async () => {
    const ws = connectTo('/v1/realtime?model=voice');
    await nextMessage(ws);
    const error = nextOf(ws, 'error');
    ws.send(JSON.stringify({ type: 'session.update', session: { audio: { input: { transcription: { model: 'gpt-4o-transcribe' } } } } }));
    expect((await error).error).toMatchObject({ code: 'model_not_allowed' });
    expect(sentUpstream('/v1/realtime')).toEqual([]);
  });
});

describe('withQueryModel', () => {
  it('replaces only the model value', () => {
    expect(withQueryModel('?model=a', 'b/c d')).toBe('?model=b%2Fc%20d');
    expect(withQueryModel('?a=1&model=x&b=%zz', 'y')).toBe('?a=1&model=y&b=%zz');
    expect(withQueryModel('', 'y')).toBe('');
  });
});
