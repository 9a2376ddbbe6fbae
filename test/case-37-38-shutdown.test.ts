// Cases 37 and 38 (docs/reliability.md), what graceful-shutdown.test.ts leaves open: readiness
// probed while the gateway shuts down, a JSON answer in flight at SIGTERM, and requests that come
// on a keep-alive connection the gateway is closing. New connections are refused from the signal
// on, so the probes here ride connections opened before it: requests pipelined behind a slow one
// (answered, in order, once it is done) and an idle connection written to right after the signal.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN } from './helpers/gateway.js';
import { registerPoolKey, registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RawAnswer, openConnection, parseAnswer } from './helpers/raw-socket.js';

const POOL_KEY = 'sk-pool-case-37-shutdown-001';
const GRACE_MS = 5000;
const SLOW_MS = 1500;
const ANSWER = { id: 'chatcmpl-slow', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'done in time' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } };

let fake: FakeUpstream;

beforeAll(async () => {
  registerPoolKey(POOL_KEY);
  fake = await startFakeUpstream();
  fake.handle((req) => ((req.json as { metadata?: { slow?: string } } | undefined)?.metadata?.slow ? { headersDelayMs: SLOW_MS, body: ANSWER } : undefined));
});
afterAll(() => fake.close());

async function serve(): Promise<{ served: ChildGateway; key: string; port: number }> {
  const served = await startChildGateway(
    { KEYRELAY_SHUTDOWN_GRACE_MS: String(GRACE_MS), OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    { entry: 'serve' },
  );
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
  await (await request(`${served.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'alice', limits: { tokensPerDay: 100_000 } }) })).body.text();
  const { key } = (await (await request(`${served.url}/admin/users/alice/keys`, { method: 'POST', headers: admin, body: '{}' })).body.json()) as { key: string };
  registerSecret(key);
  return { served, key, port: Number(new URL(served.url).port) };
}

function chatRequest(key: string, slow: boolean): string {
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, ...(slow ? { metadata: { slow: 'yes' } } : {}) });
  return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** The answers in a connection's bytes, in order (each with a content-length, as these are). */
function answers(raw: string): RawAnswer[] {
  const out: RawAnswer[] = [];
  let rest = raw;
  while (rest.startsWith('HTTP/1.1')) {
    const headEnd = rest.indexOf('\r\n\r\n');
    const first = parseAnswer(rest.slice(0, headEnd + 4), false);
    const length = Number(first.headers['content-length'] ?? 0);
    const end = headEnd + 4 + length;
    out.push({ ...first, body: rest.slice(headEnd + 4, end), raw: rest.slice(0, end) });
    rest = rest.slice(end);
  }
  return out;
}

describe('case 37 and 38: SIGTERM with a JSON answer in flight', () => {
  it('the answer in flight ends whole; readiness asked after the signal is false; a request behind it gets 503 shutting_down; exit 0', async () => {
    const { served, key, port } = await serve();
    // One connection: the slow request, then a readiness probe and a chat request pipelined behind it.
    const conn = await openConnection(port);
    conn.socket.write(chatRequest(key, true));
    await until(() => fake.requests.some((r) => (r.json as { metadata?: unknown } | undefined)?.metadata !== undefined), 'the slow request at the upstream');
    const sigterm = Date.now();
    served.child.kill('SIGTERM');
    await until(() => served.logs.some((l) => String(l.msg).startsWith('shutting down')), 'the SIGTERM taken');
    conn.socket.write('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
    conn.socket.write(chatRequest(key, false));

    const closed = await conn.closed;
    const [first, readiness, refused] = answers(closed.raw);
    // The JSON answer in flight at the signal: whole, not cut.
    expect(first?.status).toBe(200);
    expect(JSON.parse(first?.body ?? '')).toEqual(ANSWER);
    // Readiness asked after the signal: false at once, saying why; the connection closes after it.
    expect(readiness?.status).toBe(503);
    expect(JSON.parse(readiness?.body ?? '')).toMatchObject({ status: 'not_ready', closing: true });
    expect(readiness?.headers.connection).toBe('close');
    // What came after it on that connection is not read (the readiness answer said close), and
    // nothing of it reached the upstream: the client sends it again elsewhere.
    expect(refused).toBeUndefined();
    expect(fake.requests.filter((r) => (r.json as { metadata?: unknown } | undefined)?.metadata === undefined)).toHaveLength(0);

    const exit = await served.exited;
    expect(exit.code).toBe(0);
    // Exits once the answer is done, long before the grace period runs out.
    expect(exit.at - sigterm).toBeLessThan(GRACE_MS);
  });

  it('an idle keep-alive connection written to after the signal: closed promptly, or answered 503 shutting_down, never left hanging', async () => {
    fake.reset();
    fake.handle((req) => ((req.json as { metadata?: { slow?: string } } | undefined)?.metadata?.slow ? { headersDelayMs: SLOW_MS, body: ANSWER } : undefined));
    const { served, key, port } = await serve();
    // A request in flight keeps the process up; a second connection sits idle after one answer.
    const busy = await openConnection(port);
    busy.socket.write(chatRequest(key, true));
    const idle = await openConnection(port);
    idle.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => idle.received().includes('\r\n\r\n'), 'the idle connection answered once');
    await until(() => fake.requests.length === 1, 'the slow request at the upstream');

    served.child.kill('SIGTERM');
    await until(() => served.logs.some((l) => String(l.msg).startsWith('shutting down')), 'the SIGTERM taken');
    const wrote = Date.now();
    idle.socket.write(chatRequest(key, false));
    const idleClosed = await idle.closed;
    // Closed promptly: within a fraction of the grace period, not at its end.
    expect(Date.now() - wrote).toBeLessThan(GRACE_MS / 2);
    // The connection is closed as it falls idle (the sweep runs every 100 ms), so the request
    // written after the signal usually meets a closed connection; if it is read first, it is
    // answered 503 shutting_down with connection: close. Never anything else, never a hang.
    const idleAnswers = answers(idleClosed.raw);
    expect(idleAnswers[0]?.status).toBe(200);
    expect(idleAnswers.length).toBeLessThanOrEqual(2);
    for (const late of idleAnswers.slice(1)) {
      expect(late.status).toBe(503);
      expect(late.headers.connection).toBe('close');
      expect(JSON.parse(late.body)).toEqual({ error: { message: expect.any(String), type: expect.any(String), param: null, code: 'shutting_down' } });
    }
    // Nothing of it reached the upstream, and the request in flight still ends whole.
    expect(fake.requests).toHaveLength(1);
    const busyAnswers = answers((await busy.closed).raw);
    expect(busyAnswers[0]?.status).toBe(200);
    expect(JSON.parse(busyAnswers[0]?.body ?? '')).toEqual(ANSWER);
    expect((await served.exited).code).toBe(0);
  });
});
