// The observability tests' common setup: a fake upstream that can also answer slowly or fail on
// cue, a gateway in front of it on the memory store or on a real Redis, and the requests of a
// typical mix (plain, streamed, aborted mid-stream, failed upstream, refused).
import { request } from 'undici';
import type { Config } from '../../src/config.js';
import { type FakeUpstream, sseEvents, startFakeUpstream } from '../../src/dev/fake-upstream.js';
import { type TestGateway, startGateway } from './gateway.js';
import { registerPoolKey } from './log-capture.js';
import { type RedisServer, startRedis } from './redis-server.js';

export const SLOW = 'answer slowly';
export const BREAK = 'break the connection';

export interface ObservedGateway {
  fake: FakeUpstream;
  gateway: TestGateway;
  redis?: RedisServer;
  close(): Promise<void>;
}

/** A stream of 50 words, one every 50 ms: long enough to be cut by the client after the first. */
function slowStream(): object {
  const base = { id: 'chatcmpl-slow', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
  const events = Array.from({ length: 50 }, (_, i) => ({ ...base, choices: [{ index: 0, delta: { content: ` word${i}` }, finish_reason: null }] }));
  return { headers: { 'content-type': 'text/event-stream' }, chunks: sseEvents(events, { done: true }), chunkIntervalMs: 50 };
}

export async function startObservedGateway(poolKey: string, backend: 'memory' | 'redis', config: Partial<Config> = {}): Promise<ObservedGateway> {
  registerPoolKey(poolKey, 'pool key (observability-fixture)');
  const fake = await startFakeUpstream();
  fake.handle((req) => {
    const content = (req.json as { messages?: Array<{ content?: unknown }> } | undefined)?.messages?.[0]?.content;
    if (content === SLOW) return slowStream();
    if (content === BREAK) return { destroyBeforeHeaders: true };
    return undefined;
  });
  const redis = backend === 'redis' ? await startRedis() : undefined;
  const gateway = await startGateway({ env: { OPENAI_API_KEYS: poolKey, KEYRELAY_UPSTREAM_URL: fake.baseUrl, REDIS_URL: redis?.url }, config });
  return {
    fake,
    gateway,
    redis,
    async close() {
      await gateway.close();
      await fake.close();
      await redis?.stop();
    },
  };
}

export interface Sent {
  status: number;
  id: string;
  text: string;
}

export function chat(content: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra };
}

export async function post(gateway: TestGateway, key: string, path: string, body: unknown): Promise<Sent> {
  const res = await request(`${gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, id: String(res.headers['x-keyrelay-request-id']), text };
}

/** A streamed request the client gives up on after the first bytes of the answer. */
export async function abortAfterFirstChunk(gateway: TestGateway, key: string, body: unknown): Promise<Sent> {
  const res = await request(`${gateway.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const first = await new Promise<Buffer>((resolve) => res.body.once('data', resolve));
  res.body.destroy();
  return { status: res.statusCode, id: String(res.headers['x-keyrelay-request-id']), text: first.toString('utf8') };
}

/** The kept records, newest first, once there are at least `count` of them (of `user` when given). */
export async function keptRecords(gateway: TestGateway, count: number, query = ''): Promise<Array<Record<string, unknown>>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const page = await gateway.admin('GET', `/requests?limit=1000${query}`);
    if (page.status !== 200) throw new Error(`GET /admin/requests: ${page.status} ${JSON.stringify(page.json)}`);
    if (page.json.data.length >= count) return page.json.data;
    if (Date.now() > deadline) throw new Error(`only ${page.json.data.length} of ${count} records kept`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
