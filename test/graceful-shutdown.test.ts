// SIGTERM with requests in flight (docs/reliability.md, cases 37-39): no new connections, idle keep-alive
// sockets closed at once, a stream that ends within the grace period ends whole, one that does not
// gets a last SSE error event, every reservation settles, and the process exits 0.
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../src/dev/fake-upstream.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN, startGateway } from './helpers/gateway.js';
import { registerSecret } from './helpers/log-capture.js';
import { until } from './helpers/quota-fixture.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const POOL_KEY = 'sk-pool-shutdown-test-000001';
const GRACE_MS = 1500;

let redis: RedisServer;
let fake: FakeUpstream;

function serve(graceMs = GRACE_MS): Promise<ChildGateway> {
  return startChildGateway(
    { REDIS_URL: redis.url, KEYRELAY_SHUTDOWN_GRACE_MS: String(graceMs), OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl },
    { entry: 'serve' },
  );
}

/** Opens a streamed chat request and resolves once its first event has arrived. */
async function openStream(url: string, key: string, pace: 'short' | 'long') {
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, max_tokens: 50, metadata: { pace }, messages: [{ role: 'user', content: 'hi' }] }),
  });
  let text = '';
  const firstEvent = new Promise<void>((resolve) => {
    res.body.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.includes('\n\n')) resolve();
    });
  });
  const ended = new Promise<string>((resolve, reject) => {
    res.body.on('end', () => resolve(text));
    res.body.on('error', reject);
  });
  await firstEvent;
  return { status: res.statusCode, ended };
}

function chunk(content: string, finish: string | null = null) {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content }, finish_reason: finish }], usage: null };
}

beforeAll(async () => {
  registerSecret(POOL_KEY);
  redis = await startRedis();
  fake = await startFakeUpstream();
  // 'short' ends well inside the grace period; 'long' would outlast it by far.
  fake.handle((req) => {
    const pace = (req.json as { metadata?: { pace?: string } } | undefined)?.metadata?.pace;
    if (!pace) return undefined;
    const words = pace === 'short' ? 5 : 100;
    const events: object[] = Array.from({ length: words }, (_, i) => chunk(`w${i} `));
    events.push(chunk('', 'stop'));
    events.push({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 8, completion_tokens: words, total_tokens: 8 + words } });
    return { headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents(events, { done: true }), chunkIntervalMs: 100 };
  });
}, 30_000);

afterAll(async () => {
  await fake.close();
  await redis.stop();
});

describe('SIGTERM with two streams open and an idle connection', () => {
  it('finishes the short stream, ends the long one with an error event, settles both, exits 0', async () => {
    const served = await serve();
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    await (await request(`${served.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'alice', limits: { tokensPerDay: 100_000 } }) })).body.text();
    const { key } = (await (await request(`${served.url}/admin/users/alice/keys`, { method: 'POST', headers: admin, body: '{}' })).body.json()) as { key: string };
    registerSecret(key);

    // An idle keep-alive connection: one answered request, then nothing.
    const idle = new Client(served.url);
    const idleClosed = new Promise<number>((resolve) => idle.once('disconnect', () => resolve(Date.now())));
    await (await idle.request({ path: '/healthz', method: 'GET' })).body.text();

    const short = await openStream(served.url, key, 'short');
    const long = await openStream(served.url, key, 'long');
    const sigterm = Date.now();
    served.child.kill('SIGTERM');

    // No new connections once the signal is taken (a fresh client each time: a fresh connection).
    await until(() => served.logs.some((l) => String(l.msg).startsWith('shutting down')), 'the SIGTERM taken');
    await until(async () => {
      const fresh = new Client(served.url);
      const refused = await fresh.request({ path: '/healthz', method: 'GET' }).then(
        async (res) => {
          await res.body.dump();
          return false;
        },
        () => true,
      );
      await fresh.destroy();
      return refused;
    }, 'new connections refused', GRACE_MS);
    // The idle connection is closed long before the grace period ends.
    expect((await idleClosed) - sigterm).toBeLessThan(GRACE_MS);

    const shortText = await short.ended;
    expect(shortText).toContain('data: [DONE]');
    expect(shortText).not.toContain('"error"');

    const longText = await long.ended;
    expect(longText).not.toContain('[DONE]');
    const lastEvent = longText.trim().split('\n\n').pop() ?? '';
    expect(JSON.parse(lastEvent.replace(/^data: /, ''))).toEqual({
      error: { message: 'The gateway is shutting down. Retry the request.', type: 'server_error', param: null, code: 'shutting_down' },
    });

    const exit = await served.exited;
    expect(exit.code).toBe(0);
    expect(exit.at - sigterm).toBeLessThan(GRACE_MS + 3000);
    await idle.close();

    // Every reservation settled: nothing is held, and both streams were charged.
    const after = await startGateway({ env: { REDIS_URL: redis.url, OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: fake.baseUrl } });
    try {
      const user = await after.admin('GET', '/users/alice');
      expect(user.json.usage.day.reservedTokens).toBe(0);
      expect(user.json.usage.day.requests).toBe(2);
      // The short stream reported its usage (8 + 5); the long one is charged what was streamed.
      expect(user.json.usage.day.tokens).toBeGreaterThan(13);
    } finally {
      await after.close();
    }
    const lines = served.logs.filter((l) => l.msg === 'request' && l.route === '/v1/chat/completions');
    expect(lines.map((l) => l.outcome).sort()).toEqual(['ok', 'shutdown_interrupted']);
  });

  it('a second SIGTERM ends the grace period at once', async () => {
    // A long grace, so that an exit well before it can only be the second signal's doing, however
    // busy the machine is.
    const longGraceMs = 60_000;
    const served = await serve(longGraceMs);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    await (await request(`${served.url}/admin/users`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'bob' }) })).body.text();
    const { key } = (await (await request(`${served.url}/admin/users/bob/keys`, { method: 'POST', headers: admin, body: '{}' })).body.json()) as { key: string };
    registerSecret(key);
    const long = await openStream(served.url, key, 'long');
    const sigterm = Date.now();
    served.child.kill('SIGTERM');
    // Two signals sent back to back may reach the process as one: send the second once the first is taken.
    await until(() => served.logs.some((l) => String(l.msg).startsWith('shutting down')), 'the first SIGTERM taken');
    const second = Date.now();
    served.child.kill('SIGTERM');
    expect(await long.ended).toContain('"code":"shutting_down"');
    const exit = await served.exited;
    expect(exit.code).toBe(0);
    expect(exit.at - second).toBeLessThan(longGraceMs / 4);
    expect(exit.at - sigterm).toBeLessThan(longGraceMs / 2);
  });
});
