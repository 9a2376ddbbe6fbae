// A hostile model name cannot hold the gateway: names are bounded (400 past 256 characters) and
// model globs match without backtracking, so a glob of many stars against a long name is answered
// at once while /healthz keeps answering. The gateway runs in a process of its own, so that a
// gateway stuck matching fails these tests by their time bounds instead of stalling the runner.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globMatcher } from '../src/glob.js';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-hostile-models-000001';
// Generous: a bounded match answers in milliseconds; a backtracking one took seconds at 200 characters.
const BOUND_MS = 5000;
// `^a.*a.*…b$` backtracks over every way of placing the stars: C(n, 12) tries for n `a`s.
const MANY_STARS = `${'a*'.repeat(12)}b`;

let fake: FakeUpstream;
let gateway: ChildGateway;
let key: string;

async function admin(method: string, path: string, body?: unknown) {
  const res = await fetch(`${gateway.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  gateway = await startChildGateway({ OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl });
  expect((await admin('POST', '/users', { id: 'globbed', models: [MANY_STARS, 'gpt-*-mini*'] })).status).toBe(201);
  key = (await admin('POST', '/users/globbed/keys', {})).json.key as string;
  registerSecret(key);
});

afterAll(async () => {
  // A gateway stuck in a match never runs its SIGTERM handler.
  const stopped = gateway?.stop();
  const timer = setTimeout(() => gateway?.child.kill('SIGKILL'), BOUND_MS);
  await stopped;
  clearTimeout(timer);
  await fake?.close();
});

async function chat(model: string) {
  const res = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }] }),
    signal: AbortSignal.timeout(BOUND_MS),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** The hostile request, and /healthz asked while it is on its way. */
async function withHealth(model: string) {
  const answer = chat(model);
  const health = fetch(`${gateway.url}/healthz`, { signal: AbortSignal.timeout(BOUND_MS) });
  const [a, h] = await Promise.all([answer, health]);
  return { answer: a, health: h.status };
}

describe('a model name past 256 characters', () => {
  it('is refused with 400 on param model, at once, and never reaches the upstream', async () => {
    fake.reset();
    const { answer, health } = await withHealth('a'.repeat(60_000));
    expect(answer).toEqual({
      status: 400,
      json: { error: { message: '`model` must be at most 256 characters.', type: 'invalid_request_error', param: 'model', code: 'invalid_request' } },
    });
    expect(health).toBe(200);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('a glob of many stars', () => {
  it('against a name of 256 characters that it does not match: 403 at once, /healthz answering', async () => {
    fake.reset();
    const { answer, health } = await withHealth('a'.repeat(256));
    expect(answer.status).toBe(403);
    expect(answer.json.error.code).toBe('model_not_allowed');
    expect(health).toBe(200);
    expect(fake.requests).toHaveLength(0);
  });

  it('still lets through the names it matches', async () => {
    fake.reset();
    expect((await chat(`${'a'.repeat(200)}b`)).status).toBe(200);
    expect((await chat('gpt-4o-mini-2024-07-18')).status).toBe(200);
    expect((await chat('gpt-4o')).status).toBe(403);
    expect(fake.requests).toHaveLength(2);
  });

  it('matches a 60,000-character name in bounded work wherever globs are used (pool, prices)', () => {
    const name = 'a'.repeat(60_000);
    expect(globMatcher(MANY_STARS)(name)).toBe(false);
    expect(globMatcher(`*${'a?'.repeat(100)}b*`)(name)).toBe(false);
    expect(globMatcher(`a*${'a'.repeat(150)}*a`)(name)).toBe(true);
  });

  it('agrees with the regular expression it replaces on every small case', () => {
    const regexOf = (glob: string) => new RegExp(`^${glob.replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    const words = (alphabet: string, max: number): string[] => {
      const out = [''];
      for (let i = 0; i < out.length; i++) if ((out[i] as string).length < max) for (const c of alphabet) out.push(out[i] + c);
      return out;
    };
    const names = words('ab', 5);
    const disagreements: string[] = [];
    for (const glob of words('ab*?', 4)) {
      const match = globMatcher(glob);
      const regex = regexOf(glob);
      for (const name of names) if (match(name) !== regex.test(name)) disagreements.push(`${glob} ${name}`);
    }
    expect(disagreements).toEqual([]);
  });
});

describe('the model of a WebSocket upgrade', () => {
  const upgrade = (query: string) =>
    rawRequest(
      Number(new URL(gateway.url).port),
      `GET /v1/realtime?${query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      BOUND_MS,
    );

  it('is bounded as in a body', async () => {
    const answer = await upgrade(`model=${'a'.repeat(60_000)}`);
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: '`model` must be at most 256 characters.', type: 'invalid_request_error', param: 'model', code: 'invalid_request' },
    });
  });

  it('given twice is refused: the gateway would check one and the upstream might use the other', async () => {
    fake.reset();
    const answer = await upgrade('model=gpt-4o-mini&model=gpt-4o');
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: 'The query gives `model` more than once.', type: 'invalid_request_error', param: 'model', code: 'invalid_request' },
    });
    expect(fake.wsConnections).toHaveLength(0);
  });
});
