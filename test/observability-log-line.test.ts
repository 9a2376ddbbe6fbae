// The access log: every request through a real gateway gives exactly one `request` line, with the
// fields the README lists (ids, user, key, pool key, method, route, model, stream, status,
// outcome, retries, time to first byte, duration, tokens, cost, bytes in and out), whether it was
// relayed, streamed, refused before the relay, or not an API request at all.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAKE_COMPLETION_TOKENS, promptTokens } from '../src/dev/fake-openai-answers.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { PriceTable, costMicros } from '../src/quota/prices.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';

const POOL_KEY = 'sk-pool-logline-0123456789abcdef';
// A second key: with one there is nothing to choose, and no line says affinity.
const SECOND_POOL_KEY = 'sk-pool-logline-fedcba9876543210';
registerSecret(POOL_KEY);
registerSecret(SECOND_POOL_KEY);
registerSecret(ADMIN_TOKEN);

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;

beforeAll(async () => {
  fake = await startFakeUpstream();
  gateway = await startGateway({ env: { OPENAI_API_KEYS: `${POOL_KEY},${SECOND_POOL_KEY}`, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
  key = await gateway.createUserKey('alice', { limits: { rpm: 1000 } });
  registerSecret(key);
});
afterAll(async () => {
  await gateway.close();
  await fake.close();
});

/** Every line that names this request, once its `request` line has been written. */
async function linesOf(requestId: string): Promise<Array<Record<string, unknown>>> {
  await until(() => gateway.logs.some((l) => l.requestId === requestId && l.msg === 'request'), `the line of ${requestId}`);
  return gateway.logs.filter((l) => l.requestId === requestId || l.reqId === requestId);
}

async function send(path: string, options: { method?: string; key?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const res = await request(`${gateway.url}${path}`, {
    method: (options.method ?? (payload ? 'POST' : 'GET')) as 'GET',
    headers: {
      ...(options.key === undefined ? {} : { authorization: `Bearer ${options.key}` }),
      ...(payload ? { 'content-type': 'application/json' } : {}),
      ...options.headers,
    },
    body: payload,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, bytesIn: payload ? Buffer.byteLength(payload) : undefined, id: String(res.headers['x-keyrelay-request-id']) };
}

const price = new PriceTable({}).lookup('gpt-4o-mini');

describe('one line per request', () => {
  it('a relayed chat request: every field of the contract', async () => {
    const messages = [{ role: 'user', content: 'Say hello to the log.' }];
    const sent = await send('/v1/chat/completions', {
      key,
      body: { model: 'gpt-4o-mini', messages, user: 'end-user-7' },
      headers: { 'user-agent': 'log-test/1.0' },
    });
    expect(sent.status).toBe(200);
    const usage = { input: promptTokens(messages), cachedInput: 0, output: FAKE_COMPLETION_TOKENS };
    const micros = costMicros(price as NonNullable<typeof price>, usage);
    const lines = await linesOf(sent.id);
    expect(lines).toEqual([
      {
        level: 30,
        time: expect.any(String),
        service: 'keyrelay',
        pid: process.pid,
        msg: 'request',
        requestId: sent.id,
        upstreamRequestId: sent.headers['x-request-id'],
        userId: 'alice',
        keyId: expect.stringMatching(/^key_/),
        poolKeyId: expect.stringMatching(/^env-[12]$/),
        upstream: 'default',
        // The body's `user` chose the pool key (docs/key-pool.md, Prompt cache affinity).
        affinity: 'user',
        method: 'POST',
        route: '/v1/chat/completions',
        operation: 'createChatCompletion',
        model: 'gpt-4o-mini',
        endUser: 'end-user-7',
        userAgent: 'log-test/1.0',
        stream: false,
        status: 200,
        outcome: 'ok',
        retries: 0,
        ttfbMs: expect.any(Number),
        durationMs: expect.any(Number),
        bytesIn: sent.bytesIn,
        bytesOut: Buffer.byteLength(sent.text),
        tokens: { ...usage, estimated: false, total: usage.input + usage.output },
        costUsd: micros / 1e6,
        costMicros: micros,
      },
    ]);
    expect(sent.headers['x-request-id']).toMatch(/^req_/);
  });

  it('a streamed request: stream true and the tokens the stream reported', async () => {
    const messages = [{ role: 'user', content: 'Stream to the log, please.' }];
    const sent = await send('/v1/chat/completions', { key, body: { model: 'gpt-4o-mini', messages, stream: true } });
    expect(sent.status).toBe(200);
    const [line, ...others] = await linesOf(sent.id);
    expect(others).toEqual([]);
    expect(line).toMatchObject({
      route: '/v1/chat/completions',
      stream: true,
      status: 200,
      outcome: 'ok',
      tokens: { input: promptTokens(messages), output: FAKE_COMPLETION_TOKENS, estimated: false },
      bytesOut: Buffer.byteLength(sent.text),
    });
    expect(line?.ttfbMs as number).toBeLessThanOrEqual(line?.durationMs as number);
  });

  it('a request refused before the relay: the refusal, without user or tokens', async () => {
    const sent = await send('/v1/chat/completions', { key: 'sk-kr-NotAKeyOfThisGateway0123456789abcd', body: { model: 'gpt-4o-mini', messages: [] } });
    expect(sent.status).toBe(401);
    expect(await linesOf(sent.id)).toEqual([
      {
        level: 30,
        time: expect.any(String),
        service: 'keyrelay',
        pid: process.pid,
        msg: 'request',
        requestId: sent.id,
        method: 'POST',
        route: '/v1/chat/completions',
        operation: 'createChatCompletion',
        stream: false,
        status: 401,
        outcome: 'auth_failed',
        errorCode: 'invalid_api_key',
        // Why, for the admin: the client got the one 401.
        errorMessage: 'unknown key',
        retries: 0,
        durationMs: expect.any(Number),
        bytesIn: sent.bytesIn,
        bytesOut: Buffer.byteLength(sent.text),
      },
    ]);
  });

  it('a limit refusal after the body was read: with the user and the model', async () => {
    const limited = await gateway.createUserKey('limited', { limits: { rpm: 1 } });
    registerSecret(limited);
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
    expect((await send('/v1/chat/completions', { key: limited, body })).status).toBe(200);
    const refused = await send('/v1/chat/completions', { key: limited, body });
    expect(refused.status).toBe(429);
    const [line, ...others] = await linesOf(refused.id);
    expect(others).toEqual([]);
    expect(line).toMatchObject({ userId: 'limited', model: 'gpt-4o-mini', status: 429, outcome: 'quota_rejected', errorCode: 'rate_limit_exceeded' });
    expect(line).not.toHaveProperty('poolKeyId');
  });

  it('an unknown URL, a malformed path and an admin request: one line each', async () => {
    const unknown = await send('/nowhere');
    const malformed = await send('/v1/models%00', { key });
    const admin = await send('/admin/users', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect([unknown.status, malformed.status, admin.status]).toEqual([404, 400, 200]);
    expect((await linesOf(unknown.id)).map((l) => [l.route, l.status, l.outcome])).toEqual([['/nowhere', 404, 'not_found']]);
    expect((await linesOf(malformed.id)).map((l) => [l.status, l.outcome, l.errorCode])).toEqual([[400, 'bad_request', 'invalid_path']]);
    // Admin answers carry no request id header: their line is found by its route.
    await until(() => gateway.logs.some((l) => l.route === '/admin/users' && l.method === 'GET'), 'the admin line');
    const adminLines = gateway.logs.filter((l) => l.route === '/admin/users' && l.method === 'GET');
    expect(adminLines.map((l) => [l.msg, l.status, l.outcome])).toEqual([['request', 200, 'ok']]);
  });

  it('health probes and metric scrapes are not logged', async () => {
    const before = gateway.logs.length;
    await send('/healthz');
    await send('/metrics');
    const marker = await send('/nowhere-marker');
    await linesOf(marker.id);
    expect(gateway.logs.slice(before).map((l) => l.route)).toEqual(['/nowhere-marker']);
  });
});
