// An upstream (or a proxy in front of it) that echoes the request's headers in its answer would
// hand the pool key to the user: key material in answer header values is masked on every HTTP
// answer, as it is in error bodies and in the 101 of a WebSocket (hostile-websocket-headers).
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeUpstream, type RecordedRequest, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';

const POOL_KEY = 'sk-pool-echoed-headers-00000042';
const MASKED = 'Bearer sk-***0042';

let fake: FakeUpstream;
let gateway: TestGateway;
let userKey: string;

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  userKey = await gateway.createUserKey('echo-user');
  registerSecret(userKey);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});
beforeEach(() => fake.reset());

const echo = (req: RecordedRequest) => ({ 'x-echo-authorization': String(req.headers.authorization), 'x-echo-list': [`a ${POOL_KEY}`, 'b'] });

async function call(path: string, body?: object) {
  const res = await request(`${gateway.url}${path}`, {
    method: body ? 'POST' : 'GET',
    headers: { authorization: `Bearer ${userKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

function expectMasked(headers: Record<string, string | string[] | undefined>): void {
  expect(JSON.stringify(headers)).not.toContain(POOL_KEY);
  expect(headers['x-echo-authorization']).toBe(MASKED);
  expect(headers['x-echo-list']).toEqual(['a sk-***0042', 'b']);
}

describe('an answer that echoes the pool key in a header', () => {
  it('a JSON answer', async () => {
    fake.handle((req) => ({ status: 200, headers: echo(req), body: { object: 'list', data: [] } }));
    const res = await call('/v1/models');
    expect(res.status).toBe(200);
    expectMasked(res.headers);
  });

  it('a streamed answer', async () => {
    fake.handle((req) => ({ status: 200, headers: { ...echo(req), 'content-type': 'text/event-stream' }, chunks: sseEvents([{ id: 'x' }]) }));
    const res = await call('/v1/chat/completions', { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    expect(res.status).toBe(200);
    expectMasked(res.headers);
  });

  it("the upstream's own error answer", async () => {
    fake.handle((req) => ({ status: 400, headers: echo(req), body: { error: { message: 'bad', type: 'invalid_request_error', param: null, code: null } } }));
    const res = await call('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    expect(res.status).toBe(400);
    expectMasked(res.headers);
  });
});
