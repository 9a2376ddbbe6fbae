// GET /admin/requests/stream: the live tail of the request log as Server-Sent Events, through a
// real gateway on the memory store and on Redis (where a request finished by another gateway
// process shows too); filters, a client that stops reading, one that leaves, and shutdown.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { LiveTail } from '../src/observability/live-tail.js';
import { createMemoryRequestLog } from '../src/observability/request-log.js';
import { type ChildGateway, startChildGateway } from './helpers/child-gateway.js';
import { ADMIN_TOKEN, type TestGateway, startGateway } from './helpers/gateway.js';
import { TAIL_BOUND_MS, type Tail, openTail as openTailAt } from './helpers/live-tail-client.js';
import { registerSecret } from './helpers/log-capture.js';
import { type ObservedGateway, chat, post, startObservedGateway } from './helpers/observability-fixture.js';

const POOL_KEY = 'sk-pool-livetail-0123456789abcdef';
const BOUND_MS = TAIL_BOUND_MS;

const openTail = (url: string, query = ''): Promise<Tail> => openTailAt(`${url}/admin/requests/stream${query}`, { authorization: `Bearer ${ADMIN_TOKEN}` });

async function metric(gateway: TestGateway, name: string): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + BOUND_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${BOUND_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe.each(['memory', 'redis'] as const)('the live tail on %s', (backend) => {
  let env: ObservedGateway;
  let alice: string;

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, backend);
    alice = await env.gateway.createUserKey('alice');
    registerSecret(alice);
  });
  afterAll(async () => {
    await env.close();
  });

  it('sends each finished request as an event, as /admin/requests shows it, never a key', async () => {
    const tail = await openTail(env.gateway.url);
    expect(tail.status).toBe(200);
    expect(tail.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(tail.headers.get('cache-control')).toBe('no-cache');
    await tail.until(() => tail.text().startsWith(': connected\n\n'), 'opening comment');
    const sent = await post(env.gateway, alice, '/chat/completions', chat('live'));
    await tail.until((events) => events.some((e) => e.requestId === sent.id), 'event of the request');
    const event = tail.events.find((e) => e.requestId === sent.id);
    const listed = (await env.gateway.admin('GET', `/requests/${sent.id}`)).json;
    expect(event).toEqual(listed);
    expect(event).toMatchObject({ userId: 'alice', status: 200, outcome: 'ok', model: 'gpt-4o-mini', id: expect.stringMatching(/^[0-9]+-[0-9]+$/) });
    expect(tail.text()).not.toContain(alice);
    expect(tail.text()).not.toContain(POOL_KEY);
    tail.close();
  });

  it('sends only what its filters match', async () => {
    const tail = await openTail(env.gateway.url, '?model=gpt-4o&status=2xx&user=alice&outcome=ok');
    await tail.until(() => tail.text().length > 0, 'opening comment');
    const other = await post(env.gateway, alice, '/chat/completions', chat('mini'));
    const refused = await post(env.gateway, 'sk-kr-NoSuchKey0123456789abcdefghijklmn', '/chat/completions', chat('refused', { model: 'gpt-4o' }));
    const wanted = await post(env.gateway, alice, '/chat/completions', chat('big', { model: 'gpt-4o' }));
    await tail.until((events) => events.some((e) => e.requestId === wanted.id), 'event of the gpt-4o request');
    expect(tail.events.map((e) => e.requestId)).toEqual([wanted.id]);
    expect([other.status, refused.status]).toEqual([200, 401]);
    tail.close();
  });

  it('answers 400 naming a bad parameter', async () => {
    for (const [query, param] of [
      ['?status=abc', 'status'],
      ['?from=2030-01-01', 'from'],
      ['?limit=5', 'limit'],
    ] as const) {
      const res = await env.gateway.admin('GET', `/requests/stream${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json.error.param, query).toBe(param);
    }
  });

  it('forgets a client that left', async () => {
    const before = await metric(env.gateway, 'keyrelay_live_tail_clients');
    const tail = await openTail(env.gateway.url);
    await tail.until(() => tail.text().length > 0, 'opening comment');
    expect(await metric(env.gateway, 'keyrelay_live_tail_clients')).toBe(before + 1);
    tail.close();
    await until(async () => (await metric(env.gateway, 'keyrelay_live_tail_clients')) === before, 'client count back');
  });

  it('ends open streams at shutdown, and the close does not wait for them', async () => {
    const gateway = await startGateway({ env: { OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: env.fake.baseUrl, REDIS_URL: env.redis?.url } });
    const tails = [await openTail(gateway.url), await openTail(gateway.url, '?user=alice')];
    await Promise.all(tails.map((t) => t.until(() => t.text().length > 0, 'opening comment')));
    const started = Date.now();
    await gateway.close();
    await Promise.all(tails.map((t) => t.ended));
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
  });
});

describe('the live tail across processes (redis)', () => {
  let env: ObservedGateway;
  let child: ChildGateway;
  let alice: string;

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, 'redis');
    alice = await env.gateway.createUserKey('alice');
    registerSecret(alice);
    // A process that compiles TypeScript at start, on a machine shared with other suites: slow.
    child = await startChildGateway({ OPENAI_API_KEYS: POOL_KEY, KEYRELAY_UPSTREAM_URL: env.fake.baseUrl, REDIS_URL: env.redis?.url ?? '' });
  }, 300_000);
  afterAll(async () => {
    await child?.stop();
    // An idle keep-alive connection of the test's clients may hold the close until it times out.
    await env.close();
  }, 120_000);

  it('shows a request finished on another gateway process', async () => {
    const here = await openTail(env.gateway.url);
    const there = await openTail(child.url, '?user=alice');
    await Promise.all([here, there].map((t) => t.until(() => t.text().length > 0, 'opening comment')));
    const res = await fetch(`${child.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
      body: JSON.stringify(chat('elsewhere')),
    });
    expect(res.status).toBe(200);
    await res.text();
    const id = res.headers.get('x-keyrelay-request-id');
    await here.until((events) => events.some((e) => e.requestId === id), 'event from the other process');
    const local = await post(env.gateway, alice, '/chat/completions', chat('here'));
    await there.until((events) => events.some((e) => e.requestId === local.id), 'event from this process in the child');
    expect(there.events.map((e) => e.requestId)).toEqual([id, local.id]);
    here.close();
    there.close();
  });
});

describe('a client that stops reading', () => {
  let env: ObservedGateway;
  let alice: string;
  // Records of some 64 KB each: a few dozen fill what the sockets hold and the client's bound.
  const logging = { requestLogSize: 1000, bodies: true, bodyBytes: 64 * 1024 } as Config['logging'];

  beforeAll(async () => {
    env = await startObservedGateway(POOL_KEY, 'memory', { logging });
    alice = await env.gateway.createUserKey('alice');
    registerSecret(alice);
  });
  afterAll(async () => {
    await env.close();
  });

  it('is dropped without holding back the others', async () => {
    const socket = connect(env.gateway.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.write(`GET /admin/requests/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ADMIN_TOKEN}\r\n\r\n`);
    // Its first bytes are read, then nothing more.
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    const reader = await openTail(env.gateway.url);
    await until(async () => (await metric(env.gateway, 'keyrelay_live_tail_clients')) === 2, 'both clients');

    const big = 'x'.repeat(64 * 1024);
    const ids: string[] = [];
    const dropped = async () => (await metric(env.gateway, 'keyrelay_live_tail_dropped_total')) > 0;
    // Sent until the silent client is dropped (bounded), ten at a time.
    for (let round = 0; round < 40 && !(await dropped()); round++) {
      const sent = await Promise.all(Array.from({ length: 10 }, () => post(env.gateway, alice, '/chat/completions', chat(big))));
      for (const s of sent) {
        expect(s.status).toBe(200);
        ids.push(s.id);
      }
    }
    expect(await metric(env.gateway, 'keyrelay_live_tail_dropped_total')).toBe(1);
    // Requests after the drop: nothing of them is kept for the dropped client.
    const later: string[] = [];
    for (let round = 0; round < 3; round++) {
      const sent = await Promise.all(Array.from({ length: 10 }, () => post(env.gateway, alice, '/chat/completions', chat(big))));
      later.push(...sent.map((s) => s.id));
    }
    ids.push(...later);
    // The reading client got every record, the silent one's fall notwithstanding.
    await reader.until((events) => ids.every((id) => events.some((e) => e.requestId === id)), 'every event for the reader');
    expect(await metric(env.gateway, 'keyrelay_live_tail_clients')).toBe(1);
    // Read now, the silent client finds its connection closed after what was already on its way.
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.resume();
    await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the dropped connection stayed open')), BOUND_MS))]);
    expect(received.length).toBeGreaterThan(0);
    expect(later.filter((id) => received.includes(id))).toEqual([]);
    reader.close();
    socket.destroy();
  }, 120_000);
});

describe('keep-alive comments', () => {
  it('go to every client while there is one', async () => {
    const log = createMemoryRequestLog(10);
    const tail = new LiveTail(log, { keepAliveMs: 20, maxBufferedBytes: 1024 * 1024 });
    const stream = tail.open({});
    let text = '';
    stream.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    await until(async () => text.split(': keep-alive\n\n').length > 2, 'two keep-alive comments');
    expect(text.startsWith(': connected\n\n')).toBe(true);
    stream.destroy();
    await until(async () => tail.size === 0, 'the client forgotten');
  });
});
