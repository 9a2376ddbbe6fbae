// Attacks on the cap of requests in flight (src/inbound/request-cap.ts): every way a request can
// end, or never properly start, must give its place back, or a client could starve every other
// user with a handful of sockets. The count is read from /metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { holdMark, holdUntilReleased } from './helpers/held-requests.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { until } from './helpers/quota-fixture.js';
import { type RawAnswer, openConnection, rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-attack9-cap-00000000001';
const CAP = 3;
const FAST_MS = 5000;

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;
const held = new Set<() => void>();

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  fake.handle(async (req) => {
    if (holdMark(req) !== undefined) await holdUntilReleased(req, held);
    return undefined;
  });
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: { inbound: { maxRequestsInFlight: CAP, idleMs: 1000 } as never },
  });
  key = await gateway.createUserKey('mallory');
  registerSecret(key);
}, 30_000);

afterAll(async () => {
  for (const release of held) release();
  await gateway.close();
  await fake.close();
});

async function inFlight(): Promise<number> {
  const res = await fetch(`${gateway.url}/metrics`);
  return sampleValue(parsePrometheusText(await res.text()), 'keyrelay_inbound_requests_in_flight');
}

async function relayed(): Promise<number> {
  const res = await fetch(`${gateway.url}/metrics`);
  return sampleValue(parsePrometheusText(await res.text()), 'keyrelay_requests_in_flight');
}

const chat = (hold?: string) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], metadata: hold ? { hold } : {} });

function post(body: string, extra = ''): string {
  return `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\n${extra}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('pipelined requests on one keep-alive socket', () => {
  it('give back every place, and their upstream requests end, when the client goes away while the first is held', async () => {
    const before = held.size;
    const connection = await openConnection(gateway.port);
    // The second is relayed at once too, but its answer waits behind the first's.
    // The third goes through Fastify rather than the lane.
    connection.socket.write(post(chat('ok')) + post(chat('ok')) + `GET /admin/users HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
    await until(() => held.size === before + 2, 'the fake to hold the first two');
    await until(async () => (await inFlight()) === 3, 'the three to be counted');
    connection.socket.destroy();
    await until(async () => (await inFlight()) === 0, 'every place to be given back', FAST_MS);
    // The queued answer's upstream request is given up as the first one's is.
    await until(() => held.size === before, 'the upstream requests to end', FAST_MS);
    await until(async () => (await relayed()) === 0, 'no request relayed any more', FAST_MS);
  });
});

/** Fills every place with requests the fake holds. */
async function fill(): Promise<Array<Promise<RawAnswer>>> {
  const before = held.size;
  const answers = Array.from({ length: CAP }, () => rawRequest(gateway.port, post(chat('ok'), 'connection: close\r\n'), 60_000));
  await until(() => held.size === before + CAP, 'the fake to hold the requests');
  return answers;
}

async function releaseAll(answers: Array<Promise<RawAnswer>>): Promise<void> {
  for (const release of [...held]) release();
  for (const answer of answers) expect((await answer).status).toBe(200);
  await until(async () => (await inFlight()) === 0, 'every place to be given back', FAST_MS);
}

function expectOpenAIError(answer: RawAnswer, status: number, code: string): void {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toBe('application/json');
  const body = JSON.parse(answer.body);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error.code).toBe(code);
  expect(answer.raw).not.toContain(POOL_KEY);
  expect(answer.raw).not.toContain(key);
}

describe('refusals before any handler give their place back (or never take one)', () => {
  it('a 401, a preflight, a HEAD, a 417, a 431, a WebSocket upgrade on a plain route, an h2c offer', async () => {
    expectOpenAIError(await rawRequest(gateway.port, `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-kr-wrong-${'x'.repeat(40)}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`), 401, 'invalid_api_key');
    await rawRequest(gateway.port, 'OPTIONS /v1/chat/completions HTTP/1.1\r\nhost: x\r\norigin: https://evil.example\r\naccess-control-request-method: POST\r\nconnection: close\r\n\r\n');
    const head = await rawRequest(gateway.port, `HEAD /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\nconnection: close\r\n\r\n`);
    expect(head.body).toBe('');
    expectOpenAIError(await rawRequest(gateway.port, `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\neXpEcT: X-Foo\r\ncontent-length: 2\r\n\r\n{}`), 417, 'invalid_header');
    const many = Array.from({ length: 101 }, (_, i) => `x-f-${i}: ${i}\r\n`).join('');
    expectOpenAIError(await rawRequest(gateway.port, `GET /v1/models HTTP/1.1\r\nhost: x\r\n${many}\r\n`), 431, 'invalid_header');
    const ws = `upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nauthorization: Bearer ${key}\r\n`;
    expectOpenAIError(await rawRequest(gateway.port, `GET /v1/chat/completions HTTP/1.1\r\nhost: x\r\n${ws}\r\n`), 404, 'unknown_url');
    const h2c = await rawRequest(gateway.port, `GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\nauthorization: Bearer ${key}\r\n\r\n`);
    expect(h2c.status).toBe(200);
    await until(async () => (await inFlight()) === 0, 'every place to be given back', FAST_MS);
  });

  it('Expect: 100-continue whose body never comes: the place is held until the silence clock closes it, then given back', async () => {
    const connection = await openConnection(gateway.port);
    connection.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 100\r\n\r\n`);
    await until(() => connection.received().startsWith('HTTP/1.1 100 Continue'), 'the 100 Continue', FAST_MS);
    await connection.closed;
    await until(async () => (await inFlight()) === 0, 'the place to be given back', FAST_MS);
  });
});

describe('health routes written otherwise while the process is full', () => {
  it('only the exact paths (with any query) skip the cap; escaped, doubled, trailing-slash and absolute-form ones are counted like any request', async () => {
    const answers = await fill();
    for (const target of ['/healthz?x=1', '/metrics?format=text']) {
      expect((await rawRequest(gateway.port, `GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`)).status, target).not.toBe(503);
    }
    // Readiness is answered by its route, which says the process is saturated: not the cap's refusal.
    const ready = await rawRequest(gateway.port, 'GET /readyz? HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    expect(JSON.parse(ready.body)).toMatchObject({ status: 'not_ready', saturated: [{ limit: 'requests' }] });
    for (const target of ['/%68ealthz', '//healthz', '/healthz/', 'http://x/healthz', '/healthz#x', '/v1/../healthz']) {
      expectOpenAIError(await rawRequest(gateway.port, `GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`), 503, 'server_overloaded');
    }
    await releaseAll(answers);
    // Not full: none of them is anything but the health route or an OpenAI-shaped 400.
    for (const target of ['//healthz', '/healthz/', 'http://x/healthz', '/v1/../healthz']) {
      expectOpenAIError(await rawRequest(gateway.port, `GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`), 400, 'invalid_path');
    }
    expect((await rawRequest(gateway.port, 'GET /%68ealthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')).status).toBe(200);
    await until(async () => (await inFlight()) === 0, 'every place to be given back', FAST_MS);
  });

  it('a refused request with a chunked body, or one announced large, is not read: answered, then closed', async () => {
    const answers = await fill();
    const chunked = await openConnection(gateway.port);
    chunked.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ntransfer-encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n`);
    const refused = await chunked.closed;
    expectOpenAIError(refused, 503, 'server_overloaded');
    expect(refused.headers.connection).toBe('close');
    await releaseAll(answers);
  });
});

describe('header fields at the limit and one over', () => {
  const upgrade = (fields: number) => {
    const lines = ['host: x', 'upgrade: websocket', 'connection: Upgrade', 'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version: 13', `authorization: Bearer ${key}`];
    for (let i = lines.length; i < fields; i++) lines.push(`x-field-${i}: ${i}`);
    return `GET /v1/responses HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
  };

  it('a WebSocket upgrade with exactly maxHeadersCount (100) fields opens; with 101 it is an OpenAI-shaped 431', async () => {
    const at = await openConnection(gateway.port);
    at.socket.write(upgrade(100));
    await until(() => at.received().includes('\r\n\r\n'), 'the answer to the upgrade', FAST_MS);
    expect(at.received().startsWith('HTTP/1.1 101')).toBe(true);
    at.socket.destroy();
    expectOpenAIError(await rawRequest(gateway.port, upgrade(101)), 431, 'invalid_header');
    await until(async () => (await inFlight()) === 0, 'no place held', FAST_MS);
  });

  it('two Expect fields, 100-continue and another: met as 100-continue, and neither goes upstream', async () => {
    const before = fake.requests.length;
    const body = chat();
    const answer = await rawRequest(gateway.port, post(body, 'expect: 100-continue\r\nexpect: x-other\r\nconnection: close\r\n'));
    expect(answer.raw).toContain('HTTP/1.1 200 OK');
    const sent = fake.requests.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.headers.expect).toBeUndefined();
  });
});
