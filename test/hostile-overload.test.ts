// More requests than a process takes at once, and request heads larger than it reads: past
// `inbound.maxRequestsInFlight` a request is answered 503 `server_overloaded` at once, before its
// key or body is read, while those admitted go on and the health routes still answer; a place is
// given back however a request ends. Past `maxHeadersCount` or `maxHeaderBytes` the answer is an
// OpenAI-shaped 431.
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { holdMark, holdUntilReleased } from './helpers/held-requests.js';
import { type TestGateway, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { parsePrometheusText, sampleValue } from './helpers/prometheus-text.js';
import { until } from './helpers/quota-fixture.js';
import { type RawAnswer, openConnection, rawRequest } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-overload-000000000001';
const CAP = 3;
const MAX_FIELDS = 40;
const MAX_HEAD_BYTES = 8 * 1024;
// Longest a refusal may take here: a hang fails, a slow shared machine does not.
const FAST_MS = 5000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CHUNK = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: 'x' }, finish_reason: null }] };
const OVERLOADED = {
  error: { message: 'The gateway is at its limit of requests in flight. Try again later.', type: 'server_error', param: null, code: 'server_overloaded' },
};

let fake: FakeUpstream;
let gateway: TestGateway;
let key: string;
let client: OpenAI;
// Requests the fake holds until the test lets them go.
const held = new Set<() => void>();

beforeAll(async () => {
  registerSecret(POOL_KEY);
  fake = await startFakeUpstream();
  // `hold` in the request's metadata: the fake answers only once the test releases it.
  fake.handle(async (req) => {
    const hold = holdMark(req);
    if (hold === undefined) return undefined;
    await holdUntilReleased(req, held);
    // Cut after the first event: the client has its 200 and then a broken stream.
    if (hold === 'fail') return { headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents([CHUNK, CHUNK]), destroyAfterChunks: 1 };
    return undefined;
  });
  gateway = await startGateway({
    env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    config: {
      inbound: { maxRequestsInFlight: CAP, maxHeadersCount: MAX_FIELDS, maxHeaderBytes: MAX_HEAD_BYTES } as never,
      // A stream the upstream cuts must not take the only pool key out of service.
      pool: { health: { failureThreshold: 1_000_000 } } as never,
    },
  });
  key = await gateway.createUserKey('alice');
  registerSecret(key);
  client = new OpenAI({ baseURL: gateway.baseUrl, apiKey: key, maxRetries: 0 });
}, 30_000);

afterAll(async () => {
  for (const release of held) release();
  await gateway.close();
  await fake.close();
});

/** Resolves with `promise`, or fails the test if it takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function metrics(): Promise<ReturnType<typeof parsePrometheusText>> {
  const res = await fetch(`${gateway.url}/metrics`);
  expect(res.status).toBe(200);
  return parsePrometheusText(await res.text());
}

const inFlight = async () => sampleValue(await metrics(), 'keyrelay_inbound_requests_in_flight');
const refusals = async () => sampleValue(await metrics(), 'keyrelay_overload_refusals_total', { limit: 'requests' });

/** A chat request the fake holds (`hold`: 'ok' answers when released, 'fail' cuts the connection). */
function heldChat(hold: 'ok' | 'fail' = 'ok', stream = false, signal?: AbortSignal) {
  return fetch(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream, metadata: { hold } }),
    signal,
  });
}

/** Fills every place with held requests; resolves once the fake holds them all. */
async function fill(count = CAP, hold: 'ok' | 'fail' = 'ok', stream = false, signal?: AbortSignal) {
  const before = held.size;
  const answers = Array.from({ length: count }, () => heldChat(hold, stream, signal));
  for (const answer of answers) answer.catch(() => undefined);
  await until(() => held.size === before + count, 'the fake to hold the requests');
  return answers;
}

function releaseAll(): void {
  for (const release of [...held]) {
    held.delete(release);
    release();
  }
}

async function expectAllFree(): Promise<void> {
  await until(async () => (await inFlight()) === 0, 'every place to be given back');
}

function expectOverloaded(answer: RawAnswer): void {
  expect(answer.status).toBe(503);
  expect(answer.headers['retry-after']).toBe('1');
  expect(answer.headers['content-type']).toBe('application/json');
  expect(answer.headers['x-request-id']).toMatch(UUID);
  expect(JSON.parse(answer.body)).toEqual(OVERLOADED);
}

describe('inbound.maxRequestsInFlight', () => {
  it('answers a request past the cap with a fast 503 server_overloaded the SDK reads, while those admitted are held by the upstream', async () => {
    const answers = await fill();
    const before = await refusals();
    const refused = await within(
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).then(
        () => undefined,
        (err: unknown) => err,
      ),
      FAST_MS,
      'the refusal',
    );
    expect(refused).toBeInstanceOf(OpenAI.InternalServerError);
    const err = refused as InstanceType<typeof OpenAI.InternalServerError>;
    expect(err.status).toBe(503);
    expect(err.code).toBe('server_overloaded');
    expect(err.type).toBe('server_error');
    expect(err.headers.get('retry-after')).toBe('1');
    expect(await refusals()).toBe(before + 1);
    expect(await inFlight()).toBe(CAP);
    // The admitted ones were never disturbed: each gets its whole answer once the upstream gives it.
    releaseAll();
    for (const answer of answers) {
      const res = await answer;
      expect(res.status).toBe(200);
      expect((await res.json()).object).toBe('chat.completion');
    }
    await expectAllFree();
  });

  it('refuses before the key is read and before the body is read', async () => {
    await fill();
    // A wrong key is not looked at: 503, not 401.
    const wrongKey = await rawRequest(gateway.port, 'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer sk-wrong\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
    expectOverloaded(wrongKey);
    // A body that small is read and dropped: the connection stays for the client's next request.
    expect(wrongKey.closed).toBe(false);
    expect(wrongKey.headers.connection).toBe('keep-alive');
    // A body announced at 10 MB of which nothing is sent: answered at once, then closed.
    const connection = await openConnection(gateway.port);
    connection.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\ncontent-length: ${10 * 1024 * 1024}\r\n\r\n`);
    const answer = await within(connection.closed, FAST_MS, 'the refusal of a request whose body never comes');
    expectOverloaded(answer);
    expect(answer.headers.connection).toBe('close');
    releaseAll();
    await expectAllFree();
  });

  it('counts every HTTP route but the health routes, which answer while the process is full', async () => {
    await fill();
    expectOverloaded(await rawRequest(gateway.port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
    expectOverloaded(await rawRequest(gateway.port, 'GET /admin/users HTTP/1.1\r\nhost: x\r\n\r\n'));
    expectOverloaded(await rawRequest(gateway.port, `GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${key}\r\n\r\n`));
    for (const path of ['/healthz', '/metrics', '/healthz?probe=1']) {
      const res = await request(`${gateway.url}${path}`);
      await res.body.text();
      expect(res.statusCode, path).toBe(200);
    }
    // Readiness answers too, and says the process is saturated (test/readiness-saturation.test.ts).
    const ready = await request(`${gateway.url}/readyz`);
    expect(ready.statusCode).toBe(503);
    expect(await ready.body.json()).toMatchObject({ status: 'not_ready', saturated: [{ limit: 'requests', current: CAP, max: CAP }] });
    releaseAll();
    await expectAllFree();
  });

  it('does not count WebSocket sessions, which hold a connection instead', async () => {
    await fill();
    const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/v1/responses`, { headers: { authorization: `Bearer ${key}` } });
    await within(new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject)), FAST_MS, 'the WebSocket to open');
    ws.close();
    releaseAll();
    await expectAllFree();
  });

  it('gives a place back when the answer ends, the client aborts, the upstream fails, or a stream ends', async () => {
    // Answered whole: covered above; here the other three, then the cap admits CAP again.
    const aborts = new AbortController();
    const aborted = await fill(CAP, 'ok', false, aborts.signal);
    aborts.abort();
    await Promise.allSettled(aborted);
    await expectAllFree();

    const failing = await fill(CAP, 'fail', true);
    releaseAll();
    for (const answer of failing) {
      const res = await answer;
      expect(res.status).toBe(200);
      await res.text().catch(() => undefined);
    }
    await expectAllFree();

    // Streams: their places are held until each one's last event.
    const before = held.size;
    const streams = Array.from({ length: CAP }, () =>
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, metadata: { hold: 'ok' } }),
    );
    await until(() => held.size === before + CAP, 'the fake to hold the streams');
    expectOverloaded(await rawRequest(gateway.port, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
    releaseAll();
    for (const stream of streams) {
      const kinds = new Set<string>();
      for await (const event of await stream) kinds.add(event.object);
      expect([...kinds]).toEqual(['chat.completion.chunk']);
    }
    await expectAllFree();

    // Every place is free again: CAP requests at once are admitted.
    const answers = await fill();
    releaseAll();
    for (const answer of answers) expect((await answer).status).toBe(200);
    await expectAllFree();
  });
});

/** Holds this process's event loop, the gateway's included, for `ms`. */
function holdLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('inbound.maxEventLoopDelayMs', () => {
  it('refuses new requests while the event loop is behind, answers the health routes, and admits again once it caught up', async () => {
    const behind = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { inbound: { maxEventLoopDelayMs: 100 } as never },
    });
    try {
      const api = await openConnection(behind.port);
      const health = await openConnection(behind.port);
      api.socket.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      health.socket.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
      // The requests are read after the loop is free again, once the gateway has seen it late.
      holdLoop(500);
      const refused = await within(api.closed, FAST_MS, 'the refusal');
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(JSON.parse(refused.body)).toEqual({
        error: { message: 'The gateway is overloaded. Try again later.', type: 'server_error', param: null, code: 'server_overloaded' },
      });
      expect((await within(health.closed, FAST_MS, 'the health answer')).status).toBe(200);
      await until(async () => (await fetch(`${behind.url}/`)).status === 200, 'the gateway to admit requests again');
      const scraped = parsePrometheusText(await (await fetch(`${behind.url}/metrics`)).text());
      expect(sampleValue(scraped, 'keyrelay_overload_refusals_total', { limit: 'event_loop' })).toBeGreaterThanOrEqual(1);
    } finally {
      await behind.close();
    }
  });
});

describe('inbound.maxEventLoopUtilization', () => {
  it('a process at maxRequestsInFlight with an idle loop is saturated for its requests, not its event loop', async () => {
    const capped = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      // A share of 1 is never passed: the busy limit stays at maxRequestsInFlight.
      config: { inbound: { maxRequestsInFlight: CAP, maxEventLoopUtilization: 1 } as never },
    });
    const userKey = await capped.createUserKey('carol');
    registerSecret(userKey);
    const before = held.size;
    const admitted = Array.from({ length: CAP }, () =>
      fetch(`${capped.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], metadata: { hold: 'ok' } }),
      }),
    );
    try {
      await until(() => held.size === before + CAP, 'the fake to hold the requests');
      const refused = await fetch(`${capped.baseUrl}/models`, { headers: { authorization: `Bearer ${userKey}` } });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toEqual(OVERLOADED);
      const ready = await fetch(`${capped.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { saturated: { limit: string }[] }).saturated.map((r) => r.limit)).toEqual(['requests']);
      const metrics = parsePrometheusText(await (await fetch(`${capped.url}/metrics`)).text());
      expect(sampleValue(metrics, 'keyrelay_overload_refusals_total', { limit: 'event_loop' })).toBe(0);
      expect(sampleValue(metrics, 'keyrelay_inbound_request_limit')).toBe(CAP);
    } finally {
      releaseAll();
      await Promise.all(admitted);
      await capped.close();
    }
  });

  it('lowers the limit under what is in flight while the loop stays busy, refuses new requests fast, serves those in flight, and rises again once the loop has idle time', async () => {
    const busy = await startGateway({
      env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
      config: { inbound: { maxEventLoopUtilization: 0.9 } as never },
    });
    const userKey = await busy.createUserKey('bob');
    registerSecret(userKey);
    const chat = (hold: string | undefined) =>
      fetch(`${busy.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${userKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...(hold ? { metadata: { hold } } : {}) }),
      });
    const scrape = async () => parsePrometheusText(await (await fetch(`${busy.url}/metrics`)).text());
    const limitNow = async () => sampleValue(await scrape(), 'keyrelay_inbound_request_limit');
    let spinning = true;
    let spinner: Promise<void> | undefined;
    try {
      expect(await limitNow()).toBe(5000);
      // One at a time until the fake holds it: on a loaded machine the gateway's own busy loop may
      // refuse one (that is the setting at work), which is then sent again a moment later.
      const holdOne = async (): Promise<{ answer: Promise<Response> }> => {
        for (let attempt = 0; attempt < 100; attempt++) {
          const count = held.size;
          let refused = false;
          const answer = chat('ok');
          answer.then((res) => (refused = res.status === 503), () => undefined);
          const deadline = Date.now() + 15_000;
          while (held.size === count && !refused && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
          if (held.size > count) return { answer };
          if (!refused) throw new Error('the fake did not hold the request');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error('every try was refused');
      };
      const admitted: Promise<Response>[] = [];
      for (let i = 0; i < 20; i++) admitted.push((await holdOne()).answer);
      // Keep the loop busy in 60 ms slices, letting it read sockets and run its timers between
      // them without waiting (an immediate is pending, so it polls without blocking): every window
      // is then busier than 90 %, however slow the machine.
      spinner = (async () => {
        while (spinning) {
          holdLoop(60);
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await until(async () => (await limitNow()) < 20, 'the limit to go under the requests in flight');
      expect(await limitNow()).toBeGreaterThanOrEqual(4);
      const api = await openConnection(busy.port);
      api.socket.write(`GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${userKey}\r\nconnection: close\r\n\r\n`);
      const refused = await within(api.closed, FAST_MS, 'the refusal');
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(JSON.parse(refused.body)).toEqual({
        error: { message: 'The gateway is overloaded. Try again later.', type: 'server_error', param: null, code: 'server_overloaded' },
      });
      const ready = await fetch(`${busy.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { saturated: { limit: string }[] }).saturated.map((r) => r.limit)).toContain('event_loop');
      expect((await fetch(`${busy.url}/healthz`)).status).toBe(200);
      expect(sampleValue(await scrape(), 'keyrelay_overload_refusals_total', { limit: 'event_loop' })).toBeGreaterThanOrEqual(1);
      spinning = false;
      await spinner;
      // The loop has idle time again: the limit rises and a new request is served beside the 20.
      // Asked every 200 ms, so that the asking does not keep the loop busy on a loaded machine.
      const deadline = Date.now() + 60_000;
      let status = 0;
      while (status !== 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        status = (await chat(undefined)).status;
      }
      expect(status).toBe(200);
      expect(await limitNow()).toBeGreaterThan(20);
      releaseAll();
      for (const answer of await Promise.all(admitted)) {
        expect(answer.status).toBe(200);
        expect(((await answer.json()) as { object: string }).object).toBe('chat.completion');
      }
    } finally {
      spinning = false;
      await spinner;
      releaseAll();
      await busy.close();
    }
  });
});

function head(path: string, fields: number, extra = ''): string {
  const lines = extra === '' ? ['host: x', 'connection: close'] : ['host: x'];
  for (let i = lines.length; i < fields; i++) lines.push(`x-field-${i}: ${i}`);
  return `GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n${extra}\r\n`;
}

describe('inbound.maxHeadersCount and maxHeaderBytes', () => {
  it('takes a request with as many header fields as the limit, and answers one more with an OpenAI-shaped 431', async () => {
    expect((await rawRequest(gateway.port, head('/healthz', MAX_FIELDS))).status).toBe(200);
    const answer = await rawRequest(gateway.port, head('/healthz', MAX_FIELDS + 1));
    expect(answer.status).toBe(431);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['x-request-id']).toMatch(UUID);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: `The request has more than ${MAX_FIELDS} header fields.`, type: 'invalid_request_error', param: null, code: 'invalid_header' },
    });
  });

  it('refuses a WebSocket upgrade with too many header fields with the same 431', async () => {
    const sessions = fake.wsConnections.length;
    const upgrade = `upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nauthorization: Bearer ${key}\r\n`;
    const answer = await rawRequest(gateway.port, head('/v1/responses', MAX_FIELDS - 4, upgrade));
    expect(answer.status).toBe(431);
    expect(JSON.parse(answer.body).error.code).toBe('invalid_header');
    expect(fake.wsConnections).toHaveLength(sessions);
  });

  it('answers a head past maxHeaderBytes with an OpenAI-shaped 431, and takes one just under it', async () => {
    const under = await rawRequest(gateway.port, `GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: ${'a'.repeat(MAX_HEAD_BYTES - 200)}\r\n\r\n`);
    expect(under.status).toBe(200);
    const answer = await rawRequest(gateway.port, `GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-big: ${'a'.repeat(MAX_HEAD_BYTES + 10)}\r\n\r\n`);
    expect(answer.status).toBe(431);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['x-request-id']).toMatch(UUID);
    expect(JSON.parse(answer.body)).toEqual({
      error: { message: 'The request headers are too large.', type: 'invalid_request_error', param: null, code: 'invalid_header' },
    });
  });
});
