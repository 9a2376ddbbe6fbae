// A WebSocket upgrade's log lines escape and cut what the client chose, as the HTTP access line
// does (src/observability/escape.ts): a `?model=` or User-Agent with C1 controls, a right-to-left
// override or 8,000 characters gives bounded lines of visible text, whether the upgrade opened or
// was refused.
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { capturedLines, registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-websocket-logs-0123456789';
// Raw characters that must never reach a line: C0, C1 (U+0085 NEL, U+009B CSI), U+2028, bidi.
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
// The HTTP access line's bound (test/observability-hostile-values.test.ts).
const LINE_BOUND = 4096;

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;
let limitedKey: string;
const clients: WebSocket[] = [];

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream({ keys: [POOL_KEY] });
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  userKey = await gateway.createUserKey('ws-log-user');
  limitedKey = await gateway.createUserKey('ws-log-limited', { models: ['gpt-realtime'] });
  registerSecret(userKey);
  registerSecret(limitedKey);
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
});

/** Tries an upgrade; resolves its status (101 when it opened) and the gateway's request id. */
function upgrade(path: string, key: string, userAgent = 'ws-test'): Promise<{ status: number; requestId: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}${path}`, { headers: { authorization: `Bearer ${key}`, 'user-agent': userAgent } });
  clients.push(ws);
  const answer = (res: IncomingMessage) => ({ status: res.statusCode ?? 0, requestId: String(res.headers['x-keyrelay-request-id']) });
  return new Promise((resolve, reject) => {
    ws.once('upgrade', (res: IncomingMessage) => resolve(answer(res)));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      res.resume();
      resolve(answer(res));
    });
    ws.once('error', reject);
  });
}

/** The raw text of the line about this upgrade that carries `message`. */
async function rawLine(requestId: string, message: string): Promise<string> {
  const find = () => capturedLines().filter((l) => l.includes(requestId) && l.includes(`"msg":"${message}"`));
  await until(() => find().length > 0, `the "${message}" line of ${requestId}`);
  const lines = find();
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

function checkBounded(raw: string): Record<string, unknown> {
  expect(raw.length).toBeLessThan(LINE_BOUND);
  expect(raw).not.toMatch(RAW_CONTROL);
  return JSON.parse(raw) as Record<string, unknown>;
}

const query = (model: string) => `?model=${encodeURIComponent(model)}`;

describe('the lines of a WebSocket upgrade', () => {
  it('opened: a model with C1 controls and a right-to-left override, a C1 User-Agent: escaped', async () => {
    const model = 'gpt-realtime\u0085\u009b[2J\u202eevil';
    // Header bytes 0x80-0xff are obs-text: Node reads them as latin1, so 0x9b arrives as U+009B.
    const opened = await upgrade(`/v1/realtime${query(model)}`, userKey, 'agent\u009b2J\u0085');
    expect(opened.status).toBe(101);
    const line = checkBounded(await rawLine(opened.requestId, 'websocket opened'));
    expect(line.model).toBe('gpt-realtime\\x85\\x9b[2J\\u202eevil');
    expect(line.userAgent).toBe('agent\\x9b2J\\x85');
    expect(line).toMatchObject({ requestId: opened.requestId, userId: 'ws-log-user', method: 'GET', route: '/v1/realtime' });
  });

  it('refused: an 8,000-character model is cut, with the length it had', async () => {
    const model = `\u009b\u202e${'m'.repeat(8000)}`;
    const refused = await upgrade(`/v1/realtime${query(model)}`, userKey);
    expect(refused.status).toBe(400);
    const line = checkBounded(await rawLine(refused.requestId, 'websocket refused'));
    expect(line).toMatchObject({ requestId: refused.requestId, userId: 'ws-log-user', route: '/v1/realtime', status: 400 });
    expect(String(line.model).startsWith(`\\x9b\\u202e${'m'.repeat(100)}`)).toBe(true);
    expect(String(line.model).endsWith(`…[${model.length} chars]`)).toBe(true);
    expect(String(line.model).length).toBeLessThan(300);
  });

  it('refused: a model the user may not use is escaped in the line', async () => {
    const model = 'gpt-4o\u0085\u202e';
    const refused = await upgrade(`/v1/realtime${query(model)}`, limitedKey);
    expect(refused.status).toBe(403);
    const line = checkBounded(await rawLine(refused.requestId, 'websocket refused'));
    expect(line).toMatchObject({ userId: 'ws-log-limited', route: '/v1/realtime', model: 'gpt-4o\\x85\\u202e', code: 'model_not_allowed' });
  });

  it('refused: an unknown 6,000-character path is cut in the line', async () => {
    const path = `/v1/${'p'.repeat(6000)}`;
    const refused = await upgrade(`${path}${query('gpt-realtime\u0085')}`, userKey);
    expect(refused.status).toBe(404);
    const line = checkBounded(await rawLine(refused.requestId, 'websocket refused'));
    expect(String(line.route).endsWith(`…[${path.length} chars]`)).toBe(true);
    expect(line.model).toBe('gpt-realtime\\x85');
  });
});
